"""Training configs: TOML files with the paper's defaults per stage, overridable from the CLI.

``load_train_config(stage, file, overrides)`` starts from the stage's defaults
(``hypernst_cli/train/defaults/STAGE.toml``), applies the user's TOML file, then ``key=value``
overrides (dotted keys for tables: ``loss.style=2``; values parsed as TOML, bare words as
strings). Unknown keys are errors, so a typo never trains the wrong thing silently.
"""

from __future__ import annotations

import copy
import math
import sys
from pathlib import Path
from typing import Any

from hypernst_cli.errors import UsageError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

STAGES = ("generator", "encoder", "reconstruct", "stylize", "aladin", "autoencoder")
DEFAULTS_DIR = Path(__file__).resolve().parent / "defaults"

#: (stage, old option) -> new name, with why: an old config says which key to rename instead of
#: failing as an unknown option
RENAMED = {
    ("stylize", "layers"): ("stylize_layers", "the model config's hypernet.layers is another "
                                              "thing: the layers that get offsets at all"),
}


def stage_defaults(stage: str) -> dict[str, Any]:
    if stage not in STAGES:
        raise UsageError(f"unknown training stage '{stage}'", hint=f"use one of: {', '.join(STAGES)}")
    base = tomllib.loads((DEFAULTS_DIR / "common.toml").read_text())
    specific = tomllib.loads((DEFAULTS_DIR / f"{stage}.toml").read_text())
    return _merge(base, specific, allow_new=True, where="")


def _merge(base: dict, update: dict, *, allow_new: bool, where: str) -> dict:
    out = copy.deepcopy(base)
    for key, value in update.items():
        path = f"{where}{key}"
        if key not in out and not allow_new:
            raise UsageError(f"unknown training option '{path}'",
                             hint="see `hypernst train STAGE --show-config` for the options")
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value, allow_new=allow_new, where=f"{path}.")
        else:
            if key in out and out[key] is not None and not _same_kind(out[key], value):
                raise UsageError(
                    f"training option '{path}' expects {type(out[key]).__name__}, "
                    f"got {value!r}"
                )
            out[key] = value
    return out


def _same_kind(default: Any, value: Any) -> bool:
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(default, bool) and isinstance(value, bool)
    if isinstance(default, (int, float)):
        return isinstance(value, (int, float))
    return isinstance(value, type(default))


def parse_override(text: str) -> dict[str, Any]:
    """``a.b=3`` -> {"a": {"b": 3}}; the value is TOML, or a plain string if it isn't."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise UsageError(f"invalid override '{text}'", hint="use KEY=VALUE, e.g. steps=2000")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    node: dict[str, Any] = {}
    cursor = node
    parts = key.strip().split(".")
    for part in parts[:-1]:
        cursor = cursor.setdefault(part, {})
    cursor[parts[-1]] = value
    return node


def _refuse_renamed(stage: str, options: dict[str, Any], source: str) -> None:
    for (renamed_stage, old), (new, why) in RENAMED.items():
        if stage == renamed_stage and old in options:
            raise UsageError(f"{source}: the {stage} option '{old}' is now '{new}' ({why}): "
                             f"rename it")


def load_train_config(
    stage: str, file: Path | None = None, overrides: list[str] | None = None
) -> dict[str, Any]:
    cfg = stage_defaults(stage)
    if file is not None:
        try:
            user = tomllib.loads(Path(file).read_text())
        except FileNotFoundError:
            raise UsageError(f"{file}: config file not found") from None
        except tomllib.TOMLDecodeError as exc:
            raise UsageError(f"{file}: invalid TOML ({exc})") from None
        user_stage = user.pop("stage", stage)
        if user_stage != stage:
            raise UsageError(f"{file} is a '{user_stage}' config, not '{stage}'")
        _refuse_renamed(stage, user, str(file))
        cfg = _merge(cfg, user, allow_new=False, where="")
    for text in overrides or []:
        override = parse_override(text)
        _refuse_renamed(stage, override, f"override '{text}'")
        cfg = _merge(cfg, override, allow_new=False, where="")
    cfg["stage"] = stage
    _check_ranges(cfg)
    return cfg


def _is_lr(key: str) -> bool:
    return key == "lr" or key.startswith("lr_") or key.endswith("_lr")


#: the largest ``seed``: the stages seed numpy with seed x 1000 + 1 + rank, which must stay
#: below 2**32 (a larger seed ended the run with an internal error at its start)
MAX_SEED = 4_000_000
AMP_MODES = ("none", "bf16", "fp16")
#: what 0 means for the counts that may be 0
ZERO_MEANS = {"keep_last": "keep all", "checkpoint_every": "only at the end",
              "sample_every": "only at the end"}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_ranges(cfg: dict[str, Any], where: str = "") -> None:
    """Refuse values no run can use (before anything is written): learning rates must be
    finite and >= 0 (0 freezes that part); batch_size and steps integers >= 1; iterations an
    integer >= 1; every ``*_every`` and keep_last an integer >= 0 (ZERO_MEANS); seed
    an integer from 0 to MAX_SEED; max_minutes finite and >= 0 (0: no limit; a negative one
    stopped after the first step, NaN never); amp one of AMP_MODES."""
    for key, value in cfg.items():
        path = f"{where}{key}"
        if isinstance(value, dict):
            _check_ranges(value, f"{path}.")
        elif key.endswith("_every") or (not where and key == "keep_last"):
            if not _is_int(value) or value < 0:
                zero = f" (0: {ZERO_MEANS[path]})" if path in ZERO_MEANS else ""
                raise UsageError(f"training option '{path}' must be an integer >= 0{zero}, "
                                 f"got {value!r}", hint=f"e.g. {path}=10")
        elif not where and key == "iterations":
            if not _is_int(value) or value < 1:
                raise UsageError(f"training option 'iterations' must be an integer >= 1, "
                                 f"got {value!r}", hint="e.g. iterations=3, the paper's")
        elif not where and key == "seed":
            if not _is_int(value) or not 0 <= value <= MAX_SEED:
                raise UsageError(f"training option 'seed' must be an integer from 0 to "
                                 f"{MAX_SEED}, got {value!r}", hint="e.g. seed=0")
        elif not where and key == "max_minutes":
            if (isinstance(value, bool) or not isinstance(value, (int, float))
                    or not math.isfinite(value) or value < 0):
                raise UsageError(f"training option 'max_minutes' must be a number of minutes "
                                 f"> 0, or 0 for no limit, got {value!r}",
                                 hint="e.g. max_minutes=30")
        elif not where and key == "amp":
            if value not in AMP_MODES:
                raise UsageError(f"training option 'amp' must be one of {', '.join(AMP_MODES)}, "
                                 f"got {value!r}", hint="e.g. amp=bf16 on CUDA")
        elif _is_lr(key) and value is not None:
            # 0 is allowed: a recipe freezes a part with it (lr_encoder = 0)
            if (isinstance(value, bool) or not isinstance(value, (int, float))
                    or not math.isfinite(value) or value < 0):
                raise UsageError(f"training option '{path}' must be a finite number >= 0, "
                                 f"got {value!r}", hint=f"e.g. {path}=0.0001")
        elif not where and key in ("batch_size", "steps"):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise UsageError(f"training option '{path}' must be an integer >= 1, "
                                 f"got {value!r}", hint=f"e.g. {path}=4")


def dump_toml(cfg: dict[str, Any]) -> str:
    """Write a config back as TOML (the effective config saved in the run dir)."""
    lines: list[str] = []
    tables: list[tuple[str, dict]] = []
    for key, value in cfg.items():
        if isinstance(value, dict):
            tables.append((key, value))
        else:
            lines.append(f"{key} = {_toml_value(value)}")
    for name, table in tables:
        lines.append(f"\n[{name}]")
        for key, value in table.items():
            lines.append(f"{key} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {type(v).__name__} as TOML")
