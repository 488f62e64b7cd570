"""Training checkpoints as safetensors (no pickle): models, optimizers, scaler, EMA, RNG, data position.

Tensors go into the safetensors payload under flat keys; everything else (optimizer param groups,
step counters, numpy/python RNG states, the effective config) goes into its JSON metadata. Writes
are atomic; ``keep_last`` old checkpoints are kept.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hypernst_cli.errors import UsageError, WeightsIntegrityError, WeightsNotFoundError
from hypernst_cli.io.atomic import atomic_path

CKPT_PATTERN = re.compile(r"^step-(\d{8})\.safetensors$")


def checkpoint_name(step: int) -> str:
    return f"step-{step:08d}.safetensors"


def list_checkpoints(folder: Path) -> list[Path]:
    """Checkpoints in ``folder``, oldest first."""
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := CKPT_PATTERN.match(p.name))]
    return [p for _, p in sorted(found)]


def latest_checkpoint(folder: Path) -> Path | None:
    ckpts = list_checkpoints(folder)
    return ckpts[-1] if ckpts else None


# --- flattening ----------------------------------------------------------------------------------


def _flatten_optimizer(prefix: str, sd: Mapping[str, Any], tensors: dict, meta: dict) -> None:
    """Optimizer state: per-param tensors -> tensors; scalars and param_groups -> JSON."""
    scalars: dict[str, dict[str, Any]] = {}
    for pid, state in sd["state"].items():
        for key, value in state.items():
            if torch.is_tensor(value):
                tensors[f"{prefix}.state.{pid}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(pid), {})[key] = value
    meta[prefix] = {"param_groups": sd["param_groups"], "scalars": scalars}


def _unflatten_optimizer(prefix: str, tensors: Mapping[str, torch.Tensor], meta: dict) -> dict:
    info = meta[prefix]
    state: dict[int, dict[str, Any]] = {}
    head = f"{prefix}.state."
    for key, value in tensors.items():
        if key.startswith(head):
            pid, name = key[len(head):].split(".", 1)
            state.setdefault(int(pid), {})[name] = value
    for pid, scalars in info["scalars"].items():
        state.setdefault(int(pid), {}).update(scalars)
    return {"state": state, "param_groups": info["param_groups"]}


def rng_state() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors = {"rng.torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = s
    np_state = np.random.get_state()
    meta = {
        "numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]],
        "python": _jsonable(random.getstate()),
    }
    return tensors, meta


def restore_rng(tensors: Mapping[str, torch.Tensor], meta: Mapping[str, Any]) -> None:
    torch.set_rng_state(tensors["rng.torch"])
    if torch.cuda.is_available():
        states = [tensors[k] for k in sorted(tensors) if k.startswith("rng.cuda.")]
        if states and len(states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(states)
    n = meta["numpy"]
    np.random.set_state((n[0], np.array(n[1], dtype=np.uint32), *n[2:]))
    random.setstate(_tupled(meta["python"]))


def _jsonable(x: Any) -> Any:
    if isinstance(x, tuple):
        return {"__tuple__": [_jsonable(v) for v in x]}
    return x


def _tupled(x: Any) -> Any:
    if isinstance(x, dict) and "__tuple__" in x:
        return tuple(_tupled(v) for v in x["__tuple__"])
    return x


# --- save / load ---------------------------------------------------------------------------------


def save_training_state(
    path: Path,
    *,
    modules: Mapping[str, torch.nn.Module],
    optimizers: Mapping[str, torch.optim.Optimizer],
    scaler: torch.amp.GradScaler | None,
    step: int,
    extra: Mapping[str, Any],
) -> Path:
    """Write everything needed to continue exactly (atomic)."""
    from safetensors.torch import save_file

    tensors: dict[str, torch.Tensor] = {}
    meta: dict[str, Any] = {"step": step, "extra": dict(extra), "modules": sorted(modules)}
    for name, module in modules.items():
        for key, value in module.state_dict().items():
            tensors[f"module.{name}.{key}"] = value.detach().cpu().contiguous()
    for name, opt in optimizers.items():
        _flatten_optimizer(f"optim.{name}", opt.state_dict(), tensors, meta)
    meta["optimizers"] = sorted(optimizers)
    if scaler is not None and scaler.is_enabled():
        meta["scaler"] = scaler.state_dict()
    rng_tensors, rng_meta = rng_state()
    tensors.update(rng_tensors)
    meta["rng"] = rng_meta
    # safetensors refuses tensors that share memory: clone the (rare) aliases
    seen: set[int] = set()
    for key, t in tensors.items():
        ptr = t.data_ptr()
        if ptr in seen and t.numel():
            tensors[key] = t.clone()
        seen.add(ptr)
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={"hypernst_training_state": json.dumps(meta)})
    return path


def load_training_state(
    path: Path,
    *,
    modules: Mapping[str, torch.nn.Module],
    optimizers: Mapping[str, torch.optim.Optimizer],
    scaler: torch.amp.GradScaler | None,
    restore_random: bool = True,
    stage: str | None = None,
) -> tuple[int, dict[str, Any]]:
    """Restore a checkpoint written by ``save_training_state``; returns (step, extra).

    ``stage``: the stage resuming it; a checkpoint of another stage, or one whose networks or
    optimizers do not fit the ones given (another model config or init), is a UsageError naming
    the file, before anything is changed."""
    from safetensors import safe_open

    if not path.is_file():
        raise WeightsNotFoundError(f"{path}: checkpoint not found")
    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = json.loads((fh.metadata() or {})["hypernst_training_state"])
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    except (KeyError, json.JSONDecodeError, Exception) as exc:  # noqa: BLE001
        raise WeightsIntegrityError(
            f"{path}: not a hypernst training checkpoint ({type(exc).__name__})"
        ) from exc
    written_by = (meta.get("extra") or {}).get("stage")
    resume_hint = ("resume with the stage and options the run was started with "
                   "(RUN_DIR/config.toml), or choose a new -o RUN_DIR")
    if stage is not None and written_by is not None and written_by != stage:
        raise UsageError(f"{path}: a checkpoint of the '{written_by}' stage, not '{stage}'",
                         hint=resume_hint)
    states = {}
    for name in modules:
        head = f"module.{name}."
        states[name] = {k[len(head):]: v for k, v in tensors.items() if k.startswith(head)}
    missing = [f"'{n}'" for n, m in modules.items() if not states[n] and m.state_dict()] + \
        [f"the '{o}' optimizer" for o in optimizers if f"optim.{o}" not in meta]
    if missing:
        raise UsageError(f"{path}: the checkpoint has no state for {', '.join(missing)}: it was "
                         f"written for other networks", hint=resume_hint)
    for name, module in modules.items():
        try:
            module.load_state_dict(states[name], strict=True)
        except RuntimeError as exc:
            why = " ".join(str(exc).split())[:160]
            raise UsageError(f"{path}: the '{name}' network in the checkpoint does not fit this "
                             f"run's ({why}...): it was written for another model config or "
                             f"init", hint=resume_hint) from exc
    for name, opt in optimizers.items():
        try:
            opt.load_state_dict(_unflatten_optimizer(f"optim.{name}", tensors, meta))
        except (KeyError, ValueError) as exc:
            raise UsageError(f"{path}: the '{name}' optimizer in the checkpoint does not fit this "
                             f"run's ({type(exc).__name__}: {exc})", hint=resume_hint) from exc
    if scaler is not None and "scaler" in meta:
        scaler.load_state_dict(meta["scaler"])
    if restore_random:
        restore_rng(tensors, meta["rng"])
    return int(meta["step"]), meta["extra"]


def prune_checkpoints(folder: Path, keep_last: int) -> list[Path]:
    """Delete all but the newest ``keep_last`` checkpoints; returns what was removed."""
    ckpts = list_checkpoints(folder)
    doomed = ckpts[:-keep_last] if keep_last > 0 else []
    for p in doomed:
        p.unlink(missing_ok=True)
    return doomed
