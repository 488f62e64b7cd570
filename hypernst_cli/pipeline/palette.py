"""The palette post-process (not in the paper; the model config's ``palette.amount``, ``--palette``).

The hyper-network's offsets move an output's colours towards the style's only as far as training
taught them (on held-out art the outputs' colours stay about twice as far from the style as a
plain colour transfer's). This gives the exemplar's colour statistics a direct path: the
output's CIE Lab mean and standard deviation per channel are moved to the style image's
(Reinhard et al. 2001, on the stylized output instead of the photo), by ``amount`` x the style
strength, so strength 0 is still the reconstruction. The drawing, the layout and the texture
stay the model's; only the palette is taken from the exemplar.

By region, as the paper takes style codes (3.5.1): a palette holds the statistics of each of the
style's regions (background, face, hair; the whole image's where the style has no such region,
or no face at all) and of the whole image. The whole-image match moves the output as one, which
keeps the photo's own contrast between hair, skin and background; the region match moves each
region of the output (by the content's mask) to its own region's statistics, blended across
region borders so no seam shows. A palette mixes the two per region by its ``regions`` weights
(0: the whole-image match, 1: the region's own): a region drawn from another style image
(``--region hair=...``) takes that image's hair palette in full; elsewhere the model config's
``palette.regions`` sets the weight, as a single-style exemplar's region colours are partly its
photo's (a blond model's hair), not its style's.

Lab here is divided by 100 (L in [0, 1]), as in the training's colour terms.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from hypernst_cli.eval.colour import D65_WHITE, LAB_DELTA, SRGB_TO_XYZ

#: a channel with a smaller spread than this (Lab / 100) is flat: only its mean moves
FLAT_STD = 1e-4
#: a region covering less than this share of an image has no statistics of its own (the whole
#: image's stand in), as a few pixels' spread says nothing about a palette
MIN_REGION_SHARE = 0.01
#: a region's spread is scaled at most this much (a near-flat region of the output, e.g. a plain
#: background, would otherwise have its noise amplified into blotches)
MAX_SCALE = 4.0
#: region borders are blended over a Gaussian of this fraction of the image side
BORDER_SIGMA = 1 / 64


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


def _weighted_statistics(lab: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Lab [B, 3, N] and weights [B, N] (each summing to 1) -> [B, 2, 3] mean and spread."""
    mean = torch.einsum("bcn,bn->bc", lab, weights)
    var = torch.einsum("bcn,bn->bc", (lab - mean[..., None]) ** 2, weights)
    return torch.stack([mean, var.clamp_min(0).sqrt()], dim=1)


def region_statistics(images: torch.Tensor, masks: torch.Tensor | None) -> torch.Tensor:
    """[B, 3, H, W] in [-1, 1] and region labels [B, H, W] (None: no regions) -> the palette
    table [B, N_REGIONS + 1, 2, 3]: each region's Lab / 100 mean and spread, then the whole
    image's. A region with less than ``MIN_REGION_SHARE`` of the pixels gets the whole image's."""
    return _lab_region_statistics(rgb_to_lab(images), masks)


def _lab_region_statistics(lab: torch.Tensor, masks: torch.Tensor | None) -> torch.Tensor:
    """:func:`region_statistics` of images already in Lab [B, 3, H, W]."""
    from hypernst_cli.faces.regions import REGION_NAMES

    lab = lab.flatten(2)
    whole = torch.stack([lab.mean(2), lab.std(2, unbiased=False)], dim=1)
    if masks is None:
        return torch.stack([whole] * (len(REGION_NAMES) + 1), dim=1)
    rows = []
    for region in range(len(REGION_NAMES)):
        inside = (masks.to(lab.device).flatten(1) == region).to(lab.dtype)
        count = inside.sum(1)
        enough = count >= MIN_REGION_SHARE * inside.shape[1]
        own = _weighted_statistics(lab, inside / count.clamp_min(1)[:, None])
        rows.append(torch.where(enough[:, None, None], own, whole))
    return torch.stack(rows + [whole], dim=1)


@dataclass(frozen=True)
class Palette:
    """Where one output's colours go: the style's palette table [N_REGIONS + 1, 2, 3]
    (:func:`region_statistics`: per region, then the whole image), how far (0 = not at all,
    1 = the style's mean and spread exactly) and, per region, how much of its own region's
    match against the whole-image match (``regions`` [N_REGIONS] in [0, 1]; None: all 0, the
    output moves as one)."""

    stats: torch.Tensor
    amount: float
    regions: torch.Tensor | None = None

    def region_weights(self) -> torch.Tensor:
        from hypernst_cli.faces.regions import REGION_NAMES

        if self.regions is None:
            return torch.zeros(len(REGION_NAMES))
        return self.regions.float()


def between(start: Palette | None, end: Palette | None, t: float) -> Palette | None:
    """The palette at ``t`` in [0, 1] from ``start`` to ``end`` (None: no palette at that end)."""
    if start is None:
        return None if end is None else replace(end, amount=end.amount * t)
    if end is None:
        return replace(start, amount=start.amount * (1.0 - t))
    return Palette(torch.lerp(start.stats, end.stats.to(start.stats), t),
                   start.amount + (end.amount - start.amount) * t,
                   torch.lerp(start.region_weights(), end.region_weights(), t))


def apply_palettes(images: torch.Tensor, palettes: list[Palette | None],
                   masks: torch.Tensor | None = None) -> torch.Tensor:
    """Move each image's Lab mean and spread to its palette's (none: unchanged), by its amount.

    ``masks``: the images' region labels [B, H, W] (the contents' masks: outputs keep their
    layout). Each region then mixes the whole-image match with its own region's match by the
    palette's region weights, the regions blended by Gaussian-smoothed masks; without masks
    every image moves as one."""
    from hypernst_cli.faces.regions import REGION_NAMES

    if len(palettes) != images.shape[0]:
        raise ValueError(f"{len(palettes)} palettes for {images.shape[0]} images")
    chosen = [i for i, p in enumerate(palettes) if p is not None and p.amount > 0]
    if not chosen:
        return images
    out = images.clone()
    picked = images[chosen].float()
    lab = rgb_to_lab(picked)
    b, _, h, w = lab.shape
    n = len(REGION_NAMES)
    tables = torch.stack([palettes[i].stats for i in chosen]).to(lab)  # [b, n + 1, 2, 3]
    mix = torch.stack([palettes[i].region_weights() for i in chosen]).to(lab)  # [b, n]
    amount = torch.tensor([palettes[i].amount for i in chosen], dtype=lab.dtype,
                          device=lab.device).view(-1, 1, 1, 1)
    chosen_masks = None if masks is None else masks[chosen].to(lab.device)
    own = _lab_region_statistics(lab, chosen_masks)  # [b, n + 1, 2, 3]
    matched = _moved(lab, own[:, n], tables[:, n])  # the whole-image match
    if chosen_masks is not None and bool((mix > 0).any()):
        from hypernst_cli.models.filters import gaussian_blur

        onehot = torch.nn.functional.one_hot(chosen_masks.long().clamp(0, n - 1), n)
        weights = gaussian_blur(onehot.permute(0, 3, 1, 2).to(lab),
                                max(0.5, BORDER_SIGMA * max(h, w)))
        weights = weights / weights.sum(1, keepdim=True).clamp_min(1e-6)
        by_region = sum(weights[:, r:r + 1] * mix[:, r, None, None, None]
                        * (_moved(lab, own[:, r], tables[:, r]) - matched) for r in range(n))
        matched = matched + by_region
    out[chosen] = lab_to_rgb(lab + amount * (matched - lab)).to(images.dtype)
    return out


def _moved(lab: torch.Tensor, own: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Lab [B, 3, H, W] with statistics ``own`` [B, 2, 3] moved to ``target``'s [B, 2, 3]."""
    mean, std = own[:, 0, :, None, None], own[:, 1, :, None, None]
    scale = torch.where(std > FLAT_STD, target[:, 1, :, None, None] / std.clamp_min(FLAT_STD),
                        torch.ones_like(std)).clamp(max=MAX_SCALE)
    return (lab - mean) * scale + target[:, 0, :, None, None]
