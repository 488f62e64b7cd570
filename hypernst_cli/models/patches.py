"""Patch sampling: square windows of an image, drawn with a seeded ``torch.Generator``.

The one sampler behind every patch the project draws (pure tensor code, no I/O):

- :func:`region_square_boxes`: windows of random size whose pixels lie mostly (``coverage``) in
  one region of a label mask, centred on the region's own pixels: the patches whose ALADIN codes
  are averaged into a region's style code (paper Eq. 1);
- :func:`region_boxes`: fixed-size windows drawn uniformly among those that meet the coverage:
  the patch co-occurrence discriminator's region-matched patches;
- :func:`random_boxes`: unconstrained fixed-size windows (the autoencoder's patch discriminator);
- :func:`crop_patches` (fixed size, stacked) and :func:`crop_boxes` (any sizes, a list) cut them.

Coverage is measured with one integral image per region (:func:`integral_image`,
:func:`box_sums`), so testing a window costs four look-ups whatever its size.
"""

from __future__ import annotations

import torch

#: Bump when the same seed gives other windows: caches keyed on sampled positions (the style-code
#: cache) must then miss. "torch-1": the torch.Generator sampler (before: numpy's).
SAMPLER_VERSION = "torch-1"


def integral_image(region: torch.Tensor) -> torch.Tensor:
    """Summed-area table of a bool/0-1 map [H, W]: [H+1, W+1] int64, zero first row and column."""
    return torch.nn.functional.pad(region.to(torch.int64).cumsum(0).cumsum(1), (1, 0, 1, 0))


def box_sums(integral: torch.Tensor, tops: torch.Tensor, lefts: torch.Tensor,
             sizes: torch.Tensor | int) -> torch.Tensor:
    """Pixel counts inside square windows (top, left, size) of the map behind ``integral``."""
    bottoms, rights = tops + sizes, lefts + sizes
    return (integral[bottoms, rights] - integral[tops, rights] - integral[bottoms, lefts]
            + integral[tops, lefts])


def window_coverage(region: torch.Tensor, size: int) -> torch.Tensor:
    """Fraction of each size x size window inside ``region`` (bool [H, W]): [H-s+1, W-s+1]."""
    integral = integral_image(region)
    sums = (integral[size:, size:] - integral[:-size, size:] - integral[size:, :-size]
            + integral[:-size, :-size])
    return sums.to(torch.float32) / (size * size)


def _check_mask(mask: torch.Tensor, size: int) -> None:
    if mask.ndim != 2:
        raise ValueError(f"expected a label mask [H, W], got {tuple(mask.shape)}")
    if size > min(mask.shape):
        raise ValueError(f"patch size {size} larger than the mask {mask.shape[0]}x{mask.shape[1]}")


def region_boxes(mask: torch.Tensor, region: int, count: int, size: int, coverage: float = 0.8,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """Top-left corners [n, 2] (row, col) of ``count`` random size x size windows of ``mask``
    (integer labels [H, W]) with at least ``coverage`` of their pixels in label ``region``.

    Drawn uniformly among the qualifying windows: distinct while enough qualify, else some
    repeat (the discriminator wants ``count`` patches); n = 0 when none qualifies (the caller
    decides the fallback, e.g. skip the region).
    """
    _check_mask(mask, size)
    cover = window_coverage(mask == region, size)
    valid = torch.nonzero(cover >= coverage - 1e-6)  # [m, 2], row-major: deterministic order
    m = valid.shape[0]
    if m == 0 or count <= 0:
        return torch.zeros(0, 2, dtype=torch.long, device=mask.device)
    gen_device = generator.device if generator is not None else torch.device("cpu")
    if m >= count:
        pick = torch.randperm(m, generator=generator, device=gen_device)[:count]
    else:
        pick = torch.randint(m, (count,), generator=generator, device=gen_device)
    return valid[pick.to(valid.device)]


def region_square_boxes(mask: torch.Tensor, region: int, count: int, min_size: int,
                        max_size: int, coverage: float, tries: int,
                        generator: torch.Generator | None = None) -> torch.Tensor:
    """Up to ``count`` square windows [n, 3] (top, left, size) covering label ``region`` of
    ``mask`` (integer labels [H, W]) at ``coverage`` or more, sides uniform in
    [min_size, max_size] (clipped to the short side).

    ``tries`` candidates are drawn at once; the first ``count`` that qualify, in draw order, are
    kept, so a thin region may yield fewer (or no) windows. Centres are drawn among the region's
    own pixels: far more hits than uniform positions for small regions such as hair.
    """
    if mask.ndim != 2:
        raise ValueError(f"expected a label mask [H, W], got {tuple(mask.shape)}")
    if min_size < 1 or max_size < min_size:
        raise ValueError(f"need 1 <= min_size <= max_size, got {min_size}, {max_size}")
    in_region = (mask == region).cpu()
    ys, xs = torch.nonzero(in_region, as_tuple=True)
    if len(ys) == 0 or count <= 0 or tries <= 0:
        return torch.zeros(0, 3, dtype=torch.long)
    h, w = in_region.shape
    short = min(h, w)
    sizes = torch.randint(min_size, max_size + 1, (tries,), generator=generator).clamp_max(short)
    centre = torch.randint(len(ys), (tries,), generator=generator)
    # windows pushed back inside the image, so a centre near an edge still gives a full window
    tops = torch.minimum((ys[centre] - sizes // 2).clamp_min(0), h - sizes)
    lefts = torch.minimum((xs[centre] - sizes // 2).clamp_min(0), w - sizes)
    inside = box_sums(integral_image(in_region), tops, lefts, sizes)
    # integer comparison as count >= coverage * size^2, without a float fraction's rounding
    keep = torch.nonzero(inside >= coverage * sizes * sizes).flatten()[:count]
    return torch.stack([tops[keep], lefts[keep], sizes[keep]], dim=1)


def random_boxes(batch: int, count: int, size: int, height: int, width: int,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """Top-left corners [batch, count, 2] of random size x size windows in a height x width image."""
    if size > min(height, width):
        raise ValueError(f"patch size {size} larger than the image {height}x{width}")
    rows = torch.randint(0, height - size + 1, (batch, count), generator=generator)
    cols = torch.randint(0, width - size + 1, (batch, count), generator=generator)
    return torch.stack([rows, cols], dim=-1)


def crop_patches(image: torch.Tensor, boxes: torch.Tensor, size: int) -> torch.Tensor:
    """Crop fixed-size windows: image [C, H, W] with boxes [n, 2] -> [n, C, s, s]
    (or image [B, C, H, W] with boxes [B, n, 2] -> [B, n, C, s, s]). Differentiable."""
    if image.ndim == 4:
        return torch.stack([crop_patches(im, bx, size) for im, bx in zip(image, boxes)])
    offs = torch.arange(size, device=image.device)
    boxes = boxes.to(image.device)
    rows = (boxes[:, 0, None] + offs)[:, :, None]  # [n, s, 1]
    cols = (boxes[:, 1, None] + offs)[:, None, :]  # [n, 1, s]
    return image[:, rows, cols].permute(1, 0, 2, 3)  # [C, n, s, s] -> [n, C, s, s]


def crop_boxes(image: torch.Tensor, boxes: torch.Tensor) -> list[torch.Tensor]:
    """Crop windows of any sizes: image [C, H, W] with boxes [n, 3] (top, left, size) -> n
    tensors [C, size, size] (views of ``image``)."""
    return [image[:, t : t + s, l : l + s] for t, l, s in boxes.tolist()]
