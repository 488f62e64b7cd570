"""Building blocks of the style families: resolution-independent noise, line and dot screens,
cells (Voronoi), edge-preserving smoothing, line extraction, flow fields and palettes.

Lengths are in *reference pixels*: one reference pixel is 1/256 of the image's shorter side, so a
texture drawn from one generator state has the same layout at 128 and at 256 px (random lattices
are sized in reference units and sampled at each pixel, never drawn per pixel). Random numbers
are drawn on the CPU from the caller's ``torch.Generator`` (so a draw is identical on every
device) and moved to the image's device. Shapes: images [B, C, H, W]; fields [1, 1, H, W], which
broadcast over the batch so every image of a batch gets the same texture.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from hypernst_cli.models.filters import LUMA, gaussian_blur, luminance, sobel_magnitude

#: parameters of the families are given for an image whose shorter side is this many pixels
REFERENCE_SIDE = 256


def ref_scale(x: torch.Tensor) -> float:
    """Image pixels per reference pixel."""
    return min(x.shape[-2:]) / REFERENCE_SIDE


def rand(gen: torch.Generator, *shape: int, like: torch.Tensor) -> torch.Tensor:
    """Uniform [0, 1) numbers from ``gen`` (on the CPU), on ``like``'s device and dtype."""
    return torch.rand(*shape, generator=gen).to(device=like.device, dtype=like.dtype)


def blur(x: torch.Tensor, sigma_ref: float) -> torch.Tensor:
    """Gaussian blur with sigma in reference pixels (no-op below a tenth of an image pixel)."""
    sigma = sigma_ref * ref_scale(x)
    if sigma < 0.1:
        return x
    # reflect padding needs the kernel radius below the image side
    sigma = min(sigma, (min(x.shape[-2:]) - 1) / 2.5)
    return gaussian_blur(x, sigma)


def ref_grid(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(y, x) coordinates of the pixel centres in reference pixels, each [1, 1, H, W]."""
    h, w = x.shape[-2:]
    s = REFERENCE_SIDE / min(h, w)
    ys = (torch.arange(h, device=x.device, dtype=x.dtype) + 0.5) * s
    xs = (torch.arange(w, device=x.device, dtype=x.dtype) + 0.5) * s
    return ys.view(1, 1, h, 1).expand(1, 1, h, w), xs.view(1, 1, 1, w).expand(1, 1, h, w)


def _extent(x: torch.Tensor) -> tuple[float, float]:
    """(height, width) of the image in reference pixels."""
    h, w = x.shape[-2:]
    s = REFERENCE_SIDE / min(h, w)
    return h * s, w * s


def rotated(x: torch.Tensor, angle: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Coordinates (along, across) in reference pixels of axes rotated by ``angle`` radians."""
    y, xx = ref_grid(x)
    c, s = math.cos(angle), math.sin(angle)
    return xx * c + y * s, -xx * s + y * c


def aa_step(signed: torch.Tensor, pixel: float) -> torch.Tensor:
    """Anti-aliased step: 0 -> 1 as ``signed`` crosses 0, over one image pixel (``pixel`` is the
    change of ``signed`` across one image pixel)."""
    return (signed / max(pixel, 1e-6) + 0.5).clamp(0, 1)


def value_noise(x: torch.Tensor, gen: torch.Generator, period: float, angle: float = 0.0,
                stretch: float = 1.0) -> torch.Tensor:
    """Smooth noise in [0, 1] with one random lattice value per ``period`` reference pixels across
    and ``period * stretch`` along the direction ``angle`` (stretch > 1: streaks). [1, 1, H, W]."""
    along, across = rotated(x, angle)
    u = along / (period * stretch)
    v = across / period
    eh, ew = _extent(x)
    c, s = math.cos(angle), math.sin(angle)
    corners = [(0.0, 0.0), (0.0, ew), (eh, 0.0), (eh, ew)]
    us = [(cx * c + cy * s) / (period * stretch) for cy, cx in corners]
    vs = [(-cx * s + cy * c) / period for cy, cx in corners]
    u0, v0 = math.floor(min(us)) - 1, math.floor(min(vs)) - 1
    nu, nv = math.ceil(max(us)) - u0 + 2, math.ceil(max(vs)) - v0 + 2
    lattice = rand(gen, 1, 1, nv, nu, like=x)
    grid = torch.stack([(u - u0) / (nu - 1) * 2 - 1, (v - v0) / (nv - 1) * 2 - 1], dim=-1)
    out = F.grid_sample(lattice, grid[:, 0], mode="bicubic", align_corners=True)
    return out.clamp(0, 1)


def fbm(x: torch.Tensor, gen: torch.Generator, period: float, octaves: int = 4,
        persistence: float = 0.5, angle: float = 0.0, stretch: float = 1.0) -> torch.Tensor:
    """Fractal noise: ``octaves`` of value noise, periods halving, rescaled to about [0, 1]."""
    total = torch.zeros_like(x[:1, :1])
    amp, norm = 1.0, 0.0
    for i in range(octaves):
        total = total + amp * value_noise(x, gen, max(period / 2**i, 0.5), angle, stretch)
        norm += amp
        amp *= persistence
    return total / norm


def equalize(field: torch.Tensor) -> torch.Tensor:
    """Map a noise field to uniform [0, 1] by its ranks (thresholding it then gives an exact
    coverage). Ranks of a field that is the same at two sizes agree closely."""
    flat = field.flatten()
    ranks = torch.empty_like(flat)
    ranks[flat.argsort()] = torch.linspace(0, 1, flat.numel(), device=flat.device, dtype=flat.dtype)
    return ranks.view_as(field)


def line_screen(x: torch.Tensor, spacing: float, angle: float, coverage: torch.Tensor,
                offset: torch.Tensor | float = 0.0) -> torch.Tensor:
    """Parallel lines ``spacing`` reference pixels apart at ``angle``, each as wide as the local
    ``coverage`` (0..1 of the spacing); ``offset`` (in spacings) bends them. 1 = ink."""
    _, across = rotated(x, angle)
    phase = across / spacing + offset
    dist = (phase - torch.floor(phase) - 0.5).abs() * 2  # 0 on a line's centre, 1 between lines
    pixel = 2 / (spacing * ref_scale(x))
    return aa_step(coverage - dist, pixel)


def _spot(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """The halftone spot function: 1 at dot centres, 0 between them (phases in radians)."""
    return 0.5 + 0.25 * (torch.cos(u) + torch.cos(v))


def _spot_thresholds(levels: int = 257) -> torch.Tensor:
    """Thresholds t_k with area(spot > t_k) = k / (levels - 1): coverage maps to a threshold
    through them, so a dot's inked area matches the coverage asked for."""
    phase = (torch.arange(512, dtype=torch.float64) + 0.5) / 512 * 2 * math.pi
    values = _spot(phase.view(-1, 1), phase.view(1, -1)).flatten().sort(descending=True).values
    k = torch.linspace(0, values.numel() - 1, levels).round().long()
    t = values[k]
    return t.float()


_SPOT_THRESHOLDS = _spot_thresholds()


def dot_screen(x: torch.Tensor, period: float, angle: float, coverage: torch.Tensor,
               shift: tuple[float, float] = (0.0, 0.0)) -> torch.Tensor:
    """Halftone dots on a grid rotated by ``angle`` with ``period`` reference pixels; the inked
    area follows ``coverage`` (0..1; dots grow, touch in a checker at 1/2, then merge). 1 = ink."""
    along, across = rotated(x, angle)
    u = (along + shift[0]) / period * 2 * math.pi
    v = (across + shift[1]) / period * 2 * math.pi
    table = _SPOT_THRESHOLDS.to(coverage)
    pos = coverage.clamp(0, 1) * (table.numel() - 1)
    lo = pos.floor().clamp(max=table.numel() - 2).long()
    threshold = torch.lerp(table[lo], table[lo + 1], pos - lo)
    pixel = 2.2 / (period * ref_scale(x))
    ink = aa_step(_spot(u, v) - threshold, pixel)
    # the anti-aliased edge would leave a speck at coverage 0 and a pinhole at 1
    return torch.where(coverage <= 0, 0.0, torch.where(coverage >= 1, 1.0, ink))


def jittered_sites(x: torch.Tensor, gen: torch.Generator, cell: float, jitter: float = 1.0
                   ) -> torch.Tensor:
    """One random site per ``cell`` x ``cell`` reference square (a jittered grid covering the
    image and a one-cell margin): [ny + 2, nx + 2, 2] site positions (y, x) in reference pixels."""
    eh, ew = _extent(x)
    ny, nx = math.ceil(eh / cell) + 2, math.ceil(ew / cell) + 2
    iy = torch.arange(ny, dtype=x.dtype, device=x.device).view(ny, 1).expand(ny, nx) - 1
    ix = torch.arange(nx, dtype=x.dtype, device=x.device).view(1, nx).expand(ny, nx) - 1
    j = (rand(gen, ny, nx, 2, like=x) - 0.5) * jitter + 0.5
    return torch.stack([iy + j[..., 0], ix + j[..., 1]], dim=-1) * cell


def nearest_sites(x: torch.Tensor, sites: torch.Tensor, cell: float
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """For each pixel, among the sites of its own and the 8 neighbouring cells: the index of the
    nearest site [H, W] (into sites' flattened grid), its distance and the distance to the
    bisector with the second nearest (the half-width of the gap between two cells), [H, W] each,
    in reference pixels."""
    y, xx = ref_grid(x)
    y, xx = y[0, 0], xx[0, 0]
    ny, nx = sites.shape[:2]
    cy = torch.floor(y / cell).long() + 1
    cx = torch.floor(xx / cell).long() + 1
    site_y, site_x = sites[..., 0].flatten(), sites[..., 1].flatten()
    # running nearest and second nearest over the 9 candidate cells (elementwise, no sort)
    inf = torch.full_like(y, float("inf"))
    d_first, d_second = inf, inf
    i_first = torch.zeros_like(cy)
    y_first, x_first, y_second, x_second = y, xx, y, xx
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            idx = (cy + dy).clamp(0, ny - 1) * nx + (cx + dx).clamp(0, nx - 1)
            py, px = site_y[idx], site_x[idx]
            d = (py - y) ** 2 + (px - xx) ** 2
            closer, second = d < d_first, d < d_second
            d_second = torch.where(closer, d_first, torch.where(second, d, d_second))
            y_second = torch.where(closer, y_first, torch.where(second, py, y_second))
            x_second = torch.where(closer, x_first, torch.where(second, px, x_second))
            d_first = torch.where(closer, d, d_first)
            y_first = torch.where(closer, py, y_first)
            x_first = torch.where(closer, px, x_first)
            i_first = torch.where(closer, idx, i_first)
    sep = torch.sqrt((y_first - y_second) ** 2 + (x_first - x_second) ** 2).clamp(min=1e-6)
    gap = (d_second - d_first) / (2 * sep)  # distance from the pixel to the two sites' bisector
    return i_first, d_first.sqrt(), gap


def sample_at(image: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """``image`` [B, C, H, W] sampled (bilinear) at ``points`` [H, W, 2] (y, x) in reference
    pixels: [B, C, H, W]."""
    eh, ew = _extent(image)
    grid = torch.stack([points[..., 1] / ew * 2 - 1, points[..., 0] / eh * 2 - 1], dim=-1)
    grid = grid.unsqueeze(0).expand(image.shape[0], *grid.shape)
    return F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=False)


def displace(image: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor) -> torch.Tensor:
    """``image`` resampled at positions moved by (dy, dx) reference pixels ([1, 1, H, W] each)."""
    y, xx = ref_grid(image)
    pts = torch.stack([(y + dy)[0, 0], (xx + dx)[0, 0]], dim=-1)
    return sample_at(image, pts)


def kuwahara(x: torch.Tensor, radius_ref: float, sharpness: float = 8.0) -> torch.Tensor:
    """Kuwahara filter (smooth-weighted): the mean of the four (r+1)^2 quadrants around each
    pixel, weighted towards the quadrant of least luminance variance, so flat areas flatten and
    edges stay sharp: the look of thick paint."""
    r = max(1, round(radius_ref * ref_scale(x)))
    r = min(r, (min(x.shape[-2:]) - 1) // 2)
    k = r + 1
    lum = luminance(x)
    stack = torch.cat([x, lum, lum * lum], dim=1)
    padded = F.pad(stack, (r, r, r, r), mode="reflect")
    # box means, separably: [B, 5, H + r, W + r]; a quadrant is a window of it
    means = F.avg_pool2d(F.avg_pool2d(padded, (k, 1), stride=1), (1, k), stride=1)
    h, w = x.shape[-2:]
    quads = [means[..., i:i + h, j:j + w] for i in (0, r) for j in (0, r)]
    var = torch.stack([(q[:, 4:5] - q[:, 3:4] ** 2).clamp(min=0) for q in quads])
    # a soft choice of the flattest quadrant (weights fall with the variance, relative to its
    # mean over the four, so the choice does not depend on the image's contrast)
    weight = torch.softmax(-sharpness * var / (var.mean(dim=0, keepdim=True) + 1e-4), dim=0)
    out = quads[0][:, :3] * weight[0]
    for q, wq in zip(quads[1:], weight[1:]):
        out = out + q[:, :3] * wq
    return out


def dog_lines(gray: torch.Tensor, sigma_ref: float, threshold: float, sharpness: float = 6.0,
              k: float = 1.6) -> torch.Tensor:
    """Ink lines where a difference of Gaussians is dark (the dark side of edges, XDoG-like):
    [B, 1, H, W], 1 = ink. ``threshold`` (about 0.004-0.03) sets how many edges draw;
    ``sharpness`` is the slope of the line's edge in units of the threshold."""
    d = blur(gray, sigma_ref) - blur(gray, sigma_ref * k)
    return torch.sigmoid((-d - threshold) * sharpness / max(threshold, 1e-4))


def flow_angle(gray: torch.Tensor, sigma_ref: float, bias_angle: float, bias: float
               ) -> torch.Tensor:
    """The local edge tangent of ``gray`` [B, 1, H, W] (radians, [B, 1, H, W]) from its smoothed
    structure tensor, pulled towards ``bias_angle`` where edges are weak. ``bias`` is in the
    tensor's units (squared luminance change per reference pixel; a clear edge is ~1e-2, so
    ~1e-3 steers flat areas only). Orientations are combined as doubled angles, so opposite
    directions agree."""
    kx = torch.tensor([[-1.0, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=gray.dtype, device=gray.device)
    g = F.pad(gray, (1, 1, 1, 1), mode="replicate")
    # Sobel is 8x the per-pixel derivative; one reference pixel spans ref_scale image pixels
    to_ref = ref_scale(gray) / 8
    gx = F.conv2d(g, kx.view(1, 1, 3, 3)) * to_ref
    gy = F.conv2d(g, kx.t().contiguous().view(1, 1, 3, 3)) * to_ref
    jxx, jxy, jyy = blur(torch.cat([gx * gx, gx * gy, gy * gy], dim=1), sigma_ref).unbind(1)
    # doubled-angle vector of the gradient direction; the tangent is perpendicular to it
    normal = 2 * (bias_angle - math.pi / 2)
    cos2 = jxx - jyy + bias * math.cos(normal)
    sin2 = 2 * jxy + bias * math.sin(normal)
    return (0.5 * torch.atan2(sin2, cos2) + math.pi / 2).unsqueeze(1)


def smear(image: torch.Tensor, angle: torch.Tensor, length_ref: float, steps: int = 7
          ) -> torch.Tensor:
    """Blur ``image`` along the local direction ``angle`` [B or 1, 1, H, W] over ``length_ref``
    reference pixels (a straight-line convolution, triangle-weighted): brush strokes."""
    dy, dx = torch.sin(angle), torch.cos(angle)
    y, xx = ref_grid(image)
    eh, ew = _extent(image)
    b = max(image.shape[0], angle.shape[0])
    image = image.expand(b, *image.shape[1:])
    acc = torch.zeros_like(image)
    total = 0.0
    for i in range(-steps, steps + 1):
        t = i / steps * length_ref / 2
        wgt = 1.0 - abs(i) / (steps + 1)
        py, px = y + t * dy, xx + t * dx
        grid = torch.stack([px[:, 0] / ew * 2 - 1, py[:, 0] / eh * 2 - 1], dim=-1)
        grid = grid.expand(b, *grid.shape[1:])
        acc = acc + wgt * F.grid_sample(image, grid, mode="bilinear", padding_mode="border",
                                        align_corners=False)
        total += wgt
    return acc / total


def saturate(x: torch.Tensor, amount: float) -> torch.Tensor:
    """Scale the chroma around the luminance (0: grey, 1: unchanged)."""
    grey = luminance(x)
    return grey + (x - grey) * amount


def hsv_to_rgb(hsv: torch.Tensor) -> torch.Tensor:
    """[..., 3] hue (turns), saturation, value in [0, 1] -> RGB [..., 3]."""
    h, s, v = hsv.unbind(-1)
    k = torch.stack([(5 + h * 6) % 6, (3 + h * 6) % 6, (1 + h * 6) % 6], dim=-1)
    f = (torch.minimum(k, 4 - k)).clamp(0, 1)
    return v.unsqueeze(-1) * (1 - s.unsqueeze(-1) * f)


#: relative hue offsets (turns) of classic colour schemes
HUE_SCHEMES: dict[str, tuple[float, ...]] = {
    "analogous": (0.0, 0.06, 0.12, -0.06),
    "complementary": (0.0, 0.5, 0.04, 0.46),
    "triadic": (0.0, 1 / 3, 2 / 3),
    "split": (0.0, 0.42, 0.58),
    "monochrome": (0.0,),
}


def harmonious_palette(gen: torch.Generator, k: int, saturation: tuple[float, float] = (0.3, 0.9),
                       value: tuple[float, float] = (0.15, 0.95)) -> list[list[float]]:
    """``k`` RGB colours of a random colour scheme (random base hue, analogous, complementary,
    triadic, split or monochrome), spread from dark to light and sorted by luminance."""
    names = list(HUE_SCHEMES)
    offsets = HUE_SCHEMES[names[int(torch.randint(len(names), (1,), generator=gen))]]
    base = float(torch.rand(1, generator=gen))
    hues = torch.tensor([base + offsets[i % len(offsets)] for i in range(k)])
    hues = hues + (torch.rand(k, generator=gen) - 0.5) * 0.04
    sat = saturation[0] + (saturation[1] - saturation[0]) * torch.rand(k, generator=gen)
    # values spread evenly from dark to light (jittered), so the palette maps a tonal range
    ramp = torch.linspace(0, 1, k) if k > 1 else torch.tensor([0.5])
    val = value[0] + (value[1] - value[0]) * (ramp + (torch.rand(k, generator=gen) - 0.5) / k)
    rgb = hsv_to_rgb(torch.stack([hues % 1.0, sat, val.clamp(0, 1)], dim=-1))
    order = (rgb * torch.tensor(LUMA)).sum(-1).argsort()
    return rgb[order].tolist()


def gradient_map(lum: torch.Tensor, colours: torch.Tensor) -> torch.Tensor:
    """Map luminance [B, 1, H, W] through the colours [K, 3] (dark to light, evenly spaced,
    linearly interpolated): [B, 3, H, W]."""
    k = colours.shape[0]
    pos = lum.clamp(0, 1) * (k - 1)
    lo = pos.floor().clamp(max=k - 2).long()
    frac = pos - lo
    c = colours.to(lum)
    a = c[lo[:, 0]].permute(0, 3, 1, 2)
    b = c[lo[:, 0] + 1].permute(0, 3, 1, 2)
    return a + (b - a) * frac


def band_index(lum: torch.Tensor, thresholds: torch.Tensor) -> torch.Tensor:
    """How many of ``thresholds`` [K-1] each luminance exceeds: band indices [B, H, W] long."""
    return (lum[:, 0, ..., None] > thresholds.to(lum)).sum(-1)


def edge_strength(gray: torch.Tensor) -> torch.Tensor:
    """Gradient magnitude in units per reference pixel (so it does not grow with resolution)."""
    # Sobel is 8x the per-pixel derivative; one reference pixel spans ref_scale image pixels
    return sobel_magnitude(gray) / 8 * ref_scale(gray)
