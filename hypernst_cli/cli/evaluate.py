"""``hypernst evaluate``: the paper's Table 1 protocol plus metrics that need no downloads."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from hypernst_cli.cli import options as opt
from hypernst_cli.cli.app import app
from hypernst_cli.cli.state import STATE


@app.command()
def evaluate(
    content: list[str] = typer.Option(..., "--content", help="Content photos: folder, files or glob."),
    style: list[str] = typer.Option(..., "--style", help="Style images: folder, files or glob."),
    output: Path = opt.output_option("Report folder (report.md, pairs.csv, contact sheets)."),
    weights: Optional[list[str]] = typer.Option(
        None, "--weights", "-w",
        help="Model(s) to evaluate, repeatable (default: the config's resolved weights)."),
    config: str = opt.CONFIG,
    pairs: Optional[int] = typer.Option(None, "--pairs", min=1, help="A seeded sample of N pairs."),
    seed: int = typer.Option(0, "--seed", help="Seed of the pair sample and the style codes."),
    strength: float = typer.Option(1.0, "--strength", min=0.0, max=1.0, help="Style strength."),
    iterations: int = opt.ITERATIONS,
    detail: Optional[float] = opt.DETAIL,
    precision: Optional[str] = opt.PRECISION,
    compile_models: Optional[bool] = opt.COMPILE,
    baselines: bool = typer.Option(True, "--baselines/--no-baselines",
                                   help="Include the identity and colour-transfer baselines."),
    region_colour: bool = typer.Option(True, "--region-colour/--no-region-colour",
                                       help="Per-region colour distances (parses each image)."),
    backend: str = opt.BACKEND,
) -> None:
    """Stylize content x style pairs and measure them (LPIPS, SIFID, time, identity, colour).

    LPIPS and SIFID need backbone weights that are never downloaded implicitly: without them
    their columns read n/a and the report names the `hypernst download` entry that fixes it.
    """
    from hypernst_cli.errors import NoFaceError
    from hypernst_cli.eval import BASELINES, EvalRunner, default_metrics
    from hypernst_cli.io import collect_images

    contents = collect_images(content)
    styles = collect_images(style)
    specs = list(weights or [None])
    pipes = {}
    for spec in specs:
        pipe = opt.load_pipeline(weights=spec, config=config, backend=backend, seed=seed,
                                 iterations=iterations,
                             precision=precision, compile=compile_models, detail=detail)
        label = "HyperNST" if len(specs) == 1 else f"HyperNST ({Path(spec or config).name})"
        pipes[label] = pipe
    first = next(iter(pipes.values()))

    def parse(image):  # per-region colour distance; a face-less image counts as background
        import numpy as np

        try:
            return first.faces.parse_image(image)
        except NoFaceError:
            return np.zeros(image.shape[:2], np.uint8)

    methods = dict(BASELINES) if baselines else {}
    methods.update({label: p.as_method(strength) for label, p in pipes.items()})
    runner = EvalRunner(default_metrics(parser=parse if region_colour else None), first.device,
                        log=STATE.info)
    report = runner.run(contents, styles, methods, pairs=pairs, seed=seed, out_dir=output,
                        align=first.align_crop)
    table = (output / "report.md").read_text()
    STATE.out.print(table, markup=False, highlight=False)
    if report.failures:
        STATE.warn(f"{len(report.failures)} pair(s) failed; see {output / 'pairs.csv'}")
        raise typer.Exit(1)
