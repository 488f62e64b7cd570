"""``hypernst prepare`` and ``hypernst train``: training data and the paper's training stages."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from hypernst_cli.cli.app import app
from hypernst_cli.cli import options as opt
from hypernst_cli.cli.state import STATE

STAGES_HELP = "generator | encoder | reconstruct | stylize | aladin | autoencoder"


@app.command()
def prepare(
    content_dir: Path = typer.Argument(..., help="Content photos: a folder, files or a glob."),
    style_dir: Path = typer.Argument(..., help="Style images: a folder, files or a glob."),
    output: Path = typer.Option(..., "--output", "-o", help="Prepared data folder (DATA)."),
    config: str = typer.Option("compact", "--config", help="Model config: default size, and codes."),
    size: Optional[int] = typer.Option(
        None, "--size",
        help="Aligned size [default: the config's own resolution: 128 px for compact, not the "
             "embedded model's 256 as in align and segment]."),
    backend: str = opt.BACKEND,
    weights: Optional[str] = typer.Option(
        None, "--weights", "-w", help="A model with ALADIN: also cache every image's region codes."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Redo images already prepared."),
    as_json: bool = typer.Option(False, "--json", help="One JSON line per image, then a summary."),
) -> None:
    """Align and parse a content set and a style set into a training folder (DATA).

    Content images without a face (or unreadable) are rejected; style images without a face are
    kept without a mask (the global style code everywhere). Every input gets a line in
    DATA/report.jsonl. Run it again to continue: finished images are skipped. Exit code 0 when
    all worked, 1 when some were rejected, 2 when none worked.
    """
    from hypernst_cli.cli.faces_batch import resolve_size
    from hypernst_cli.errors import EXIT_INPUT, EXIT_OK, EXIT_PARTIAL, UsageError
    from hypernst_cli.io import collect_images
    from hypernst_cli.pipeline.session import face_processor
    from hypernst_cli.train.prepare import prepare_split, write_report

    crop = resolve_size(size, config)
    content = collect_images([content_dir])
    style = collect_images([style_dir])
    if not content:
        raise UsageError(f"{content_dir}: no content images found")
    if not style:
        raise UsageError(f"{style_dir}: no style images found")
    _refuse_inputs_in_output(output, content + style)
    if weights:
        from hypernst_cli.weights.checkpoint import resolve_weights

        resolve_weights(weights, config)  # a wrong -w fails now, not after every image is prepared
    faces = face_processor(backend, STATE.device)
    rows, codes = [], []
    for split, paths in (("content", content), ("style", style)):
        outcome = prepare_split(split, paths, output, crop, faces, as_json=as_json, overwrite=overwrite)
        rows += outcome.rows
        codes.append(outcome.exit_code)
    settings = {"size": crop, "config": config, "backend": faces.backend,
                "content_dir": str(content_dir), "style_dir": str(style_dir)}
    ok = {split: sum(1 for r in rows if r["split"] == split and r["status"] != "rejected")
          for split in ("content", "style")}
    if weights and ok["content"]:
        from hypernst_cli.device import resolve_device
        from hypernst_cli.train.prepare import cache_codes

        STATE.info("caching region codes ...")
        settings.update(cache_codes(output, weights, None, resolve_device(STATE.device)))
        settings["weights"] = weights
    info = write_report(output, rows, settings)
    c = info["counts"]
    STATE.info(
        f"{output}: content {c['content']['ok']} ok, {c['content']['rejected']} rejected; style "
        f"{c['style']['ok']} ok, {c['style']['kept_no_face']} kept without a face, "
        f"{c['style']['rejected']} rejected (details in report.jsonl)")
    if not ok["content"] or not ok["style"]:
        raise typer.Exit(EXIT_INPUT)
    if any(code != EXIT_OK for code in codes):
        raise typer.Exit(EXIT_PARTIAL)


def _refuse_inputs_in_output(output: Path, inputs: list[Path]) -> None:
    """DATA/content and DATA/style hold prepared images under their inputs' names: an input
    that is already in one of them (``prepare data/content data/style -o data``) would count as
    prepared and be skipped, leaving the photo unaligned and without a mask."""
    splits = [(output / split).resolve() for split in ("content", "style")]
    for path in inputs:
        # the link itself counts too (train.select writes folders of links)
        if path.resolve().parent in splits or path.absolute().parent.resolve() in splits:
            from hypernst_cli.errors import UsageError

            raise UsageError(f"-o {output}: the input {path} is inside it, where the prepared "
                             f"images go", hint="write the prepared data to a new folder with -o")


@app.command()
def train(
    stage: str = typer.Argument(..., help=STAGES_HELP),
    overrides: Optional[list[str]] = typer.Argument(
        None, help="KEY=VALUE options (dotted for tables: loss.style=2); see --show-config."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Run folder (RUN_DIR)."),
    config_file: Optional[Path] = typer.Option(None, "--config", help="A TOML file of options."),
    resume: bool = typer.Option(False, "--resume", help="Continue from RUN_DIR's newest checkpoint."),
    show_config: bool = typer.Option(False, "--show-config", help="Print the effective options and exit."),
) -> None:
    """Train one stage of the paper's recipe: generator -> encoder -> reconstruct -> stylize
    (aladin, autoencoder: the compact recipe's stages, not in the paper).

    Options come from the stage's defaults (the paper's), then --config FILE, then KEY=VALUE.
    RUN_DIR gets config.toml, metrics.jsonl, samples/, checkpoints/ (every checkpoint_every steps,
    keep_last kept) and final/: a model folder for `hypernst stylize --weights RUN_DIR/final`
    and the next stage's init=. Several GPUs or machines: torchrun --nproc-per-node N -m
    hypernst_cli train ... (rank 0 writes the files).
    """
    from hypernst_cli.errors import UsageError
    from hypernst_cli.train.config import dump_toml, load_train_config

    cfg = load_train_config(stage, config_file, overrides or [])
    if cfg.get("device", "auto") == "auto" and STATE.device != "auto":
        cfg["device"] = STATE.device
    if show_config:
        STATE.out.print(dump_toml(cfg), markup=False, highlight=False, end="")
        return
    if output is None:
        raise UsageError("no run folder given", hint="pass -o RUN_DIR")
    if output.exists() and not output.is_dir():
        raise UsageError(f"-o {output} is a file; give a folder")
    from hypernst_cli.train.run import run_training
    from hypernst_cli.train.trainer import TrainingInterrupted

    try:
        final = run_training(cfg, output, resume=resume, log=STATE.info, warn=STATE.warn,
                             progress=not STATE.quiet)
    except TrainingInterrupted as stop:
        if stop.checkpoint is not None:
            STATE.warn(f"stopped at step {stop.step}, checkpointed in {stop.checkpoint}: run the "
                       f"same command with --resume to continue")
        raise
    if final is not None:
        STATE.out.print(f"wrote {final}", markup=False, highlight=False)
