"""The palette post-process (not in the paper; the model config's ``palette.amount``, ``--palette``).

The hyper-network's offsets move an output's colours towards the style's only as far as training
taught them (on held-out art the outputs' colours stay about twice as far from the style as a
plain colour transfer's). This gives the exemplar's colour statistics a direct path: the
output's CIE Lab mean and standard deviation per channel are moved to the style image's
(Reinhard et al. 2001, on the stylized output instead of the photo), by ``amount`` x the style
strength, so strength 0 is still the reconstruction. The drawing, the layout and the texture
stay the model's; only the palette is taken from the exemplar as a whole.

Lab here is divided by 100 (L in [0, 1]), as in the training's colour terms.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from hypernst_cli.eval.colour import D65_WHITE, LAB_DELTA, SRGB_TO_XYZ

#: a channel with a smaller spread than this (Lab / 100) is flat: only its mean moves
FLAT_STD = 1e-4


def rgb_to_lab(images: torch.Tensor) -> torch.Tensor:
    """Differentiable sRGB [B, 3, H, W] in [-1, 1] -> CIE Lab divided by 100 (L in [0, 1]);
    the same transform as :func:`hypernst_cli.eval.colour.rgb_to_lab`, scaled."""
    c = ((images.float() + 1) / 2).clamp(0, 1)
    linear = torch.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055).clamp_min(1e-6) ** 2.4)
    m = torch.as_tensor(SRGB_TO_XYZ, dtype=torch.float32, device=images.device)
    white = torch.as_tensor(D65_WHITE, dtype=torch.float32, device=images.device)
    xyz = torch.einsum("ij,bjhw->bihw", m, linear) / white.view(1, 3, 1, 1)
    f = torch.where(xyz > LAB_DELTA**3, xyz.clamp_min(LAB_DELTA**3) ** (1 / 3),
                    xyz / (3 * LAB_DELTA**2) + 4.0 / 29.0)
    L = 116.0 * f[:, 1] - 16.0
    a = 500.0 * (f[:, 0] - f[:, 1])
    b = 200.0 * (f[:, 1] - f[:, 2])
    return torch.stack([L, a, b], dim=1) / 100.0


def lab_to_rgb(lab: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`rgb_to_lab`: Lab / 100 [B, 3, H, W] -> sRGB in [-1, 1] (colours
    outside sRGB clipped)."""
    lab = lab.float() * 100.0
    fy = (lab[:, 0] + 16.0) / 116.0
    f = torch.stack([fy + lab[:, 1] / 500.0, fy, fy - lab[:, 2] / 200.0], dim=1)
    white = torch.as_tensor(D65_WHITE, dtype=torch.float32, device=lab.device)
    xyz = torch.where(f > LAB_DELTA, f**3, 3 * LAB_DELTA**2 * (f - 4.0 / 29.0))
    xyz = xyz * white.view(1, 3, 1, 1)
    inverse = torch.as_tensor(np.linalg.inv(SRGB_TO_XYZ), dtype=torch.float32, device=lab.device)
    linear = torch.einsum("ij,bjhw->bihw", inverse, xyz).clamp(0.0, 1.0)
    c = torch.where(linear <= 0.0031308, 12.92 * linear,
                    1.055 * linear.clamp_min(1e-8) ** (1 / 2.4) - 0.055)
    return c.clamp(0.0, 1.0) * 2.0 - 1.0


def colour_statistics(images: torch.Tensor) -> torch.Tensor:
    """[B, 3, H, W] in [-1, 1] -> [B, 2, 3]: each image's Lab / 100 mean and standard deviation."""
    lab = rgb_to_lab(images).flatten(2)
    return torch.stack([lab.mean(2), lab.std(2, unbiased=False)], dim=1)


@dataclass(frozen=True)
class Palette:
    """Where one output's colours go: the style's statistics [2, 3] (:func:`colour_statistics`)
    and how far (0 = not at all, 1 = the style's mean and spread exactly)."""

    stats: torch.Tensor
    amount: float


def between(start: Palette | None, end: Palette | None, t: float) -> Palette | None:
    """The palette at ``t`` in [0, 1] from ``start`` to ``end`` (None: no palette at that end)."""
    if start is None:
        return None if end is None else Palette(end.stats, end.amount * t)
    if end is None:
        return Palette(start.stats, start.amount * (1.0 - t))
    return Palette(torch.lerp(start.stats, end.stats.to(start.stats), t),
                   start.amount + (end.amount - start.amount) * t)


def apply_palettes(images: torch.Tensor, palettes: list[Palette | None]) -> torch.Tensor:
    """Move each image's Lab mean and spread to its palette's (none: unchanged), by its amount."""
    if len(palettes) != images.shape[0]:
        raise ValueError(f"{len(palettes)} palettes for {images.shape[0]} images")
    chosen = [i for i, p in enumerate(palettes) if p is not None and p.amount > 0]
    if not chosen:
        return images
    out = images.clone()
    picked = images[chosen].float()
    lab = rgb_to_lab(picked)
    own = colour_statistics(picked)
    target = torch.stack([palettes[i].stats for i in chosen]).to(lab)
    amount = torch.tensor([palettes[i].amount for i in chosen], dtype=lab.dtype,
                          device=lab.device).view(-1, 1, 1, 1)
    mean, std = own[:, 0, :, None, None], own[:, 1, :, None, None]
    scale = torch.where(std > FLAT_STD, target[:, 1, :, None, None] / std.clamp_min(FLAT_STD),
                        torch.ones_like(std))
    matched = (lab - mean) * scale + target[:, 0, :, None, None]
    out[chosen] = lab_to_rgb(lab + amount * (matched - lab)).to(images.dtype)
    return out
