"""``hypernst evaluate``: the paper's Table 1 protocol plus metrics that need no downloads."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from hypernst_cli.cli import options as opt
from hypernst_cli.cli.app import app
from hypernst_cli.cli.state import STATE


def raise_usage(message: str, hint: str | None = None) -> None:
    from hypernst_cli.errors import UsageError

    raise UsageError(message, hint=hint)


def model_labels(specs: list[str]) -> list[str]:
    """A distinct, readable name per --weights spec: its shortest path suffix that no other spec
    shares (``A/final``, ``B/final`` for the RUN/final/ folders `hypernst train` writes).

    The same model given twice (the same text, or paths to the same folder) is a usage error."""
    import os

    seen: dict[str, str] = {}
    for spec in specs:
        key = os.path.realpath(spec) if os.path.exists(spec) else os.path.normpath(spec)
        if key in seen:
            raise_usage(f"--weights {spec} is the same model as --weights {seen[key]}",
                        "give each model once")
        seen[key] = spec
    parts = [Path(spec).parts for spec in specs]

    def suffix(i: int, k: int) -> str:
        return Path(*parts[i][-k:]).as_posix()

    labels = []
    for i in range(len(specs)):
        k = 1
        while k < len(parts[i]) and any(
                suffix(i, k) == suffix(j, k) for j in range(len(specs)) if j != i):
            k += 1
        labels.append(suffix(i, k))
    return labels


def _refuse_image_output(output: Path) -> None:
    """-o names the report folder; an image name there would become a folder called x.png."""
    from hypernst_cli.io.images import IMAGE_SUFFIXES  # the loader's own list

    if output.suffix.lower() in IMAGE_SUFFIXES and not output.is_dir():
        raise_usage(f"-o {output} looks like an image file, but evaluate writes a report folder "
                    "(report.md, pairs.csv, contact sheets)",
                    "give -o a folder name, e.g. -o eval_report")


@app.command()
def evaluate(
    content: Optional[list[str]] = typer.Option(
        None, "--content", help="Content photos: folder, files or glob."),
    style: Optional[list[str]] = typer.Option(
        None, "--style", help="Style images: folder, files or glob."),
    output: Path = opt.output_option("Report folder (report.md, pairs.csv, contact sheets)."),
    weights: Optional[list[str]] = typer.Option(
        None, "--weights", "-w",
        help="Model(s) to evaluate, repeatable (default: the config's resolved weights)."),
    config: str = opt.CONFIG,
    pairs: Optional[int] = typer.Option(None, "--pairs", min=1, help="A seeded sample of N pairs."),
    seed: int = typer.Option(0, "--seed", help="Seed of the pair sample and the style codes."),
    strength: float = typer.Option(1.0, "--strength", min=0.0, max=1.0, help="Style strength."),
    iterations: Optional[int] = opt.ITERATIONS,
    detail: Optional[float] = opt.DETAIL,
    palette: Optional[float] = opt.PALETTE,
    precision: Optional[str] = opt.PRECISION,
    compile_models: Optional[bool] = opt.COMPILE,
    baselines: bool = typer.Option(
        True, "--baselines/--no-baselines",
        help="Include the baselines: identity (the content unchanged), colour transfer and "
             "histogram transfer (the palette step alone)."),
    region_colour: bool = typer.Option(True, "--region-colour/--no-region-colour",
                                       help="Per-region colour distances (parses each image)."),
    backend: str = opt.BACKEND,
    analogies: bool = typer.Option(
        False, "--analogies",
        help="The analogy benchmark instead: procedural styles with a known truth."),
    faces: Optional[list[str]] = typer.Option(
        None, "--faces", help="[--analogies] Aligned faces (files, folders or globs), 2 or more."),
    families: Optional[list[str]] = typer.Option(
        None, "--families",
        help="[--analogies] Style families: names, heldout, train or all (default: heldout)."),
    draws: int = typer.Option(
        2, "--draws", min=1,
        help="[--analogies] Draws per family; every draw x every ordered face pair is an item, "
             "so more draws mean more items unless --limit samples them (the README's figures: "
             "--draws 8 --limit 24, benchmarks/heldout_eval.sh)."),
    region_mixed: int = typer.Option(
        0, "--region-mixed", min=0, help="[--analogies] Items with a different draw per region."),
    limit: Optional[int] = typer.Option(
        None, "--limit", min=1, help="[--analogies] At most N items per family (seeded sample)."),
    json_out: bool = typer.Option(False, "--json", help="[--analogies] Print the summary as JSON."),
) -> None:
    """Stylize content x style pairs and measure them (LPIPS, SIFID, time, identity, colour).

    LPIPS and SIFID need backbone weights that are never downloaded implicitly: without them
    their columns read n/a and the report names the `hypernst download` entry that fixes it.

    --analogies: for ordered pairs (A, B) of aligned faces and style draws T never drawn in
    training, run the model on content B with the exemplar T(A) and score it against the truth
    T(B) (L1, SSIM), next to the unstyled B and a colour transfer; writes analogies.md,
    analogies.json and analogies_contact.png to -o.
    """
    _refuse_image_output(output)
    # the report's images must not land among the inputs: the next run would evaluate them
    opt.check_not_an_input_folder(output, [*(content or []), *(style or []), *(faces or [])],
                                  what="the report")
    if analogies:
        from hypernst_cli.cli.evaluate_analogies import run_analogy_benchmark

        if content or style or pairs is not None:
            raise_usage("--content, --style and --pairs are not used with --analogies",
                        "give the faces with --faces")
        if weights and len(weights) > 1:
            raise_usage("--analogies measures one model", "give one --weights")
        run_analogy_benchmark(
            faces=faces or [], families=families, draws=draws, region_mixed=region_mixed,
            limit=limit, seed=seed, output=output, weights=(weights or [None])[0], config=config,
            backend=backend, strength=strength, iterations=iterations, detail=detail,
            palette=palette, precision=precision, compile_models=compile_models, json_out=json_out)
        return
    if not content or not style:
        raise_usage("--content and --style are required", "or run the benchmark with --analogies")
    if faces or families or region_mixed or limit is not None or json_out:
        raise_usage("--faces, --families, --region-mixed, --limit and --json need --analogies")
    from hypernst_cli.errors import NoFaceError
    from hypernst_cli.eval import BASELINES, EvalRunner, default_metrics
    from hypernst_cli.io import collect_images

    contents = collect_images(content)
    styles = collect_images(style)
    specs = list(weights or [None])
    # one label per model: the labels key the methods, so two alike would drop a model's row
    labels = ["HyperNST"] if len(specs) == 1 else [
        f"HyperNST ({name})" for name in model_labels([str(spec) for spec in specs])]
    pipes = {}
    for spec, label in zip(specs, labels):
        pipes[label] = opt.load_pipeline(weights=spec, config=config, backend=backend, seed=seed,
                                         iterations=iterations, precision=precision,
                                         compile=compile_models, detail=detail, palette=palette)
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
    settings = {label: {**p.settings(), "strength": strength} for label, p in pipes.items()}
    report = runner.run(contents, styles, methods, pairs=pairs, seed=seed, out_dir=output,
                        align=first.align_crop, settings=settings)
    table = (output / "report.md").read_text()
    STATE.out.print(table, markup=False, highlight=False)
    if report.failures:
        from hypernst_cli.errors import EXIT_INPUT, EXIT_PARTIAL

        STATE.warn(f"{len(report.failures)} of {len(report.rows)} method x pair runs failed; "
                   f"see {output / 'report.md'} (Failures) or {output / 'pairs.csv'}")
        # as in every batch: 1 when some results were kept, 2 when nothing could be measured
        raise typer.Exit(EXIT_INPUT if len(report.failures) == len(report.rows) else EXIT_PARTIAL)
