"""Pseudo-styles and crop views for the contrastive ALADIN stage.

ALADIN learns that images of one artistic style have nearby codes. Without a style-labelled set
(BAM-FG) we make styles: a photo goes through a random style transform whose parameters are drawn
once per instance (a colour grade with per-channel tone curves and a colour mix, posterisation,
blur or sharpening, an ink-edge overlay, grain or paper texture, a reduced palette). Two views of
one instance share that transform (the same style) but are different crops of it, so the code has
to carry the style and not the crop.

Views are random resized crops (area ``scale`` of the image, aspect 3:4 to 4:3) with random
horizontal flips, and NO colour jitter: colour is part of a style.

All randomness comes from the ``torch.Generator`` passed in (seeded per step by the stage), so
a resumed run draws exactly the same views. Images are [B, 3, H, W] in [0, 1].
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from hypernst_cli.models.filters import gaussian_blur, luminance, sobel_magnitude

#: the transforms a pseudo-style may combine
OPS = ("grade", "posterize", "blur_sharpen", "ink", "texture", "palette")


def _rand(gen: torch.Generator, *shape: int) -> torch.Tensor:
    return torch.rand(*shape, generator=gen)


def _uniform(gen: torch.Generator, lo: float, hi: float) -> float:
    return lo + (hi - lo) * float(_rand(gen, 1))


def _randint(gen: torch.Generator, lo: int, hi: int) -> int:
    """Uniform integer in [lo, hi]."""
    return int(torch.randint(lo, hi + 1, (1,), generator=gen))


def tone_curve(x: torch.Tensor, knots: torch.Tensor) -> torch.Tensor:
    """Per-channel piecewise-linear curve: ``knots`` [3, K] are the outputs at K evenly spaced
    inputs from 0 to 1 (a LUT with linear interpolation)."""
    k = knots.shape[1]
    pos = x.clamp(0, 1) * (k - 1)
    lo = pos.floor().clamp(max=k - 2).long()
    frac = pos - lo
    out = torch.empty_like(x)
    for c in range(3):
        table = knots[c].to(x)
        out[:, c] = table[lo[:, c]] * (1 - frac[:, c]) + table[lo[:, c] + 1] * frac[:, c]
    return out


def colour_grade(x: torch.Tensor, gen: torch.Generator, saturation: float | None = None) -> torch.Tensor:
    """A random colour grade of [B, 3, H, W] in [0, 1]: per-channel tone curves, a colour mix
    and a saturation change (``saturation`` fixes it; None: uniform in [0, 1.8], 0 = monochrome).
    One set of parameters for the whole batch, drawn from ``gen``. The result is not clamped."""
    # tone curves: sorted random outputs blended with the identity (keeps them monotone)
    k = 6
    ident = torch.linspace(0, 1, k).expand(3, k)
    rand = torch.sort(_rand(gen, 3, k), dim=1).values
    knots = torch.lerp(ident, rand, _uniform(gen, 0.3, 1.0))
    x = tone_curve(x, knots)
    # colour mix: towards a random tint matrix, and a saturation change (0: monochrome)
    mix = torch.eye(3) + (_rand(gen, 3, 3) - 0.5) * _uniform(gen, 0.0, 0.8)
    mix = mix / mix.sum(1, keepdim=True).clamp(min=0.2)
    x = torch.einsum("ij,bjhw->bihw", mix, x)
    grey = luminance(x)
    drawn = _uniform(gen, 0.0, 1.8)
    return grey + (x - grey) * (drawn if saturation is None else saturation)


def pseudo_style(image: torch.Tensor, gen: torch.Generator, min_ops: int = 1) -> torch.Tensor:
    """One random style applied to one image [3, H, W] in [0, 1] (parameters drawn from gen).

    Each transform of OPS is used with probability 1/2 (at least ``min_ops`` of them), in a fixed
    order: grade, blur/sharpen, posterize or palette, ink, texture.
    """
    chosen = {op for op in OPS if float(_rand(gen, 1)) < 0.5}
    while len(chosen) < min_ops:
        chosen.add(OPS[_randint(gen, 0, len(OPS) - 1)])
    x = image.unsqueeze(0).float()
    h, w = x.shape[-2:]
    if "grade" in chosen:
        x = colour_grade(x, gen)
    if "blur_sharpen" in chosen:
        sigma = _uniform(gen, 0.6, 2.0) * h / 128
        blurred = gaussian_blur(x, sigma)
        x = blurred if float(_rand(gen, 1)) < 0.5 else x + _uniform(gen, 1.0, 3.0) * (x - blurred)
    x = x.clamp(0, 1)
    if "palette" in chosen:
        n = _randint(gen, 3, 10)
        if float(_rand(gen, 1)) < 0.5:  # a random palette: new colours
            palette = _rand(gen, n, 3)
        else:  # the image's own colours, fewer of them
            flat = x[0].reshape(3, -1).t()
            palette = flat[torch.randint(flat.shape[0], (n,), generator=gen)]
        flat = x[0].reshape(3, -1).t()
        nearest = torch.cdist(flat, palette).argmin(1)
        x = palette[nearest].t().reshape(1, 3, h, w)
    elif "posterize" in chosen:
        levels = _randint(gen, 2, 6)
        x = torch.round(x * (levels - 1)) / (levels - 1)
    if "ink" in chosen:
        edges = sobel_magnitude(gaussian_blur(luminance(x), max(0.5, h / 256)))
        threshold = _uniform(gen, 0.15, 0.5)
        ink = torch.sigmoid((edges - threshold) * 20.0)
        colour = _rand(gen, 3).view(1, 3, 1, 1) * _uniform(gen, 0.0, 0.4)  # dark ink
        strength = _uniform(gen, 0.6, 1.0)
        x = x * (1 - strength * ink) + colour * strength * ink
    if "texture" in chosen:
        if float(_rand(gen, 1)) < 0.5:  # grain
            x = x + torch.randn(1, 1 if float(_rand(gen, 1)) < 0.5 else 3, h, w, generator=gen) \
                * _uniform(gen, 0.02, 0.12)
        else:  # paper / canvas: a low-frequency pattern, multiplied
            cells = _randint(gen, 4, 24)
            pattern = F.interpolate(_rand(gen, 1, 1, cells, cells), size=(h, w), mode="bicubic",
                                    align_corners=False)
            x = x * (1 - _uniform(gen, 0.1, 0.35) * pattern)
    return x.clamp(0, 1)[0]


def crop_box(h: int, w: int, scale: tuple[float, float], gen: torch.Generator,
             ratio: tuple[float, float] = (3 / 4, 4 / 3)) -> tuple[int, int, int, int]:
    """(top, left, height, width) of a random crop covering ``scale`` of the area."""
    for _ in range(10):
        area = h * w * _uniform(gen, *scale)
        aspect = math.exp(_uniform(gen, math.log(ratio[0]), math.log(ratio[1])))
        cw = int(round(math.sqrt(area * aspect)))
        ch = int(round(math.sqrt(area / aspect)))
        if 0 < cw <= w and 0 < ch <= h:
            return _randint(gen, 0, h - ch), _randint(gen, 0, w - cw), ch, cw
    side = min(h, w)
    return (h - side) // 2, (w - side) // 2, side, side


def random_view(image: torch.Tensor, size: int, scale: tuple[float, float],
                gen: torch.Generator) -> torch.Tensor:
    """A random resized crop of ``image`` [3, H, W], resized to size x size, maybe flipped."""
    top, left, ch, cw = crop_box(image.shape[-2], image.shape[-1], scale, gen)
    crop = image[None, :, top : top + ch, left : left + cw]
    view = F.interpolate(crop, size=(size, size), mode="bilinear", antialias=True,
                         align_corners=False)[0]
    return view.flip(-1) if float(_rand(gen, 1)) < 0.5 else view


def make_views(images: torch.Tensor, styled: torch.Tensor, size: int, scale: tuple[float, float],
               gen: torch.Generator, second: dict[int, torch.Tensor] | None = None
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """Two views per image [B, 3, H, W] in [0, 1]; ``styled`` [B] bool: apply a pseudo-style
    (the same one to both views) first. ``second`` {row: [3, H, W]}: the image view B of that
    row is cut from instead (another face in the same style, as it is: no pseudo-style); other
    rows cut both views from their own image. Returns (views A, views B), each [B, 3, size, size]."""
    a, b = [], []
    second = second or {}
    for i, (image, use) in enumerate(zip(images, styled.tolist())):
        src = pseudo_style(image, gen) if use else image
        a.append(random_view(src, size, scale, gen))
        b.append(random_view(second.get(i, src), size, scale, gen))
    return torch.stack(a).to(images.device), torch.stack(b).to(images.device)


def nt_xent(a: torch.Tensor, b: torch.Tensor, temperature: float) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """NT-Xent (SimCLR's InfoNCE) over 2B unit codes: the positive of a[i] is b[i] and vice versa;
    the other 2B - 2 codes of the batch are its negatives. Returns (loss, stats)."""
    n = a.shape[0]
    z = torch.cat([a, b]).float()
    sim = z @ z.t()
    logits = sim / temperature
    self_mask = torch.eye(2 * n, dtype=torch.bool, device=z.device)
    logits = logits.masked_fill(self_mask, float("-inf"))
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    loss = F.cross_entropy(logits, target)
    with torch.no_grad():
        pos = sim[torch.arange(2 * n, device=z.device), target]
        neg_mask = ~self_mask
        neg_mask[torch.arange(2 * n, device=z.device), target] = False
        neg = sim[neg_mask]
        accuracy = (logits.argmax(1) == target).float().mean()
    return loss, {"pos_cos": pos.mean(), "neg_cos": neg.mean() if neg.numel() else pos.new_zeros(()),
                  "accuracy": accuracy}
