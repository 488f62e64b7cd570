"""``hypernst codes``: compute (or show cached) ALADIN style codes of style images."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from hypernst_cli.cli import options as opt
from hypernst_cli.cli.app import app
from hypernst_cli.cli.state import STATE


@app.command()
def codes(
    styles: list[Path] = typer.Argument(..., help="Style images: files, folders or globs."),
    output: Optional[Path] = typer.Option(
        None, "--output", "-o", help="Write all codes to this .safetensors file."
    ),
    weights: Optional[str] = opt.WEIGHTS,  # -w/--weights, as in every command that loads a model
    config: str = opt.CONFIG,
    backend: str = typer.Option("auto", "--backend", help="Face backend: auto | dlib | facexlib."),
    seed: Optional[int] = typer.Option(None, "--seed", callback=opt.seed_in_range,
                                       help="Patch sampling seed (config default)."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Neither read nor write the cache."),
    as_json: bool = typer.Option(False, "--json", help="One JSON line per style image."),
) -> None:
    """Global and region-averaged ALADIN codes of style images (paper Eq. 1).

    For each image: which regions were found, patches kept per region, fall-backs to the global
    code, the cosine similarity between region codes, and where the codes are cached.
    """
    from hypernst_cli.cli.batch import FATAL_ERRORS
    from hypernst_cli.device import resolve_device
    from hypernst_cli.errors import HypernstError, UsageError
    from hypernst_cli.info import cache_dir
    from hypernst_cli.io import collect_images
    from hypernst_cli.io.inputs import unique_stems
    from hypernst_cli.pipeline.code_cache import style_code_provider
    from hypernst_cli.pipeline.models import load_models
    from hypernst_cli.pipeline.session import face_processor

    paths = collect_images(styles)
    if not paths:
        raise UsageError("no style images found in the given inputs")
    if output is not None and output.suffix != ".safetensors":
        raise UsageError(f"{output}: codes are written as .safetensors")
    if output is not None:
        opt.check_output_folder(output.parent)  # before every style is encoded for nothing
    dev = resolve_device(STATE.device)
    models = load_models(weights, config, dev, parts=("aladin",))  # ALADIN only: no generator
    provider = style_code_provider(models.aladin, models.config, face_processor(backend, dev),
                                   cache_dir=None if no_cache else cache_dir(), device=dev,
                                   seed=seed, aladin_id=models.model_id("aladin"))
    results = {}
    failures = 0
    for path in paths:
        try:
            c = provider.for_file(path)
        except FATAL_ERRORS:
            raise
        except HypernstError as exc:
            if len(paths) == 1:
                raise
            failures += 1  # reported and skipped, as in every batch
            if as_json:  # one line per style image, this one's too: a script sees every input
                STATE.out.print(json.dumps({"style": str(path), "status": "failed", "ok": False,
                                            "error": exc.one_line()}),
                                markup=False, highlight=False)
            else:
                STATE.err.print(f"failed {exc.one_line()}", highlight=False, markup=False)
            continue
        results[path] = c
        _report(path, c, as_json)
    if output is not None and results:
        _write(output, results, unique_stems(paths))
        STATE.info(f"wrote {output}")
    if failures:
        raise typer.Exit(2 if not results else 1)


def _report(path: Path, c, as_json: bool) -> None:
    from hypernst_cli.faces.regions import REGION_NAMES

    kept = {name: len(c.patches[i]) if c.patches else 0 for i, name in enumerate(REGION_NAMES)}
    sim = c.region_similarity()
    row = {
        "style": str(path),
        "face_found": c.face_found,
        "patches_kept": kept,
        "fallback_to_global": c.fallbacks(),
        "cosine": {
            f"{REGION_NAMES[i]}-{REGION_NAMES[j]}": round(float(sim[i, j]), 4)
            for i in range(3) for j in range(i + 1, 3)
        },
        "dim": c.dim,
        "cache": c.meta.get("cache") or c.meta.get("cache_written"),
        "status": "ok",
        "ok": True,
        "error": None,
    }
    if as_json:
        STATE.out.print(json.dumps(row), markup=False, highlight=False)
        return
    regions = ", ".join(f"{k} {v}" for k, v in kept.items())
    fallback = ", ".join(row["fallback_to_global"]) or "none"
    cos = ", ".join(f"{k} {v:.3f}" for k, v in row["cosine"].items())
    face = "face found" if c.face_found else "no face: global code everywhere"
    STATE.out.print(f"{path}: {face}; patches kept: {regions}; fall-backs: {fallback}; "
                    f"cosine: {cos}", markup=False, highlight=False)
    if row["cache"]:
        STATE.out.print(f"  cache: {row['cache']}", markup=False, highlight=False)


def _write(output: Path, results: dict, keys: dict[Path, str]) -> None:
    """``keys``: a distinct name per style (``unique_stems`` over every input, so a style keeps
    its key whichever others failed); two styles under one key would overwrite each other."""
    from hypernst_cli.weights.checkpoint import save_tensors

    tensors = {}
    meta: dict[str, object] = {"format": "hypernst-style-codes", "regions": "background,face,hair"}
    for path, c in results.items():
        key = keys[path]
        tensors[f"{key}.global"] = c.global_code
        tensors[f"{key}.regions"] = c.region_codes
        meta[f"{key}.sources"] = ",".join(c.sources)
        meta[f"{key}.file"] = str(path)
    save_tensors(output, tensors, meta)
