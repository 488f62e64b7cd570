"""The weights registry (weights.toml), checkpoint loading, downloads and converters.

The names most code needs (all import-light; torch is imported inside the functions):

* ``resolve_weights(spec, config_name)`` - THE resolution order: --weights PATH, registry NAME,
  downloaded (HF cache), embedded.
* ``load_model_folder(path)`` / ``save_model_folder(dir, networks, config, extra)`` - our format.
* ``load_tensors(path)`` / ``save_tensors(path, tensors, metadata)`` - safetensors + metadata.
* ``load_state_dict_strict(module, state, source)`` - strict load whose failure names the file.
* ``load_registry()``, ``get_entry(name)``, ``locate(entry)`` - weights.toml and local files.
"""

from hypernst_cli.weights.checkpoint import (
    ModelFolder,
    ResolvedWeights,
    load_model_folder,
    load_state_dict_strict,
    load_tensors,
    resolve_weights,
    save_model_file,
    save_model_folder,
    save_tensors,
)
from hypernst_cli.weights.registry import WeightsEntry, get_entry, load_registry, locate

__all__ = [
    "ModelFolder",
    "ResolvedWeights",
    "WeightsEntry",
    "get_entry",
    "load_model_folder",
    "load_registry",
    "load_state_dict_strict",
    "load_tensors",
    "locate",
    "resolve_weights",
    "save_model_file",
    "save_model_folder",
    "save_tensors",
]
