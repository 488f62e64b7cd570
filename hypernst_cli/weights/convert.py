"""``hypernst convert``: official checkpoints -> our safetensors + JSON config.

Each converter reads the upstream file (pickles only through ``pickles.load_torch_pickle``, .npy
with ``allow_pickle=False``), maps it to our networks, and returns ``(networks, config, extra)``;
``convert`` writes a model folder, or a single ``.safetensors`` file when DST ends with that suffix.
The official -> ours key mappings live next to the networks (hypernst_cli/models/official.py and
official_encoders.py) and are imported only when a converter runs.

Upstream layouts (facts from the upstream projects):

* ``stylegan2`` (rosinality/stylegan2-pytorch ``.pt``): a dict with ``g_ema`` (the EMA generator,
  the one used for inference), ``g``, ``d`` (discriminator), optionally ``latent_avg`` and ``args``
  (an ``argparse.Namespace``).
* ``e4e`` (omertov/encoder4editing ``.pt``): ``state_dict`` with ``encoder.*`` and ``decoder.*``
  (a rosinality generator), ``latent_avg`` and ``opts`` (the training options, kept in metadata).
* ``aladin`` (DanRuta/ALADIN ``.pt``): the ``AViT`` state dict (``enc_style.*``).
* ``directions`` (InterFaceGAN ``.npy`` boundaries, or ``.pt`` tensors as shipped by HyperStyle:
  [1, 512] for W, [1, 18, 512] for W+).
* ``facexlib`` / ``state-dict``: plain ``.pth`` state dicts (``module.`` prefixes from
  DataParallel are removed).
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hypernst_cli.errors import UsageError, WeightsError, WeightsIntegrityError
from hypernst_cli.weights.pickles import load_npy, load_torch_pickle

if TYPE_CHECKING:
    import torch

    from hypernst_cli.weights.registry import WeightsEntry

Converted = tuple[dict[str, dict[str, "torch.Tensor"]], dict[str, Any], dict[str, Any]]


def _mapping_module(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise WeightsError(
            f"this converter needs {name}, which cannot be imported ({exc})",
            hint="reinstall hypernst",
        ) from exc


def _as_dict(config: Any) -> dict[str, Any]:
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        return dataclasses.asdict(config)
    if isinstance(config, dict):
        return dict(config)
    raise TypeError(f"expected a config dataclass or dict, got {type(config).__name__}")


def plain(value: Any, depth: int = 0) -> Any:
    """A JSON-safe copy of training options (Namespace, dicts, numpy scalars, small tensors)."""
    if depth > 8:
        return repr(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if hasattr(value, "__dict__") and type(value).__name__ == "Namespace":
        value = vars(value)
    if isinstance(value, dict):
        return {str(k): plain(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v, depth + 1) for v in value]
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        return value.item()
    return repr(value)


def _state_dict(obj: Any, file: Path) -> dict[str, torch.Tensor]:
    import torch

    if isinstance(obj, dict):
        for key in ("state_dict", "params", "params_ema", "model"):
            if key in obj and isinstance(obj[key], dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not obj:
        raise WeightsIntegrityError(f"{file}: not a state dict")
    tensors = {}
    for key, value in obj.items():
        if not isinstance(value, torch.Tensor):
            raise WeightsIntegrityError(f"{file}: entry '{key}' is not a tensor")
        tensors[key[len("module.") :] if key.startswith("module.") else key] = value
    return tensors


def _sub(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}


# --- converters ------------------------------------------------------------------------------------


def convert_stylegan2(src: Path, name: str | None = None) -> Converted:
    ckpt = load_torch_pickle(src)
    if not isinstance(ckpt, dict) or "g_ema" not in ckpt:
        raise WeightsIntegrityError(
            f"{src}: not a rosinality StyleGAN2 checkpoint (no 'g_ema' entry)"
        )
    official = _mapping_module("hypernst_cli.models.official")
    g_ema = _state_dict(ckpt["g_ema"], src)
    networks = {"generator": official.stylegan2_generator_to_ours(g_ema)}
    if isinstance(ckpt.get("d"), dict):
        networks["discriminator"] = official.stylegan2_discriminator_to_ours(
            _state_dict(ckpt["d"], src)
        )
    if ckpt.get("latent_avg") is not None:
        networks["stats"] = {"latent_avg": ckpt["latent_avg"]}
    config = {
        "name": name or src.stem,
        "generator": _as_dict(official.infer_generator_config(g_ema)),
    }
    extra = {"source_args": plain(ckpt.get("args")), "generator_weights": "g_ema"}
    return networks, config, extra


def convert_e4e(src: Path, name: str | None = None) -> Converted:
    ckpt = load_torch_pickle(src)
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("state_dict"), dict):
        raise WeightsIntegrityError(f"{src}: not an e4e checkpoint (no 'state_dict' entry)")
    state = _state_dict(ckpt["state_dict"], src)
    encoder_sd = _sub(state, "encoder.")
    decoder_sd = _sub(state, "decoder.")
    if not encoder_sd:
        raise WeightsIntegrityError(f"{src}: not an e4e checkpoint (no 'encoder.*' tensors)")
    encoders = _mapping_module("hypernst_cli.models.official_encoders")
    latent_avg = ckpt.get("latent_avg")
    networks = {"encoder": encoders.e4e_to_ours(encoder_sd, latent_avg)}
    config: dict[str, Any] = {
        "name": name or src.stem,
        "encoder": _as_dict(encoders.infer_e4e_config(encoder_sd)),
    }
    if decoder_sd:
        official = _mapping_module("hypernst_cli.models.official")
        networks["generator"] = official.stylegan2_generator_to_ours(decoder_sd)
        config["generator"] = _as_dict(official.infer_generator_config(decoder_sd))
    extra = {"source_opts": plain(ckpt.get("opts"))}
    return networks, config, extra


def convert_aladin(src: Path, name: str | None = None) -> Converted:
    state = _state_dict(load_torch_pickle(src), src)
    encoders = _mapping_module("hypernst_cli.models.official_encoders")
    networks = {"aladin": encoders.aladin_to_ours(state)}
    config = {"name": name or src.stem, "aladin": _as_dict(encoders.infer_aladin_config(state))}
    return networks, config, {}


def convert_directions(src: Path, name: str | None = None) -> Converted:
    import torch

    from hypernst_cli.pipeline.directions import check_values

    if src.suffix.lower() == ".npy":
        found: Any = torch.from_numpy(load_npy(src).copy())
    else:
        found = load_torch_pickle(src)
    if isinstance(found, torch.Tensor):
        directions = {name or src.stem: found}
    elif isinstance(found, dict) and found and all(isinstance(v, torch.Tensor) for v in found.values()):
        directions = {str(k): v for k, v in found.items()}
    else:
        raise WeightsIntegrityError(f"{src}: expected a direction tensor (or a dict of them)")
    spaces = {}
    for key, tensor in directions.items():
        if not tensor.is_floating_point() or tensor.ndim < 1:
            raise WeightsIntegrityError(f"{src}: direction '{key}' is not a float vector")
        shape = list(tensor.shape)
        # what `edit` can apply: [D], [1, D] (W), [L, D] or [1, L, D] (W+, one row per layer)
        if tensor.ndim > 3 or (tensor.ndim == 3 and shape[0] != 1):
            raise WeightsIntegrityError(
                f"{src}: direction '{key}' has shape {shape}; expected [D], [1, D], [L, D] or "
                f"[1, L, D] (InterFaceGAN's are [1, 512])",
                hint="save one direction per tensor, or a dict of them")
        check_values(key, tensor, src)
        per_layer = tensor.ndim == 3 or (tensor.ndim == 2 and shape[0] > 1)
        spaces[key] = {"shape": shape, "space": "w+" if per_layer else "w"}
    return {"directions": directions}, {}, {"directions": spaces}


def convert_state_dict(src: Path, name: str | None = None) -> Converted:
    state = _state_dict(load_torch_pickle(src), src)
    stem = src.stem.lower()
    network = name or ("detector" if "detection" in stem else "parser" if "parsing" in stem else "model")
    return {network: state}, {}, {"source_model": src.stem}


CONVERTERS: dict[str, Callable[[Path, str | None], Converted]] = {
    "stylegan2": convert_stylegan2,
    "e4e": convert_e4e,
    "aladin": convert_aladin,
    "directions": convert_directions,
    "facexlib": convert_state_dict,
    "state-dict": convert_state_dict,
}


def convert(kind: str, src: str | Path, dst: str | Path, *, name: str | None = None) -> Path:
    """Convert an official file; DST is a model folder, or a file when it ends in .safetensors."""
    from hypernst_cli.io.atomic import protect_input
    from hypernst_cli.io.inputs import file_sha256
    from hypernst_cli.weights.checkpoint import save_model_file, save_model_folder

    if kind not in CONVERTERS:
        raise UsageError(f"unknown converter '{kind}'", hint=f"choose one of: {', '.join(CONVERTERS)}")
    source, dest = Path(src), Path(dst)
    protect_input(source)
    networks, config, extra = CONVERTERS[kind](source, name)
    extra = {
        **extra,
        "converter": kind,
        "source_file": source.name,
        "source_sha256": file_sha256(source),
    }
    if dest.suffix == ".safetensors":
        return save_model_file(dest, networks, config, extra)
    return save_model_folder(dest, networks, config, extra)


def ensure_converted(entry: WeightsEntry, path: Path) -> Path:
    """The converted model folder of a downloaded official file (converted once, then reused)."""
    from hypernst_cli.weights.checkpoint import MODEL_FILE
    from hypernst_cli.weights.registry import converted_dir

    stat = path.stat()
    key = hashlib.sha256(f"{os.path.realpath(path)}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()
    folder = converted_dir() / entry.name / key[:16]
    if (folder / MODEL_FILE).is_file():
        return folder
    network = entry.extra.get("network") if entry.converter in ("facexlib", "state-dict") else None
    name = network or (entry.extra.get("direction") if entry.converter == "directions" else None)
    return convert(entry.converter, path, folder, name=name or _default_name(entry))


def _default_name(entry: WeightsEntry) -> str | None:
    if entry.converter == "directions":
        return entry.name.rsplit("-", 1)[-1]  # interfacegan-age -> age
    if entry.converter == "state-dict":
        return entry.kind
    return None
