"""Procedural style families: parametric image transforms that look like art media.

A *family* (pencil, duotone, posterize, ...) is a function of an image and a set of parameters;
a *draw* fixes the family, its parameters and a texture seed. Applying one draw to two different
faces gives "the same style" on both (same palette, same stroke directions, same paper texture),
which is what image analogies need: the exemplar T(A) and the target T(B) for content B.

Conventions: images are torch tensors [B, 3, H, W] in [0, 1] (float32, any device); every random
number comes from a ``torch.Generator`` seeded from the draw, so a draw renders identically on
every call and every machine. Texture fields (paper grain, hatching noise) are made at the image's
own size from the draw's seed, and scale with the image side (parameters are given for a 256 px
image) so a draw looks the same at 128 and 256 px.

Families are split: ``TRAIN_FAMILIES`` may be drawn in training; ``HELDOUT_FAMILIES`` never are
(the analogy benchmark measures generalisation to them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from hypernst_cli.models.filters import luminance

Params = dict[str, Any]


@dataclass(frozen=True)
class StyleFamily:
    """A named transform: ``sample(gen)`` draws parameters, ``apply(x, params, gen)`` renders."""

    name: str
    description: str
    sample: Callable[[torch.Generator], Params]
    apply: Callable[[torch.Tensor, Params, torch.Generator], torch.Tensor]


@dataclass(frozen=True)
class StyleDraw:
    """One concrete style: a family, its parameters and the seed of its textures."""

    family: str
    params: Params = field(default_factory=dict)
    seed: int = 0

    def render(self, images: torch.Tensor) -> torch.Tensor:
        """Apply this style to [B, 3, H, W] in [0, 1]; deterministic for a given draw."""
        gen = torch.Generator().manual_seed(self.seed)
        out = get_family(self.family).apply(images.float(), self.params, gen)
        return out.clamp(0, 1).to(images.dtype)


def _uniform(gen: torch.Generator, lo: float, hi: float) -> float:
    return lo + (hi - lo) * float(torch.rand(1, generator=gen))


def _randint(gen: torch.Generator, lo: int, hi: int) -> int:
    """Uniform integer in [lo, hi]."""
    return int(torch.randint(lo, hi + 1, (1,), generator=gen))


# --- families -------------------------------------------------------------------------------


def _duotone_sample(gen: torch.Generator) -> Params:
    dark = (torch.rand(3, generator=gen) * 0.4).tolist()
    light = (0.6 + torch.rand(3, generator=gen) * 0.4).tolist()
    return {"dark": dark, "light": light, "contrast": _uniform(gen, 0.8, 1.6)}


def _duotone_apply(x: torch.Tensor, p: Params, gen: torch.Generator) -> torch.Tensor:
    y = luminance(x)
    y = ((y - 0.5) * p["contrast"] + 0.5).clamp(0, 1)
    dark = torch.tensor(p["dark"], dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    light = torch.tensor(p["light"], dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return dark + (light - dark) * y


def _posterize_sample(gen: torch.Generator) -> Params:
    return {"levels": _randint(gen, 2, 5)}


def _posterize_apply(x: torch.Tensor, p: Params, gen: torch.Generator) -> torch.Tensor:
    n = p["levels"] - 1
    return torch.round(x * n) / n


FAMILIES: dict[str, StyleFamily] = {
    f.name: f
    for f in (
        StyleFamily("duotone", "luminance mapped between two inks", _duotone_sample, _duotone_apply),
        StyleFamily("posterize", "few flat levels per channel", _posterize_sample, _posterize_apply),
    )
}

#: families never drawn in training: the analogy benchmark's held-out set
HELDOUT_FAMILIES: tuple[str, ...] = ()
TRAIN_FAMILIES: tuple[str, ...] = tuple(n for n in FAMILIES if n not in HELDOUT_FAMILIES)


def get_family(name: str) -> StyleFamily:
    try:
        return FAMILIES[name]
    except KeyError:
        raise KeyError(f"unknown style family '{name}' (known: {', '.join(FAMILIES)})") from None


def draw_style(family: str, seed: int) -> StyleDraw:
    """A draw of ``family`` whose parameters and textures all follow from ``seed``."""
    gen = torch.Generator().manual_seed(seed)
    return StyleDraw(family, get_family(family).sample(gen), seed)


def random_draw(gen: torch.Generator, families: tuple[str, ...] = TRAIN_FAMILIES) -> StyleDraw:
    """A draw of a random family of ``families``; its seed comes from ``gen``."""
    name = families[_randint(gen, 0, len(families) - 1)]
    return draw_style(name, _randint(gen, 0, 2**31 - 1))


def render_regions(images: torch.Tensor, masks: torch.Tensor,
                   draws: dict[int, StyleDraw]) -> torch.Tensor:
    """A region-mixed style: region r of each image (``masks`` [B, H, W] long, labels of
    faces/regions.py) rendered with ``draws[r]``. Each draw renders the whole image and the
    results are composed by hard masks, so a region's look does not depend on its neighbours'
    draws. A region missing from ``draws`` keeps the input."""
    out = images.clone()
    for region, d in draws.items():
        sel = (masks == region).unsqueeze(1).to(images.dtype)
        out = out * (1 - sel) + d.render(images) * sel
    return out
