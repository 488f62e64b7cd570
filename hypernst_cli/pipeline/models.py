"""Loading the networks of a model (folder or file) once per process, by the one resolution order.

``load_models(weights, config, device, parts)`` resolves weights (``--weights`` PATH or NAME, then
downloaded, then embedded), builds each requested network from the config that travels with the
weights, and loads its tensors strictly. Networks are plain modules in eval mode with gradients
off.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hypernst_cli.configs import ModelConfig
from hypernst_cli.errors import WeightsIntegrityError

if TYPE_CHECKING:
    import torch


def n_latent_for(resolution: int) -> int:
    """StyleGAN2's number of W+ latents at a resolution: 2 * log2(resolution) - 2."""
    return 2 * (resolution.bit_length() - 1) - 2


def _build_aladin(cfg: ModelConfig) -> Any:
    from hypernst_cli.models.aladin import AladinViT

    return AladinViT(cfg.aladin)


def _build_encoder(cfg: ModelConfig) -> Any:
    from hypernst_cli.models.e4e import Encoder4Editing
    from hypernst_cli.models.stylegan2 import channel_table

    g = cfg.generator
    r_f = g.feature_resolution
    feature_shape = (channel_table(g.channel_multiplier, g.max_channels)[r_f], r_f) if r_f else None
    return Encoder4Editing(cfg.encoder, n_latent_for(cfg.resolution), g.style_dim, feature_shape)


def _build_generator(cfg: ModelConfig) -> Any:
    from hypernst_cli.models.stylegan2 import build_generator

    return build_generator(cfg.generator)


def _build_hypernet(cfg: ModelConfig) -> Any:
    from hypernst_cli.models.hypernet import build_hypernet

    return build_hypernet(cfg)


def _build_discriminator(cfg: ModelConfig) -> Any:
    from hypernst_cli.models.stylegan2 import build_discriminator

    return build_discriminator(cfg.generator)


def _build_patch_disc(cfg: ModelConfig) -> Any:
    from hypernst_cli.models.patch_disc import build_patch_disc

    return build_patch_disc(cfg.patch_disc)


#: network name (prefix in model.safetensors) -> builder from a ModelConfig
BUILDERS: dict[str, Callable[[ModelConfig], Any]] = {
    "generator": _build_generator,
    "encoder": _build_encoder,
    "aladin": _build_aladin,
    "hypernet": _build_hypernet,
    "discriminator": _build_discriminator,
    "patch_disc": _build_patch_disc,
}

#: the networks inference needs (a shipped model holds these; training adds the discriminators)
INFERENCE_PARTS = ("generator", "encoder", "aladin", "hypernet")


def build_network(name: str, cfg: ModelConfig) -> Any:
    try:
        return BUILDERS[name](cfg)
    except KeyError:
        raise KeyError(f"unknown network '{name}'; known: {', '.join(BUILDERS)}") from None


@dataclass
class LoadedModels:
    """The networks of one model, on one device, with where they came from."""

    config: ModelConfig
    device: torch.device
    source: str
    origin: str
    networks: dict[str, Any] = field(default_factory=dict)
    fingerprints: dict[str, str] = field(default_factory=dict)
    directions: dict[str, torch.Tensor] = field(default_factory=dict)  # edit directions shipped with it

    def __getattr__(self, name: str) -> Any:
        networks = self.__dict__.get("networks", {})
        if name in networks:
            return networks[name]
        raise AttributeError(name)

    def model_id(self, network: str) -> str:
        """A content hash of one network's weights (cache keys: codes of another ALADIN differ)."""
        return self.fingerprints[network]


def fingerprint(state: dict[str, torch.Tensor]) -> str:
    import torch

    h = hashlib.sha256()
    for key in sorted(state):
        t = state[key].detach().cpu().contiguous()
        h.update(key.encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def load_models(
    weights: str | None,
    config_name: str | None,
    device: torch.device,
    parts: Iterable[str],
) -> LoadedModels:
    """Resolve, build and load the requested networks (see the module docstring)."""
    from hypernst_cli.weights.checkpoint import (
        load_model_folder,
        load_state_dict_strict,
        resolve_weights,
    )

    resolved = resolve_weights(weights, config_name or "compact")
    folder = load_model_folder(resolved.path)
    cfg = folder.model_config()  # the config travels with the weights
    models = LoadedModels(config=cfg, device=device, source=str(resolved.path),
                          origin=resolved.origin,
                          directions=dict(folder.networks.get("directions", {})))
    for name in parts:
        if name not in folder.networks:
            raise WeightsIntegrityError(
                f"{resolved.path}: the model has no '{name}' network "
                f"(it has: {', '.join(sorted(folder.networks)) or 'none'})",
                hint="pass --weights with a complete model folder",
            )
        net = build_network(name, cfg)
        state = folder.networks[name]
        load_state_dict_strict(net, state, f"{resolved.path} [{name}]")
        net.eval().requires_grad_(False).to(device)
        models.networks[name] = net
        models.fingerprints[name] = fingerprint(state)
    return models


def init_networks(cfg: ModelConfig, parts: Iterable[str], seed: int = 0) -> dict[str, Any]:
    """Freshly initialised networks (training from scratch, and tests with random weights)."""
    import torch

    torch.manual_seed(seed)
    return {name: build_network(name, cfg) for name in parts}


def save_networks(folder: Any, cfg: ModelConfig, networks: dict[str, Any], **extra: Any) -> Any:
    """Write networks as a model folder (config.json + model.safetensors)."""
    from hypernst_cli.weights.checkpoint import save_model_folder

    return save_model_folder(
        folder, {n: m.state_dict() for n, m in networks.items()}, cfg.to_dict(), extra or None
    )
