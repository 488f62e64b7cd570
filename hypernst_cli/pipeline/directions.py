"""Edit directions (InterFaceGAN) for a model: shipped inside its folder, downloaded, or a file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from hypernst_cli.errors import UsageError, WeightsNotFoundError

KNOWN = ("age", "smile", "pose")


def resolve_direction(spec: str, models: Any) -> tuple[str, torch.Tensor]:
    """(name, direction tensor) for ``--direction age|smile|pose|FILE``."""
    path = Path(spec).expanduser()
    if path.suffix or path.exists():
        return _from_file(path)
    name = spec.lower()
    if name in models.directions:
        return name, models.directions[name].float()
    from hypernst_cli.weights.checkpoint import load_model_folder, resolve_weights
    from hypernst_cli.weights.registry import load_registry

    cfg_name = models.config.name
    for entry in load_registry().values():
        if entry.kind == "directions" and cfg_name in entry.configs and \
                entry.extra.get("direction", entry.name.rsplit("-", 1)[-1]) == name:
            resolved = resolve_weights(entry.name, cfg_name)
            found = load_model_folder(resolved.path).networks.get("directions", {})
            if name in found:
                return name, found[name].float()
    known = sorted(models.directions) or []
    raise WeightsNotFoundError(
        f"no '{name}' edit direction for the {cfg_name} model",
        hint=(f"this model ships: {', '.join(known)}" if known else
              "pass a direction file (`hypernst convert directions FILE -o DIR.safetensors`)"),
    )


def _from_file(path: Path) -> tuple[str, torch.Tensor]:
    from hypernst_cli.weights.checkpoint import load_model_folder

    if not path.exists():
        raise UsageError(f"{path}: no such direction file")
    if path.suffix not in (".safetensors", "") and not path.is_dir():
        raise UsageError(f"{path}: directions are read from safetensors",
                         hint=f"convert it first: hypernst convert directions {path} -o {path.stem}.safetensors")
    found = load_model_folder(path).networks.get("directions", {})
    if len(found) != 1:
        raise UsageError(f"{path}: expected one direction, found {len(found)}: {', '.join(found)}",
                         hint="use a file that holds a single direction")
    name, vector = next(iter(found.items()))
    return name, vector.float()
