"""The palette post-process (not in the paper; the model config's ``palette.amount``, ``--palette``).

The hyper-network's offsets move an output's colours towards the style's only as far as training
taught them (on held-out art the outputs' colours stay about twice as far from the style as a
plain colour transfer's). This gives the exemplar's colours a direct path: each CIE Lab channel
of the output is mapped to the style image's distribution by histogram matching (each pixel
keeps its rank: the output's quantiles go to the style's, piecewise linear between them), by
``amount`` x the style strength, so strength 0 is still the reconstruction. Unlike a match of
mean and spread (Reinhard et al. 2001), this carries the distribution's shape: a drawing's
mostly-paper tones, a poster's few inks, a painting's skewed palette. The map's slope is bounded
(``MAX_SCALE``) so a near-flat stretch of the output, a plain background, is not stretched into
blotches; a hard jump between two inks becomes a steep ramp. The drawing, the layout and the
texture stay the model's; only the palette is taken from the exemplar.

By region, as the paper takes style codes (3.5.1): a palette holds the quantiles of each of the
style's regions (background, face, hair; the whole image's where the style has no such region,
or no face at all) and of the whole image. The whole-image map moves the output as one, which
keeps the photo's own contrast between hair, skin and background; the region map moves each
region of the output (by the content's mask) to its own region's distribution, blended across
region borders so no seam shows. A palette mixes the two per region by its ``regions`` weights
(0: the whole-image map, 1: the region's own): a region drawn from another style image
(``--region hair=...``) takes that image's hair palette in full; elsewhere the model config's
``palette.regions`` sets the weight, as a single-style exemplar's region colours are partly its
photo's (a blond model's hair), not its style's.

The inks (``palette.inks``): after the histogram map, each pixel is pulled part of the way to
the nearer of the style's two main colours (2-means in Lab: a drawing's graphite and paper, a
print's ink and ground, a painting's dark and light), by region as the map is but with its own
weights (``palette.ink_regions``: a region's own inks say more about its style than its
histogram does; docs/compact-model.md, "Each region's own inks"). A histogram map
keeps the output's every tone and only renames it; the pull makes the tones bunch where the
style's do, which the analogy benchmark's truths reward on most families (docs/compact-model.md,
"The style's inks"). Half-way or more it bands a painting's smooth skin, so models set it low.

Lab here is divided by 100 (L in [0, 1]), as in the training's colour terms.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Callable

import numpy as np
import torch

from hypernst_cli.eval.colour import D65_WHITE, LAB_DELTA, SRGB_TO_XYZ

if TYPE_CHECKING:
    from hypernst_cli.configs import PaletteConfig

#: the palette table holds each channel's distribution as this many evenly spaced quantiles
#: (0, 1/(Q-1), ..., 1): enough to carry a poster's few inks or a drawing's paper and lines
QUANTILES = 64
#: a region covering less than this share of an image has no palette of its own (the whole
#: image's stands in), as a few pixels say nothing about a palette
MIN_REGION_SHARE = 0.01
#: the colour map's slope is at most this: a near-flat stretch of the output (a plain
#: background) would otherwise have its noise stretched into speckle. At 4 a poster's jumps
#: between inks were flattened to a grey wash; at 16 they stay steep edges
#: (docs/compact-model.md, "The palette by histogram")
MAX_SCALE = 16.0
#: region borders are blended over a Gaussian of this fraction of the image side
BORDER_SIGMA = 1 / 64
#: a style's inks: its two main colours (more bunch a painting's tones into patches)
INKS = 2
#: 2-means iterations (from the darker and the lighter half: deterministic, and 2-means settles fast)
INK_ITERATIONS = 12


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


def region_quantiles(images: torch.Tensor, masks: torch.Tensor | None) -> torch.Tensor:
    """[B, 3, H, W] in [-1, 1] and region labels [B, H, W] (None: no regions) -> the palette
    table [B, N_REGIONS + 1, QUANTILES, 3]: each region's Lab / 100 quantiles per channel, then
    the whole image's. A region with less than ``MIN_REGION_SHARE`` of the pixels gets the
    whole image's."""
    return _lab_region_quantiles(rgb_to_lab(images), masks)


def _lab_region_quantiles(lab: torch.Tensor, masks: torch.Tensor | None) -> torch.Tensor:
    """:func:`region_quantiles` of images already in Lab [B, 3, H, W]."""
    levels = torch.linspace(0, 1, QUANTILES, dtype=lab.dtype, device=lab.device)
    return _region_table(lab, masks, lambda pixels: torch.quantile(pixels.T, levels, dim=1))


def _region_table(lab: torch.Tensor, masks: torch.Tensor | None,
                  statistic: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """``statistic`` of Lab pixels [N, 3] per image [B, 3, H, W]: per region, then the whole
    image's -> [B, N_REGIONS + 1, ...]. A region with less than ``MIN_REGION_SHARE`` of the
    pixels (or any region, without ``masks``) gets the whole image's."""
    from hypernst_cli.faces.regions import REGION_NAMES

    pixels = lab.flatten(2).transpose(1, 2)  # [B, HW, 3]
    tables = []
    for i in range(pixels.shape[0]):
        whole = statistic(pixels[i])
        labels = None if masks is None else masks[i].to(lab.device).flatten()
        rows = []
        for region in range(len(REGION_NAMES)):
            inside = None if labels is None else labels == region
            if inside is None or int(inside.sum()) < MIN_REGION_SHARE * inside.numel():
                rows.append(whole)
            else:
                rows.append(statistic(pixels[i][inside]))
        tables.append(torch.stack(rows + [whole]))
    return torch.stack(tables)


def ink_colours(lab: torch.Tensor) -> torch.Tensor:
    """The two main colours [INKS, 3] of Lab pixels [N, 3] (2-means, started from the means of
    the darker and the lighter half, so the same pixels always give the same inks), darker first."""
    order = lab[:, 0].argsort()
    halves = order.tensor_split(INKS)
    centres = torch.stack([lab[h].mean(0) if len(h) else lab.mean(0) for h in halves])
    for _ in range(INK_ITERATIONS):
        nearest = torch.cdist(lab, centres).argmin(1)
        for k in range(INKS):
            members = lab[nearest == k]
            if len(members):
                centres[k] = members.mean(0)
    return centres[centres[:, 0].argsort()]


def region_inks(images: torch.Tensor, masks: torch.Tensor | None) -> torch.Tensor:
    """[B, 3, H, W] in [-1, 1] and region labels [B, H, W] (None: no regions) -> the ink table
    [B, N_REGIONS + 1, INKS, 3]: each region's two main Lab / 100 colours, then the whole
    image's (a region under ``MIN_REGION_SHARE`` of the pixels gets the whole image's)."""
    return _lab_region_inks(rgb_to_lab(images), masks)


def _lab_region_inks(lab: torch.Tensor, masks: torch.Tensor | None) -> torch.Tensor:
    """:func:`region_inks` of images already in Lab [B, 3, H, W]."""
    return _region_table(lab, masks, ink_colours)


def palette_tables(images: torch.Tensor,
                   masks: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(:func:`region_quantiles`, :func:`region_inks`) of the same images, converted to Lab once."""
    lab = rgb_to_lab(images)
    return _lab_region_quantiles(lab, masks), _lab_region_inks(lab, masks)


@dataclass(frozen=True)
class Palette:
    """Where one output's colours go: the style's palette table [N_REGIONS + 1, QUANTILES, 3]
    (:func:`region_quantiles`: per region, then the whole image), how far (0 = not at all,
    1 = the style's distribution exactly) and, per region, how much of its own region's
    match against the whole-image match (``regions`` [N_REGIONS] in [0, 1]; None: all 0, the
    output moves as one). ``inks`` [N_REGIONS + 1, INKS, 3] (:func:`region_inks`) and ``pull``:
    how far each pixel then moves to the nearer of its inks (0: not at all); ``ink_regions``
    [N_REGIONS]: per region, how much its own region's inks count against the whole image's
    (None: as ``regions``)."""

    stats: torch.Tensor
    amount: float
    regions: torch.Tensor | None = None
    inks: torch.Tensor | None = None
    pull: float = 0.0
    ink_regions: torch.Tensor | None = None

    def region_weights(self) -> torch.Tensor:
        from hypernst_cli.faces.regions import REGION_NAMES

        if self.regions is None:
            return torch.zeros(len(REGION_NAMES))
        return self.regions.float()

    def ink_region_weights(self) -> torch.Tensor:
        return self.region_weights() if self.ink_regions is None else self.ink_regions.float()


def configured(settings: PaletteConfig, table: torch.Tensor, inks: torch.Tensor | None,
               strength: float = 1.0) -> Palette:
    """The palette a model's ``palette`` settings give a style with palette ``table`` and ink
    table ``inks`` (None: no pull) at ``strength``: the one place the tool and the training
    through the palette turn the settings into a :class:`Palette`."""
    n = table.shape[0] - 1
    ink_regions = settings.regions if settings.ink_regions is None else settings.ink_regions
    return Palette(table, float(settings.amount) * strength,
                   torch.full((n,), float(settings.regions)), inks,
                   0.0 if inks is None else float(settings.inks) * strength,
                   torch.full((n,), float(ink_regions)))


def between(start: Palette | None, end: Palette | None, t: float) -> Palette | None:
    """The palette at ``t`` in [0, 1] from ``start`` to ``end`` (None: no palette at that end)."""
    if start is None:
        return None if end is None else replace(end, amount=end.amount * t, pull=end.pull * t)
    if end is None:
        return replace(start, amount=start.amount * (1.0 - t), pull=start.pull * (1.0 - t))
    inks = start.inks if end.inks is None else end.inks if start.inks is None else \
        torch.lerp(start.inks, end.inks.to(start.inks), t)  # darker ink to darker ink
    return Palette(torch.lerp(start.stats, end.stats.to(start.stats), t),
                   start.amount + (end.amount - start.amount) * t,
                   torch.lerp(start.region_weights(), end.region_weights(), t),
                   inks, (start.pull if start.inks is not None else 0.0) * (1.0 - t)
                   + (end.pull if end.inks is not None else 0.0) * t,
                   torch.lerp(start.ink_region_weights(), end.ink_region_weights(), t))


def apply_palettes(images: torch.Tensor, palettes: list[Palette | None],
                   masks: torch.Tensor | None = None) -> torch.Tensor:
    """Map each image's Lab distribution to its palette's (none: unchanged), by its amount.

    ``masks``: the images' region labels [B, H, W] (the contents' masks: outputs keep their
    layout). Each region then mixes the whole-image map with its own region's map by the
    palette's region weights, the regions blended by Gaussian-smoothed masks; without masks
    every image moves as one."""
    from hypernst_cli.faces.regions import REGION_NAMES

    if len(palettes) != images.shape[0]:
        raise ValueError(f"{len(palettes)} palettes for {images.shape[0]} images")
    chosen = [i for i, p in enumerate(palettes) if p is not None and p.amount > 0]
    if not chosen:
        return images
    out = images.clone()
    lab = rgb_to_lab(images[chosen].float())
    b, _, h, w = lab.shape
    n = len(REGION_NAMES)
    tables = torch.stack([palettes[i].stats for i in chosen]).to(lab)  # [b, n + 1, Q, 3]
    if tables.shape[2] != QUANTILES:
        raise ValueError(f"a palette table of {tables.shape[2]} quantiles, expected {QUANTILES}")
    mix = torch.stack([palettes[i].region_weights() for i in chosen]).to(lab)  # [b, n]
    pulls = [palettes[i].pull if palettes[i].inks is not None else 0.0 for i in chosen]
    ink_mix = torch.stack([palettes[i].ink_region_weights() for i in chosen]).to(lab)
    amount = torch.tensor([palettes[i].amount for i in chosen], dtype=lab.dtype,
                          device=lab.device).view(-1, 1, 1, 1)
    chosen_masks = None if masks is None else masks[chosen].to(lab.device)
    own = _lab_region_quantiles(lab, chosen_masks)  # [b, n + 1, Q, 3]
    matched = _mapped(lab, own[:, n], tables[:, n])  # the whole-image map
    weights = None
    by_regions = bool((mix > 0).any()) or (any(p > 0 for p in pulls) and bool((ink_mix > 0).any()))
    if chosen_masks is not None and by_regions:
        from hypernst_cli.models.filters import gaussian_blur

        onehot = torch.nn.functional.one_hot(chosen_masks.long().clamp(0, n - 1), n)
        weights = gaussian_blur(onehot.permute(0, 3, 1, 2).to(lab),
                                max(0.5, BORDER_SIGMA * max(h, w)))
        weights = weights / weights.sum(1, keepdim=True).clamp_min(1e-6)

    def by_region(whole: torch.Tensor, region: Callable[[int], torch.Tensor],
                  mix: torch.Tensor) -> torch.Tensor:
        """``whole`` moved, in each region by its weight in ``mix`` [b, n], to ``region(r)``:
        region borders blended by the smoothed masks."""
        if weights is None or not bool((mix > 0).any()):
            return whole
        return whole + sum(weights[:, r:r + 1] * mix[:, r, None, None, None]
                           * (region(r) - whole) for r in range(n))

    matched = by_region(matched, lambda r: _mapped(lab, own[:, r], tables[:, r]), mix)
    moved = lab + amount * (matched - lab)
    if any(p > 0 for p in pulls):
        inks = torch.stack([palettes[i].inks if palettes[i].inks is not None
                            else torch.zeros(n + 1, INKS, 3) for i in chosen]).to(lab)
        # by region, as the map: the region's own inks by its ink weight
        snapped = by_region(_nearest_ink(moved, inks[:, n]),
                            lambda r: _nearest_ink(moved, inks[:, r]), ink_mix)
        pull = torch.tensor(pulls, dtype=lab.dtype, device=lab.device).view(-1, 1, 1, 1)
        moved = moved + pull * (snapped - moved)
    out[chosen] = lab_to_rgb(moved).to(images.dtype)
    return out


def _nearest_ink(lab: torch.Tensor, inks: torch.Tensor) -> torch.Tensor:
    """Each pixel of Lab [B, 3, H, W] replaced by the nearer of its image's inks [B, INKS, 3]."""
    b, c, h, w = lab.shape
    pixels = lab.flatten(2).transpose(1, 2)  # [B, HW, 3]
    nearest = torch.cdist(pixels, inks).argmin(2)  # [B, HW]
    chosen = inks.gather(1, nearest[..., None].expand(-1, -1, c))
    return chosen.transpose(1, 2).reshape(b, c, h, w)


def _mapped(lab: torch.Tensor, own: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Lab [B, 3, H, W] through each channel's monotone map from quantiles ``own`` [B, Q, 3] to
    ``target``'s [B, Q, 3]: piecewise linear between quantiles (histogram matching), flat past
    the ends, its slope at most ``MAX_SCALE`` about the median (so a flat stretch stays flat)."""
    b, c, h, w = lab.shape
    q = own.shape[1]
    # quantiles can repeat (a flat background): a tiny ramp keeps the knots increasing
    ramp = torch.arange(q, dtype=lab.dtype, device=lab.device) * 1e-6
    knots = own.transpose(1, 2).reshape(b * c, q) + ramp
    values = target.transpose(1, 2).reshape(b * c, q)
    dx = knots.diff(dim=1)
    dy = torch.minimum(values.diff(dim=1), MAX_SCALE * dx)
    # rebuild the values from the median outwards with the limited steps
    mid = q // 2
    up = values[:, mid:mid + 1] + torch.cumsum(dy[:, mid:], dim=1)
    down = values[:, mid:mid + 1] - torch.cumsum(dy[:, :mid].flip(1), dim=1).flip(1)
    values = torch.cat([down, values[:, mid:mid + 1], up], dim=1)
    x = lab.reshape(b * c, h * w)
    i = torch.searchsorted(knots.contiguous(), x.contiguous()).clamp(1, q - 1)
    x0, x1 = knots.gather(1, i - 1), knots.gather(1, i)
    y0, y1 = values.gather(1, i - 1), values.gather(1, i)
    t = ((x - x0) / (x1 - x0)).clamp(0, 1)
    return (y0 + t * (y1 - y0)).reshape(b, c, h, w)
