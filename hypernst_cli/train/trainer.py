"""The training loop shared by every stage: devices, DDP, AMP, logging, samples, checkpoints.

A stage (see ``Stage``) owns its networks, optimizers and losses; the ``Trainer`` owns time: it
draws batches, calls ``stage.train_step``, logs JSONL metrics, writes sample grids and atomic
checkpoints (keep-last-k), resumes exactly (modules, optimizers, scaler, RNG, data position), and
exports the final model folder. Under torchrun (RANK / WORLD_SIZE in the environment) it runs DDP
(gloo on the CPU, NCCL on CUDA) and only rank 0 writes files.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hypernst_cli.errors import WeightsIntegrityError
from hypernst_cli.io.atomic import atomic_path, atomic_write_text
from hypernst_cli.train.checkpoint import (
    checkpoint_name,
    latest_checkpoint,
    list_checkpoints,
    load_training_state,
    prune_checkpoints,
    save_training_state,
)
from hypernst_cli.train.config import dump_toml


@dataclass
class TrainContext:
    """What a stage needs from the loop."""

    device: torch.device
    rank: int = 0
    world: int = 1
    amp_dtype: torch.dtype | None = None
    scaler: torch.amp.GradScaler | None = None
    grad_checkpointing: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def wrap(self, module: torch.nn.Module) -> torch.nn.Module:
        """DDP-wrap a trainable module when distributed (identity otherwise)."""
        if not self.distributed:
            return module
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(module, device_ids=ids, find_unused_parameters=True)

    # ``scaled=False``: a full-precision pass outside autocast (a lazy regulariser such as R1,
    # second-order gradients) that the GradScaler must not see: fp32 gradients need no loss
    # scaling, and the scaler allows one step per optimizer between two updates.
    def backward(self, loss: torch.Tensor, *, scaled: bool = True) -> None:
        if self.scaler is not None and scaled:
            self.scaler.scale(loss).backward()
        else:
            loss.backward()

    def step(self, optimizer: torch.optim.Optimizer, *, scaled: bool = True) -> None:
        if self.scaler is not None and scaled:
            self.scaler.step(optimizer)
        else:
            optimizer.step()


@dataclass
class Stage:
    """Base of the training stages. Subclasses fill ``modules`` / ``optimizers`` and implement
    ``next_batch``, ``train_step``, ``sample_grid`` and ``export``."""

    cfg: dict[str, Any]
    ctx: TrainContext
    modules: dict[str, torch.nn.Module] = field(default_factory=dict)
    optimizers: dict[str, torch.optim.Optimizer] = field(default_factory=dict)

    def __post_init__(self) -> None:
        """Subclasses build their networks, optimizers and data here."""

    def data_state(self) -> dict[str, Any]:
        """Extra state to checkpoint (e.g. sampler positions)."""
        return {}

    def load_data_state(self, state: dict[str, Any]) -> None:
        pass

    def train_step(self, step: int) -> dict[str, float]:  # pragma: no cover - abstract
        raise NotImplementedError

    def sample_grid(self) -> np.ndarray | None:
        return None

    def export(self, folder: Path) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


def distributed_env() -> tuple[int, int, int]:
    """(rank, world size, local rank) from torchrun's environment; (0, 1, 0) otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    return rank, world, local


def make_context(cfg: dict[str, Any]) -> TrainContext:
    from hypernst_cli.device import resolve_device

    rank, world, local = distributed_env()
    device = resolve_device(cfg.get("device", "auto"))
    if device.type == "cuda" and world > 1:
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    if world > 1 and not torch.distributed.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        torch.distributed.init_process_group(backend=backend)
    amp = cfg.get("amp", "none")
    amp_dtype = None
    scaler = None
    if device.type == "cuda" and amp in ("bf16", "fp16"):
        amp_dtype = torch.bfloat16 if amp == "bf16" else torch.float16
        if amp == "fp16":
            scaler = torch.amp.GradScaler("cuda")
    return TrainContext(device=device, rank=rank, world=world, amp_dtype=amp_dtype,
                        scaler=scaler, grad_checkpointing=bool(cfg.get("grad_checkpointing")))


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped a run after a finished step, checkpointed at ``step`` in ``checkpoint``
    (None on ranks that write nothing)."""

    def __init__(self, step: int, checkpoint: Path | None) -> None:
        super().__init__(f"interrupted at step {step}")
        self.step = step
        self.checkpoint = checkpoint


class Trainer:
    def __init__(self, stage: Stage, run_dir: Path, *, log: Callable[[str], None] | None = None,
                 progress: bool = True) -> None:
        self.stage = stage
        self.cfg = stage.cfg
        self.ctx = stage.ctx
        self.run_dir = Path(run_dir)
        self.ckpt_dir = self.run_dir / "checkpoints"
        self.log = log or (lambda msg: None)
        self.progress = progress and self.ctx.is_main
        self.step = 0

    # --- checkpoints -------------------------------------------------------------------------
    def save(self) -> Path | None:
        if not self.ctx.is_main:
            return None
        path = save_training_state(
            self.ckpt_dir / checkpoint_name(self.step),
            modules=self.stage.modules,
            optimizers=self.stage.optimizers,
            scaler=self.ctx.scaler,
            step=self.step,
            extra={"data": self.stage.data_state(), "stage": self.cfg["stage"]},
        )
        prune_checkpoints(self.ckpt_dir, int(self.cfg.get("keep_last", 3)))
        return path

    def resume(self, path: Path | None = None) -> bool:
        path = path or latest_checkpoint(self.ckpt_dir)
        if path is None:
            return False
        try:
            self.step, extra = load_training_state(
                path, modules=self.stage.modules, optimizers=self.stage.optimizers,
                scaler=self.ctx.scaler, stage=self.cfg["stage"],
            )
        except WeightsIntegrityError as exc:
            older = [p for p in list_checkpoints(self.ckpt_dir) if p != path]
            if not older:
                raise
            raise WeightsIntegrityError(
                exc.message, hint=f"move it out of {self.ckpt_dir} to resume from "
                                  f"{older[-1].name}, the checkpoint before it") from exc
        self.stage.load_data_state(extra.get("data", {}))
        if self.ctx.is_main:
            self._drop_metrics_after(self.step)
        self.log(f"resumed from {path} at step {self.step}")
        return True

    def _drop_metrics_after(self, step: int) -> None:
        """Forget the logged rows of steps after the checkpoint: the resumed run logs those
        steps again (with the same losses), so the file keeps one row per step."""
        path = self.run_dir / "metrics.jsonl"
        if not path.is_file():
            return
        lines = path.read_text().splitlines()
        kept = []
        for line in lines:
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue  # a torn last line
            if int(row.get("step", 0)) <= step:
                kept.append(line)
        if len(kept) != len(lines):
            atomic_write_text(path, "".join(f"{line}\n" for line in kept))

    # --- the loop ----------------------------------------------------------------------------
    def run(self, *, steps: int | None = None) -> dict[str, float]:
        total = int(steps if steps is not None else self.cfg["steps"])
        if self.ctx.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_text(self.run_dir / "config.toml", dump_toml(self.cfg))
            self._check_writable(self.ckpt_dir)
        log_every = max(1, int(self.cfg.get("log_every", 10)))
        ckpt_every = int(self.cfg.get("checkpoint_every", 0))
        sample_every = int(self.cfg.get("sample_every", 0))
        # a run resumed at (or told to stop at) a step it already reached trains nothing: its
        # last losses are the last logged ones, so the export still records them
        logged = read_metrics(self.run_dir) if self.step >= total else []
        last: dict[str, float] = {k: float(v) for k, v in logged[-1].items()
                                  if k not in ("step", "time")} if logged else {}
        t_start = time.perf_counter()
        # a time budget ends the run like its last step (checkpoint, samples, export), so a run
        # sized in minutes on a borrowed machine always leaves a model behind
        budget_s = float(self.cfg.get("max_minutes", 0) or 0) * 60
        # a logged row is the mean over the steps since the last one: one step's losses, on a
        # batch of a few items, are too noisy to read a trend from
        window: dict[str, list[float]] = {}
        with self._progress(total) as advance, self._deferred_interrupt() as interrupted:
            while self.step < total:
                t0 = time.perf_counter()
                logs = self.stage.train_step(self.step)
                self.step += 1
                last = {k: float(v) for k, v in logs.items()}
                last["seconds"] = time.perf_counter() - t0
                for k, v in last.items():
                    window.setdefault(k, []).append(v)
                out_of_time = bool(budget_s) and time.perf_counter() - t_start >= budget_s
                if budget_s and self.ctx.distributed:  # every rank stops at the same step
                    flag = torch.tensor([float(out_of_time)], device=self.ctx.device)
                    torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
                    out_of_time = bool(flag.item())
                if self.step % log_every == 0 or self.step == total or out_of_time:
                    logged_row = {k: sum(v) / len(v) for k, v in window.items()}
                    window.clear()
                    if self.ctx.is_main:
                        self._write_metrics(logged_row, time.perf_counter() - t_start)
                    last = logged_row  # what the run returns: the final row, not one noisy step
                if self.ctx.is_main and sample_every and self.step % sample_every == 0:
                    self._write_samples()
                if ckpt_every and self.step % ckpt_every == 0 and self.step < total:
                    self.save()
                advance(last)
                if interrupted() and self.step < total:
                    # the finished steps are kept: checkpoint them, then stop as Ctrl-C does
                    path = self.save()
                    raise TrainingInterrupted(self.step, path)
                if out_of_time and self.step < total:
                    self.log(f"stopped at step {self.step} of {total}: max_minutes "
                             f"({budget_s / 60:g}) reached")
                    break
        self.save()
        if self.ctx.is_main:
            self._write_samples()
        return last

    def _check_writable(self, folder: Path) -> None:
        """A WriteError (exit 74) now, not after the first checkpoint_every steps of work."""
        probe = folder / ".write-probe"
        with atomic_path(probe) as tmp:
            tmp.write_bytes(b"")
        probe.unlink(missing_ok=True)

    @contextlib.contextmanager
    def _deferred_interrupt(self) -> Iterator[Callable[[], bool]]:
        """Ctrl-C (SIGINT) during a step lets the step finish; the loop then checkpoints and
        stops (``TrainingInterrupted``), so a resumed run loses no finished step. A second
        Ctrl-C stops at once. Under DDP (the ranks could stop at different steps) and off the
        main thread, Ctrl-C interrupts at once as before."""
        requested = [False]
        if self.ctx.distributed or threading.current_thread() is not threading.main_thread():
            yield lambda: False
            return

        def on_sigint(signum: int, frame: Any) -> None:
            if requested[0]:
                raise KeyboardInterrupt
            requested[0] = True
            self.log(f"interrupted: finishing step {self.step + 1} and writing a checkpoint "
                     "(Ctrl-C again to stop at once, losing the steps since the last one)")

        previous = signal.signal(signal.SIGINT, on_sigint)
        try:
            yield lambda: requested[0]
        finally:
            signal.signal(signal.SIGINT, previous)

    def _write_metrics(self, logs: dict[str, float], elapsed: float) -> None:
        row = {"step": self.step, "time": round(elapsed, 3), **{k: round(v, 6) for k, v in logs.items()}}
        if self.ctx.device.type == "cuda":
            row["peak_vram_gb"] = round(torch.cuda.max_memory_allocated(self.ctx.device) / 2**30, 3)
        path = self.run_dir / "metrics.jsonl"
        with path.open("a") as fh:  # appended line by line; a torn last line is skipped on read
            fh.write(json.dumps(row) + "\n")

    def _write_samples(self) -> None:
        grid = self.stage.sample_grid()
        if grid is not None:
            from hypernst_cli.io import save_image

            save_image(grid, self.run_dir / "samples" / f"step-{self.step:08d}.png")

    @contextlib.contextmanager
    def _progress(self, total: int) -> Iterator[Callable[[dict[str, float]], None]]:
        if not self.progress:
            yield lambda logs: None
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
        from rich.progress import TimeElapsedColumn, TimeRemainingColumn

        from hypernst_cli.cli.state import STATE

        bar = Progress(TextColumn(f"{self.cfg['stage']}"), BarColumn(), MofNCompleteColumn(),
                       TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[msg]}"),
                       console=STATE.err, transient=False)
        with bar:
            task = bar.add_task("train", total=total, completed=self.step, msg="")

            def advance(logs: dict[str, float]) -> None:
                msg = " ".join(f"{k}={v:.4g}" for k, v in logs.items() if k != "seconds")
                bar.update(task, completed=self.step, msg=msg[:80])

            yield advance


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    rows = []
    path = Path(run_dir) / "metrics.jsonl"
    if path.exists():
        for line in path.read_text().splitlines():
            with contextlib.suppress(json.JSONDecodeError):
                rows.append(json.loads(line))
    return rows
