"""Edit directions (InterFaceGAN) for a model: shipped inside its folder, downloaded, or a file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from hypernst_cli.errors import InputError, UsageError, WeightsNotFoundError

KNOWN = ("age", "smile", "pose")


def resolve_direction(spec: str, models: Any) -> tuple[str, torch.Tensor]:
    """(name, direction tensor) for ``--direction age|smile|pose|FILE``, checked for the model."""
    path = Path(spec).expanduser()
    if path.suffix or path.exists():
        name, vector = _from_file(path)
        return name, check_direction(name, vector, models, source=path)
    name = spec.lower()
    if name in models.directions:
        return name, check_direction(name, models.directions[name].float(), models,
                                     source=models.source)
    known = known_directions(models)
    if name not in known:
        # a typo is the user's to fix (exit 2); a known direction whose file is missing is a
        # weights problem (exit 3, from _from_registry)
        ships = sorted(models.directions)
        raise UsageError(
            f"unknown edit direction '{spec}'",
            hint=f"use one of: {', '.join(known)}, or a direction file NAME.safetensors"
                 + (f"; this model ships {', '.join(ships)}" if ships else
                    "; this model ships none"))
    return name, _from_registry(name, models)


def known_directions(models: Any) -> list[str]:
    """Every direction name ``--direction`` can mean: the standard ones, those the model ships,
    and those the weights registry lists (for any config)."""
    from hypernst_cli.weights.registry import load_registry

    names = set(KNOWN) | set(models.directions)
    for entry in load_registry().values():
        if entry.kind == "directions":
            names.add(entry.extra.get("direction", entry.name.rsplit("-", 1)[-1]))
    return sorted(names)


def _n_latent(models: Any) -> int:
    generator = getattr(models, "networks", {}).get("generator")
    if generator is not None and hasattr(generator, "n_latent"):
        return int(generator.n_latent)
    from hypernst_cli.pipeline.models import n_latent_for

    return n_latent_for(models.config.generator.resolution)


def check_values(name: str, vector: torch.Tensor, source: str | Path) -> None:
    """An InputError (exit 2) for a direction no edit can use: NaN or inf values (black
    frames), or all zeros (no edit at all)."""
    if not bool(torch.isfinite(vector).all()):
        raise InputError(source, f"direction '{name}' has NaN or inf values",
                         hint="fix or re-export the direction")
    if not bool(vector.any()):
        raise InputError(source, f"direction '{name}' is all zeros: it would not edit anything",
                         hint="give a non-zero direction")


def check_direction(name: str, vector: torch.Tensor, models: Any, *,
                    source: str | Path) -> torch.Tensor:
    """``vector`` when it is usable on this model: finite, non-zero, and with 1 or n_latent
    layers (``core.edit_wplus`` adds a [D] / [1, D] direction to every W+ latent and an [L, D] one
    layer by layer); else an InputError (exit 2) naming the file and the problem."""
    check_values(name, vector, source)
    n = _n_latent(models)
    if vector.dim() == 3 and vector.shape[0] == 1:
        layers = vector.shape[1]
        ok = layers == 1 or layers >= n  # deeper per-layer directions: the first n are used
    elif vector.dim() == 2:
        layers = vector.shape[0]
        ok = layers in (1, n)
    elif vector.dim() == 1:
        layers, ok = 1, True
    else:
        raise InputError(source, f"direction '{name}' has shape {list(vector.shape)}; "
                                 f"expected [D], [1, D] or [{n}, D]",
                         hint="use a direction made for this model")
    if not ok:
        raise InputError(source, f"direction '{name}' has {layers} layers; this model takes 1 "
                                 f"(one for every layer) or {n}",
                         hint="use a direction made for this model")
    return vector


def _from_registry(name: str, models: Any) -> torch.Tensor:
    from hypernst_cli.weights.checkpoint import load_model_folder, resolve_weights
    from hypernst_cli.weights.registry import load_registry

    cfg_name = models.config.name
    for entry in load_registry().values():
        if entry.kind == "directions" and cfg_name in entry.configs and \
                entry.extra.get("direction", entry.name.rsplit("-", 1)[-1]) == name:
            resolved = resolve_weights(entry.name, cfg_name)
            found = load_model_folder(resolved.path).networks.get("directions", {})
            if name in found:
                return check_direction(name, found[name].float(), models, source=resolved.path)
    known = sorted(models.directions) or []
    raise WeightsNotFoundError(
        f"no '{name}' edit direction for the {cfg_name} model",
        hint=(f"this model ships: {', '.join(known)}" if known else
              "pass a direction file (`hypernst convert directions FILE -o DIR.safetensors`)"),
    )


def refuse_latent_file(spec: str | Path) -> None:
    """A UsageError when ``spec`` is a latent written by `hypernst invert` (its metadata says
    so): given as a direction it was reported as a model folder without a config."""
    from hypernst_cli.errors import WeightsIntegrityError
    from hypernst_cli.weights.checkpoint import read_metadata

    path = Path(spec).expanduser()
    if path.suffix != ".safetensors" or not path.is_file():
        return
    try:
        kind = read_metadata(path).get("format")
    except WeightsIntegrityError:
        return  # not readable as safetensors: the direction loader names the problem
    if kind == "hypernst-latent":
        raise UsageError(
            f"{path}: a latent written by `hypernst invert`, not an edit direction",
            hint="pass it with --latent; for a direction file use age, smile or pose, or make one "
                 "with `hypernst convert directions` or `hypernst directions fit`")


def _from_file(path: Path) -> tuple[str, torch.Tensor]:
    from hypernst_cli.weights.checkpoint import load_model_folder

    if not path.exists():
        raise UsageError(f"{path}: no such direction file")
    refuse_latent_file(path)
    if path.suffix not in (".safetensors", "") and not path.is_dir():
        raise UsageError(f"{path}: directions are read from safetensors",
                         hint=f"convert it first: hypernst convert directions {path} -o {path.stem}.safetensors")
    found = load_model_folder(path).networks.get("directions", {})
    if len(found) != 1:
        raise UsageError(f"{path}: expected one direction, found {len(found)}: {', '.join(found)}",
                         hint="use a file that holds a single direction")
    name, vector = next(iter(found.items()))
    return name, vector.float()
