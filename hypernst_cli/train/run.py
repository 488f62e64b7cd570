"""Run one training stage end to end: context, stage, resume, loop, export to RUN_DIR/final."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from hypernst_cli.errors import UsageError
from hypernst_cli.train.trainer import Stage, Trainer, TrainContext, make_context, read_metrics


def stage_class(name: str) -> type[Stage]:
    from hypernst_cli.train.aladin import AladinStage
    from hypernst_cli.train.autoencoder import AutoencoderStage
    from hypernst_cli.train.encoder import EncoderStage
    from hypernst_cli.train.generator import GeneratorStage
    from hypernst_cli.train.hyper import ReconstructStage, StylizeStage

    classes: dict[str, type[Stage]] = {
        "generator": GeneratorStage, "encoder": EncoderStage,
        "reconstruct": ReconstructStage, "stylize": StylizeStage,
        "aladin": AladinStage, "autoencoder": AutoencoderStage,
    }
    try:
        return classes[name]
    except KeyError:
        raise UsageError(f"unknown training stage '{name}'",
                         hint=f"use one of: {', '.join(classes)}") from None


def build_stage(cfg: dict[str, Any], ctx: TrainContext, log: Callable[[str], None] | None = None,
                warn: Callable[[str], None] | None = None) -> Any:
    cls = stage_class(cfg["stage"])
    return cls(cfg=cfg, ctx=ctx, log=log, warn=warn)  # type: ignore[call-arg]


def run_training(cfg: dict[str, Any], run_dir: Path, *, resume: bool = False,
                 log: Callable[[str], None] | None = None,
                 warn: Callable[[str], None] | None = None, progress: bool = True,
                 ctx: TrainContext | None = None) -> Path | None:
    """Train ``cfg['stage']`` into ``run_dir``; returns the exported model folder (rank 0) or None.

    ``resume``: continue from the newest checkpoint in RUN_DIR/checkpoints (exactly: weights,
    optimizers, scaler, EMA, RNG and data position), or start fresh when there is none.
    """
    run_dir = Path(run_dir)
    if not resume and (run_dir / "checkpoints").is_dir() and any((run_dir / "checkpoints").iterdir()):
        raise UsageError(f"{run_dir} already holds checkpoints",
                         hint="pass --resume to continue that run, or choose another -o RUN_DIR")
    ctx = ctx or make_context(cfg)
    try:
        stage = build_stage(cfg, ctx, log, warn)
        trainer = Trainer(stage, run_dir, log=log or (lambda m: None), progress=progress)
        if resume and not trainer.resume() and log is not None and ctx.is_main:
            log(f"no checkpoint in {run_dir / 'checkpoints'}: starting from step 0")
        last = trainer.run()
        if not last:  # resumed at the last step: the losses are those the run logged last
            rows = read_metrics(run_dir)
            last = {k: float(v) for k, v in (rows[-1] if rows else {}).items()
                    if isinstance(v, (int, float)) and k not in ("step", "time")}
        final = None
        if ctx.is_main:
            stage.summary = {"steps": trainer.step, "final": last}
            final = stage.export(run_dir / "final")
        if ctx.distributed:
            torch.distributed.barrier()
        return final
    finally:
        if ctx.distributed and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
