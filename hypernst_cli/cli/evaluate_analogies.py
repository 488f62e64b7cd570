"""``hypernst evaluate --analogies``: load the model, call the library, print the table."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from hypernst_cli.cli import options as opt
from hypernst_cli.cli.state import STATE


def run_analogy_benchmark(*, faces: list[str], families: Optional[list[str]], draws: int,
                          region_mixed: int, limit: Optional[int], seed: int, output: Path,
                          weights: Optional[str], config: str, backend: str, strength: float,
                          iterations: Optional[int], detail: Optional[float], palette: Optional[float],
                          precision: Optional[str],
                          compile_models: Optional[bool], json_out: bool) -> None:
    from hypernst_cli.errors import UsageError
    from hypernst_cli.eval.analogies import (
        PipelineAnalogyModel,
        evaluate_analogies,
        resolve_families,
    )
    from hypernst_cli.io import collect_images

    if not faces:
        raise UsageError("--analogies needs aligned faces", hint="give them with --faces")
    face_paths = collect_images(faces)
    resolve_families(families)  # a bad family name fails before the models load
    pipe = opt.load_pipeline(weights=weights, config=config, backend=backend, seed=seed,
                             iterations=iterations, precision=precision, compile=compile_models,
                             detail=detail, palette=palette)
    report = evaluate_analogies(
        face_paths, PipelineAnalogyModel(pipe), resolution=pipe.resolution,
        parse=pipe.faces.parse_image, out_dir=output, families=families, draws=draws, seed=seed,
        region_mixed=region_mixed, limit=limit, strength=strength, log=STATE.info,
        settings=pipe.settings(),
    )
    if json_out:
        STATE.out.print(json.dumps({"summary": report.summary,
                                    "files": {k: str(v) for k, v in report.files.items()}},
                                   sort_keys=True), markup=False, highlight=False, soft_wrap=True)
    else:
        STATE.out.print(report.files["markdown"].read_text(), markup=False, highlight=False)
