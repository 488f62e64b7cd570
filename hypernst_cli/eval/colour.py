"""Colour statistics: sRGB <-> CIE Lab, the sliced Wasserstein colour distance, Reinhard transfer.

The colour distance compares the distributions of the Lab colours of two images (a stylized
output and its style), ignoring where the colours are: for each of a fixed set of random unit
directions in Lab, the pixels are projected on it and the two 1-D distributions are compared by
their quantiles (the 1-D Wasserstein-2 distance); the distance is the root mean square over
directions (sliced Wasserstein-2, in Lab units: about 1 unit is a just noticeable difference).
With region masks (0 background, 1 face, 2 hair) it is also computed region by region.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from hypernst_cli.eval.metrics import Column, Metric, array_key, check_image, mean_or_none
from hypernst_cli.faces.regions import REGION_NAMES

# sRGB (D65) -> XYZ, the D65 white point and the Lab threshold (also used by the training losses).
SRGB_TO_XYZ = np.array(
    [
        [0.4124564, 0.3575761, 0.1804375],
        [0.2126729, 0.7151522, 0.0721750],
        [0.0193339, 0.1191920, 0.9503041],
    ]
)
_XYZ_TO_RGB = np.linalg.inv(SRGB_TO_XYZ)
D65_WHITE = np.array([0.95047, 1.0, 1.08883])
LAB_DELTA = 6.0 / 29.0

#: fewest pixels a region needs in both images for its colour distance to mean anything
MIN_REGION_PIXELS = 64
#: pixels used per image at most (a regular subsample beyond that keeps the cost bounded)
MAX_PIXELS = 16384


def rgb_to_lab(image: np.ndarray) -> np.ndarray:
    """RGB uint8 (..., 3) -> CIE Lab float64 (..., 3): L in [0, 100], a/b about [-128, 127]."""
    c = np.asarray(image, dtype=np.float64) / 255.0
    linear = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    xyz = linear @ SRGB_TO_XYZ.T / D65_WHITE
    f = np.where(xyz > LAB_DELTA**3, np.cbrt(xyz), xyz / (3 * LAB_DELTA**2) + 4.0 / 29.0)
    lab = np.empty_like(f)
    lab[..., 0] = 116.0 * f[..., 1] - 16.0
    lab[..., 1] = 500.0 * (f[..., 0] - f[..., 1])
    lab[..., 2] = 200.0 * (f[..., 1] - f[..., 2])
    return lab


def lab_to_rgb(lab: np.ndarray) -> np.ndarray:
    """CIE Lab (..., 3) -> RGB uint8 (..., 3); colours outside sRGB are clipped."""
    lab = np.asarray(lab, dtype=np.float64)
    fy = (lab[..., 0] + 16.0) / 116.0
    f = np.stack([fy + lab[..., 1] / 500.0, fy, fy - lab[..., 2] / 200.0], axis=-1)
    xyz = np.where(f > LAB_DELTA, f**3, 3 * LAB_DELTA**2 * (f - 4.0 / 29.0)) * D65_WHITE
    linear = np.clip(xyz @ _XYZ_TO_RGB.T, 0.0, 1.0)
    c = np.where(linear <= 0.0031308, 12.92 * linear, 1.055 * linear ** (1 / 2.4) - 0.055)
    return np.clip(np.round(c * 255.0), 0, 255).astype(np.uint8)


def _directions(n: int, dim: int, seed: int) -> np.ndarray:
    d = np.random.default_rng(seed).normal(size=(n, dim))
    return d / np.linalg.norm(d, axis=1, keepdims=True)


def _quantiles(sorted_rows: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """Linear-interpolated quantiles of each (already sorted) row at ``levels`` in (0, 1)."""
    pos = levels * (sorted_rows.shape[1] - 1)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, sorted_rows.shape[1] - 1)
    w = pos - lo
    return sorted_rows[:, lo] * (1 - w) + sorted_rows[:, hi] * w


def sliced_wasserstein(
    a: np.ndarray, b: np.ndarray, *, n_directions: int = 32, n_quantiles: int = 512, seed: int = 0
) -> float:
    """Sliced Wasserstein-2 distance between two point sets (N, D) and (M, D).

    The directions come from a fixed seed, so the distance is a deterministic function of the
    two sets; identical sets give exactly 0.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or len(a) == 0 or len(b) == 0:
        raise ValueError(f"expected two non-empty (N, D) point sets, got {a.shape} and {b.shape}")
    dirs = _directions(n_directions, a.shape[1], seed)
    levels = (np.arange(n_quantiles) + 0.5) / n_quantiles
    # (directions, points): each projection is a contiguous row, which sorts fastest.
    qa = _quantiles(np.sort(dirs @ a.T, axis=1), levels)
    qb = _quantiles(np.sort(dirs @ b.T, axis=1), levels)
    return float(math.sqrt(np.mean((qa - qb) ** 2)))


def _pixels(
    lab: np.ndarray, mask: np.ndarray | None = None, region: int | None = None
) -> np.ndarray:
    px = lab.reshape(-1, 3) if mask is None else lab[mask == region]
    step = math.ceil(len(px) / MAX_PIXELS) if len(px) > MAX_PIXELS else 1
    return px[::step]


def colour_distance(
    reference: np.ndarray,
    output: np.ndarray,
    *,
    reference_mask: np.ndarray | None = None,
    output_mask: np.ndarray | None = None,
) -> dict[str, float | None]:
    """Sliced Wasserstein distance of Lab colours: ``{"overall": d}`` and, with both masks,
    one entry per region name (``None`` where a region has under ``MIN_REGION_PIXELS`` pixels in
    either image)."""
    ref_lab = rgb_to_lab(check_image(reference, "reference"))
    out_lab = rgb_to_lab(check_image(output, "output"))
    result: dict[str, float | None] = {
        "overall": sliced_wasserstein(_pixels(ref_lab), _pixels(out_lab))
    }
    if reference_mask is None or output_mask is None:
        return result
    for mask, img, what in (
        (reference_mask, reference, "reference"),
        (output_mask, output, "output"),
    ):
        if np.asarray(mask).shape != img.shape[:2]:
            raise ValueError(f"{what} mask {np.asarray(mask).shape} does not match {img.shape[:2]}")
    for region, name in enumerate(REGION_NAMES):
        pr = _pixels(ref_lab, reference_mask, region)
        po = _pixels(out_lab, output_mask, region)
        ok = len(pr) >= MIN_REGION_PIXELS and len(po) >= MIN_REGION_PIXELS
        result[name] = sliced_wasserstein(pr, po) if ok else None
    return result


def colour_transfer(content: np.ndarray, style: np.ndarray) -> np.ndarray:
    """Reinhard et al. (2001) colour transfer in CIE Lab: match each channel's mean and standard
    deviation to the style's. A baseline for the colour distance."""
    c = rgb_to_lab(check_image(content, "content"))
    s = rgb_to_lab(check_image(style, "style"))
    c_mean, c_std = c.reshape(-1, 3).mean(0), c.reshape(-1, 3).std(0)
    s_mean, s_std = s.reshape(-1, 3).mean(0), s.reshape(-1, 3).std(0)
    # A flat content channel has no spread to scale: only its mean moves.
    scale = np.where(c_std > 1e-6, s_std / np.maximum(c_std, 1e-6), 1.0)
    return lab_to_rgb((c - c_mean) * scale + s_mean)


def histogram_transfer(content: np.ndarray, style: np.ndarray) -> np.ndarray:
    """Histogram matching in CIE Lab: map each channel's distribution to the style's, by the
    palette post-process alone (pipeline/palette.py, the whole image's quantiles, amount 1) on
    the unstyled content. A baseline that takes a poster's few inks or a drawing's paper and
    lines in tone, which a mean and spread cannot: what the palette step does without a model."""
    import torch

    from hypernst_cli.io.tensors import to_tensor, to_uint8
    from hypernst_cli.pipeline.palette import Palette, apply_palettes, region_quantiles

    c = to_tensor(check_image(content, "content"))
    table = region_quantiles(to_tensor(check_image(style, "style")), None)[0]
    with torch.no_grad():
        return to_uint8(apply_palettes(c, [Palette(table, 1.0)]))[0]


Parser = Callable[[np.ndarray], np.ndarray]


class ColourMetric(Metric):
    """Colour distance between the style and the output (sliced Wasserstein in Lab).

    ``parser``: image -> (H, W) region mask with 0/1/2; when given, the CSV also gets one column
    per region (``colour_background``, ``colour_face``, ``colour_hair``).
    """

    name = "colour"
    title = "Colour dist. (SWD Lab)"
    reference = "style"
    fmt = "{:.2f}"

    def __init__(self, *, parser: Parser | None = None, cache_size: int = 256) -> None:
        super().__init__()
        self.parser = parser
        self._mask_cache: dict[str, np.ndarray] = {}
        self._cache_size = cache_size

    def row_keys(self) -> list[str]:
        keys = [self.name]
        if self.parser is not None:
            keys += [f"{self.name}_{r}" for r in REGION_NAMES]
        return keys

    def columns(self) -> list[Column]:
        cols = [Column(self.name, self.title, self.fmt)]
        if self.parser is not None:
            cols += [Column(f"{self.name}_{r}", f"Colour {r}", self.fmt) for r in REGION_NAMES]
        return cols

    def summarize(self, rows: list[dict[str, Any]]) -> dict[str, float | None]:
        return {k: mean_or_none(r.get(k) for r in rows) for k in self.row_keys()}

    def _style_mask(self, style: np.ndarray) -> np.ndarray:
        assert self.parser is not None
        key = array_key(style)
        if key not in self._mask_cache:
            if len(self._mask_cache) >= self._cache_size:
                self._mask_cache.pop(next(iter(self._mask_cache)))
            self._mask_cache[key] = np.asarray(self.parser(style))
        return self._mask_cache[key]

    def evaluate(self, reference: np.ndarray, output: np.ndarray) -> dict[str, float | None]:
        if self.parser is None:
            return {self.name: colour_distance(reference, output)["overall"]}
        d = colour_distance(
            reference,
            output,
            reference_mask=self._style_mask(reference),
            output_mask=np.asarray(self.parser(output)),
        )
        row = {self.name: d["overall"]}
        row.update({f"{self.name}_{r}": d[r] for r in REGION_NAMES})
        return row

    def __call__(self, reference: np.ndarray, output: np.ndarray) -> float | None:
        return colour_distance(reference, output)["overall"]
