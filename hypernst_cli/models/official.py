"""State-dict adapters from official checkpoint layouts to our modules (tensors in, tensors out).

Our StyleGAN2 modules use rosinality/stylegan2-pytorch's names and register the same buffers
(the blur/upsample FIR kernels and the ``noises.noise_N`` maps are persistent buffers there too),
so a ``g_ema`` / ``d`` state dict loads with ``strict=True`` unchanged; the functions here only
drop wrapper prefixes (``module.`` from DataParallel/DDP, ``g_ema.`` / ``d.`` from a flattened
checkpoint) and check the result. Reading the checkpoint file (``torch.load(weights_only=True)``)
is the converters' job (hypernst_cli/weights/); the e4e and ALADIN adapters live in
``official_encoders.py``.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from hypernst_cli.errors import WeightsIntegrityError

if TYPE_CHECKING:
    import torch

    from hypernst_cli.configs import GeneratorConfig

_PREFIXES = ("module.", "g_ema.", "generator.", "decoder.", "d.", "discriminator.")


def _strip_prefixes(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = dict(sd)
    changed = True
    while changed and out:
        changed = False
        for p in _PREFIXES:
            if all(k.startswith(p) for k in out):
                out = {k[len(p):]: v for k, v in out.items()}
                changed = True
    return out


def stylegan2_generator_to_ours(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """rosinality ``g_ema`` state dict -> our ``Generator`` state dict (same names)."""
    out = _strip_prefixes(sd)
    for key in ("style.1.weight", "input.input", "conv1.conv.weight", "to_rgb1.conv.weight"):
        if key not in out:
            raise WeightsIntegrityError(
                f"not a StyleGAN2 generator state dict (no '{key}')",
                hint="pass the 'g_ema' entry of a rosinality/stylegan2-pytorch checkpoint",
            )
    return out


def stylegan2_discriminator_to_ours(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """rosinality ``d`` state dict -> our ``Discriminator`` state dict (same names)."""
    out = _strip_prefixes(sd)
    for key in ("convs.0.0.weight", "final_conv.0.weight", "final_linear.1.weight"):
        if key not in out:
            raise WeightsIntegrityError(
                f"not a StyleGAN2 discriminator state dict (no '{key}')",
                hint="pass the 'd' entry of a rosinality/stylegan2-pytorch checkpoint",
            )
    return out


def infer_generator_config(sd: dict[str, torch.Tensor]) -> GeneratorConfig:
    """Resolution, style_dim, n_mlp, channel_multiplier and max_channels from a generator's
    state dict (ours or rosinality's). ``lr_mlp`` is not stored: the StyleGAN2 default (0.01)."""
    from hypernst_cli.configs import GeneratorConfig
    from hypernst_cli.models.stylegan2 import channel_table

    sd = stylegan2_generator_to_ours(sd)
    n_rgb = sum(1 for k in sd if re.fullmatch(r"to_rgbs\.\d+\.conv\.weight", k))
    resolution = 2 ** (n_rgb + 2)
    style_dim = int(sd["style.1.weight"].shape[1])
    n_mlp = sum(1 for k in sd if re.fullmatch(r"style\.\d+\.weight", k))
    # the toRGB of each resolution reads that resolution's channel count
    found = {4: int(sd["to_rgb1.conv.weight"].shape[2])}
    for b in range(n_rgb):
        found[2 ** (b + 3)] = int(sd[f"to_rgbs.{b}.conv.weight"].shape[2])
    max_channels = max(found.values())
    for cm in (1, 2, 4, 8, 0.5, 0.25, 0.125):  # official: 1 or 2; ours may be fractional
        table = channel_table(cm, max_channels)
        if all(table[r] == c for r, c in found.items()):
            return GeneratorConfig(resolution=resolution, style_dim=style_dim, n_mlp=n_mlp,
                                   channel_multiplier=cm, max_channels=max_channels)
    raise WeightsIntegrityError(
        f"generator channel counts {found} match no StyleGAN2 channel multiplier",
        hint="the checkpoint is not a rosinality-layout StyleGAN2 generator",
    )
