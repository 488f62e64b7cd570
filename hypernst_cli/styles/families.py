"""Procedural style families: parametric image transforms that look like art media.

A *family* (pencil, duotone, posterize, ...) is a function of an image and a set of parameters;
a *draw* fixes the family, its parameters and a texture seed. Applying one draw to two different
faces gives "the same style" on both (same palette, same stroke directions, same paper texture),
which is what image analogies need: the exemplar T(A) and the target T(B) for content B.

Conventions: images are torch tensors [B, 3, H, W] in [0, 1] (float32, any device); every random
number comes from a ``torch.Generator`` seeded from the draw, so a draw renders identically on
every call and every machine. Texture fields (paper grain, hatching noise) are made at the image's
own size from the draw's seed, and scale with the image side (parameters are given for a 256 px
image) so a draw looks the same at 128 and 256 px. They never depend on the image's content or
its place in the batch: one draw gives every image the same paper, strokes, screens and cells.
The building blocks are in ``styles/textures.py``; docs/style-families.md shows every family.

Families are split: ``TRAIN_FAMILIES`` may be drawn in training; ``HELDOUT_FAMILIES`` never are
(the analogy benchmark measures generalisation to them).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from hypernst_cli.models.filters import LUMA, luminance
from hypernst_cli.styles import textures as tx

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
        # textures use their own stream, so they are not the numbers that drew the parameters
        gen = torch.Generator().manual_seed(_texture_seed(self.seed))
        out = get_family(self.family).apply(images.float(), self.params, gen)
        return out.clamp(0, 1).to(images.dtype)


def _texture_seed(seed: int) -> int:
    return (seed * 0x9E3779B97F4A7C15 + 0x632BE59BD9B4E019) % 2**63


def _uniform(gen: torch.Generator, lo: float, hi: float) -> float:
    return lo + (hi - lo) * float(torch.rand(1, generator=gen))


def _randint(gen: torch.Generator, lo: int, hi: int) -> int:
    """Uniform integer in [lo, hi]."""
    return int(torch.randint(lo, hi + 1, (1,), generator=gen))


# --- shared parameter draws ---------------------------------------------------------------------


def _choice(gen: torch.Generator, options: list[Any]) -> Any:
    return options[_randint(gen, 0, len(options) - 1)]


def _jitter_colour(gen: torch.Generator, colour: list[float], amount: float) -> list[float]:
    noise = (torch.rand(3, generator=gen) - 0.5) * 2 * amount
    return (torch.tensor(colour) + noise).clamp(0, 1).tolist()


#: papers, from bright white to toned drawing papers
_PAPERS = [[0.98, 0.98, 0.97], [0.96, 0.93, 0.85], [0.93, 0.90, 0.82], [0.95, 0.95, 0.92]]
_TONED_PAPERS = [[0.72, 0.68, 0.60], [0.62, 0.66, 0.70], [0.80, 0.74, 0.64], [0.66, 0.70, 0.62],
                 [0.82, 0.72, 0.70], [0.55, 0.55, 0.57], [0.85, 0.80, 0.68]]
#: dark drawing inks: black, sepia, indigo, sanguine, bistre, green-black
_INKS = [[0.06, 0.06, 0.07], [0.30, 0.18, 0.10], [0.10, 0.14, 0.32], [0.45, 0.12, 0.08],
         [0.22, 0.16, 0.12], [0.08, 0.18, 0.14]]
#: screen-printing / risograph inks
_PRINT_INKS = [[0.0, 0.6, 0.85], [0.9, 0.1, 0.5], [1.0, 0.85, 0.0], [0.1, 0.1, 0.12],
               [1.0, 0.35, 0.45], [0.0, 0.45, 0.35], [1.0, 0.45, 0.1], [0.2, 0.25, 0.65],
               [0.55, 0.2, 0.6], [0.85, 0.15, 0.15]]


def _paper(gen: torch.Generator, toned_probability: float = 0.0) -> list[float]:
    options = _TONED_PAPERS if float(torch.rand(1, generator=gen)) < toned_probability else _PAPERS
    return _jitter_colour(gen, _choice(gen, options), 0.03)


def _colour(values: list[float], like: torch.Tensor) -> torch.Tensor:
    return torch.tensor(values, dtype=like.dtype, device=like.device).view(1, 3, 1, 1)


def _contrast(y: torch.Tensor, contrast: float, gamma: float = 1.0) -> torch.Tensor:
    return ((y - 0.5) * contrast + 0.5).clamp(0, 1) ** gamma


def _smoothstep(e0: float, e1: float, t: torch.Tensor) -> torch.Tensor:
    t = ((t - e0) / (e1 - e0)).clamp(0, 1)
    return t * t * (3 - 2 * t)


def _ink_on_paper(paper: torch.Tensor, ink_colour: torch.Tensor, ink: torch.Tensor) -> torch.Tensor:
    """Ink coverage [*, 1, H, W] in [0, 1] laid over paper, multiplicatively (as a
    transparent medium: dark inks darken, tinted inks tint)."""
    return paper * (1 - ink + ink * ink_colour)


def _recolour_sample(gen: torch.Generator, probability: float) -> Params:
    """Maybe a colour scheme for a painterly family: 3-5 colours and how far to pull towards it."""
    if float(torch.rand(1, generator=gen)) >= probability:
        return {"recolour": None, "recolour_amount": 0.0}
    return {"recolour": tx.harmonious_palette(gen, _randint(gen, 3, 5), saturation=(0.35, 0.9)),
            "recolour_amount": _uniform(gen, 0.35, 0.75)}


def _recolour(x: torch.Tensor, p: Params) -> torch.Tensor:
    """Pull ``x`` towards its tones mapped through the draw's colour scheme (if it has one): the
    painter's palette replaces the photo's colours, the tones stay."""
    if p["recolour"] is None:
        return x
    mapped = tx.gradient_map(luminance(x), torch.tensor(p["recolour"]))
    return x + (mapped - x) * p["recolour_amount"]


# --- colour families -----------------------------------------------------------------------------


def _duotone_sample(gen: torch.Generator) -> Params:
    k = _randint(gen, 2, 3)
    colours = tx.harmonious_palette(gen, k, saturation=(0.2, 0.95), value=(0.08, 0.97))
    return {"colours": colours, "contrast": _uniform(gen, 0.8, 1.7),
            "gamma": _uniform(gen, 0.7, 1.4)}


def _duotone_apply(x: torch.Tensor, p: Params, gen: torch.Generator) -> torch.Tensor:
    # draws made before the 3-colour version name their two inks "dark" and "light"
    colours = p["colours"] if "colours" in p else [p["dark"], p["light"]]
    y = _contrast(luminance(x), p["contrast"], p.get("gamma", 1.0))
    return tx.gradient_map(y, torch.tensor(colours))


def _posterize_sample(gen: torch.Generator) -> Params:
    return {"levels": _randint(gen, 2, 5), "saturation": _uniform(gen, 0.7, 1.8),
            "gamma": [_uniform(gen, 0.75, 1.3) for _ in range(3)],
            "smooth": _uniform(gen, 0.5, 2.5)}


def _posterize_apply(x: torch.Tensor, p: Params, gen: torch.Generator) -> torch.Tensor:
    # a little smoothing first, so the levels form shapes rather than speckle (draws with only
    # "levels", made before, posterize the plain image)
    x = tx.saturate(tx.blur(x, p.get("smooth", 0.0)), p.get("saturation", 1.0)).clamp(0, 1)
    gamma = p.get("gamma", [1.0, 1.0, 1.0])
    x = x ** torch.tensor(gamma, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    n = p["levels"] - 1
    return torch.round(x * n) / n


def _palette_sample(gen: torch.Generator) -> Params:
    k = _randint(gen, 3, 6)
    if float(torch.rand(1, generator=gen)) < 0.7:
        colours = tx.harmonious_palette(gen, k)
    else:  # an arbitrary palette, sorted dark to light
        rgb = torch.rand(k, 3, generator=gen)
        colours = rgb[(rgb * torch.tensor(LUMA)).sum(-1).argsort()].tolist()
    lo, hi = _uniform(gen, 0.15, 0.35), _uniform(gen, 0.6, 0.85)
    thresholds = torch.linspace(lo, hi, k - 1) + (torch.rand(k - 1, generator=gen) - 0.5) * 0.08
    return {"colours": colours, "thresholds": thresholds.sort().values.tolist(),
            "smooth": _uniform(gen, 0.8, 3.0)}


def _palette_apply(x: torch.Tensor, p: Params, gen: torch.Generator) -> torch.Tensor:
    y = luminance(tx.kuwahara(x, p["smooth"] * 1.5))
    band = tx.band_index(tx.blur(y, p["smooth"]), torch.tensor(p["thresholds"]))
    colours = torch.tensor(p["colours"], dtype=x.dtype, device=x.device)
    return colours[band].permute(0, 3, 1, 2)


# --- drawing families ----------------------------------------------------------------------------


def _pencil_sample(gen: torch.Generator) -> Params:
    coloured = float(torch.rand(1, generator=gen)) < 0.3
    lead = _choice(gen, _INKS[1:]) if coloured else [0.18, 0.18, 0.2]
    angle = _uniform(gen, 0, math.pi)
    return {
        "lead": _jitter_colour(gen, lead, 0.05), "paper": _paper(gen, 0.25),
        "dodge_sigma": _uniform(gen, 1.5, 5.0), "outline": _uniform(gen, 0.5, 1.0),
        "angles": [angle, angle + _uniform(gen, 0.6, 1.6)], "layers": _randint(gen, 1, 2),
        "stroke_width": _uniform(gen, 1.5, 3.0), "stroke_length": _uniform(gen, 10.0, 30.0),
        "density": _uniform(gen, 0.7, 1.0), "gamma": _uniform(gen, 0.8, 1.5),
        "white": _uniform(gen, 0.15, 0.35),
        "contrast": _uniform(gen, 0.9, 1.5),
    }


def _hatching(x: torch.Tensor, gen: torch.Generator, darkness: torch.Tensor, angles: list[float],
              width: float, length: float, layers: int) -> torch.Tensor:
    """Strokes along ``angles[i]``: streaky noise thresholded at the local ``darkness`` (0..1), so
    the stroke density follows the tone; a second layer crosses the first in the darks."""
    ink = torch.zeros_like(darkness)
    for i in range(layers):
        streaks = tx.equalize(tx.value_noise(x, gen, width, angle=angles[i],
                                             stretch=length / width))
        level = (darkness - 0.5 * i) / (1 - 0.5 * i)  # the cross layer only in the darks
        ink = torch.maximum(ink, tx.aa_step(level - streaks, 0.15))
    return ink


def _pencil_apply(x: torch.Tensor, p: Params, gen: torch.Generator) -> torch.Tensor:
    g = _contrast(luminance(x), p["contrast"])
    # colour dodge of the grey by its blurred negative: the classic sketch outline
    dodge = (g / (1 - tx.blur(1 - g, p["dodge_sigma"]) + 1e-3).clamp(min=1e-3)).clamp(0, 1)
    outline = (1 - dodge) * p["outline"]
    # the lights stay white paper; hatching starts below the "white" level
    darkness = ((1 - tx.blur(g, 1.0) - p["white"]).clamp(min=0) / (1 - p["white"])) ** p["gamma"]
    hatch = _hatching(x, gen, darkness * p["density"], p["angles"], p["stroke_width"],
                      p["stroke_length"], p["layers"])
    grain = tx.value_noise(x, gen, 0.9)
    ink = torch.maximum(outline * 2.0, hatch * 0.75).clamp(0, 1) * (0.7 + 0.3 * grain)
    return _ink_on_paper(_colour(p["paper"], x), _colour(p["lead"], x), ink)


def _charcoal_sample(gen: torch.Generator) -> Params:
    return {
        "paper": _paper(gen, 0.7), "charcoal": _jitter_colour(gen, [0.07, 0.06, 0.06], 0.04),
        "chalk": float(torch.rand(1, generator=gen)) < 0.5,
        "angle": _uniform(gen, 0, math.pi), "stroke_width": _uniform(gen, 2.5, 6.0),
        "stroke_length": _uniform(gen, 10.0, 30.0), "smudge": _uniform(gen, 1.0, 3.0),
        "contrast": _uniform(gen, 1.0, 1.8), "tooth": _uniform(gen, 0.3, 0.7),
        "line_threshold": _uniform(gen, 0.006, 0.02),
    }


def _charcoal_apply(x: torch.Tensor, p: Params, gen: torch.Generator) -> torch.Tensor:
    g = tx.blur(_contrast(luminance(x), p["contrast"]), p["smudge"])
    strokes = tx.equalize(tx.fbm(x, gen, p["stroke_width"], octaves=3, angle=p["angle"],
                                 stretch=p["stroke_length"] / p["stroke_width"]))
    tooth = tx.fbm(x, gen, 1.2, octaves=2)
    cover = _smoothstep(0.0, 1.0, (1 - g) * 1.4 + 0.45 * (strokes - 0.5) - 0.05)
    lines = tx.dog_lines(g, 1.8, p["line_threshold"])
    # charcoal skips the paper's valleys: the tooth shows as light grain in the mid tones (the
    # darks are pressed into it)
    ink = torch.maximum(cover, lines)
    ink = ink * (1 - p["tooth"] * _smoothstep(0.4, 0.7, tooth) * (1 - 0.8 * ink))
    out = _ink_on_paper(_colour(p["paper"], x), _colour(p["charcoal"], x), ink.clamp(0, 1))
    if p["chalk"]:  # white chalk on the highlights of toned paper
        chalk = _smoothstep(0.6, 0.9, g) * (1 - 0.6 * _smoothstep(0.5, 0.8, tooth))
        out = out + (0.97 - out) * chalk * (0.5 + 0.5 * strokes)
    return out


def _ink_sample(gen: torch.Generator) -> Params:
    return {
        "ink": _jitter_colour(gen, _choice(gen, _INKS), 0.04), "paper": _paper(gen, 0.15),
        "line_sigma": _uniform(gen, 0.8, 2.2), "line_threshold": _uniform(gen, 0.004, 0.02),
        "wobble": _uniform(gen, 0.0, 2.5), "wobble_period": _uniform(gen, 15.0, 40.0),
        "spot_blacks": float(torch.rand(1, generator=gen)) < 0.5,
        "spot_threshold": _uniform(gen, 0.1, 0.28), "dry_brush": _uniform(gen, 0.0, 0.35),
    }


def _ink_apply(x: torch.Tensor, p: Params, gen: torch.Generator) -> torch.Tensor:
    wy = (tx.value_noise(x, gen, p["wobble_period"]) - 0.5) * 2 * p["wobble"]
    wx = (tx.value_noise(x, gen, p["wobble_period"]) - 0.5) * 2 * p["wobble"]
    g = luminance(tx.displace(x, wy, wx))
    ink = tx.dog_lines(g, p["line_sigma"], p["line_threshold"])
    if p["spot_blacks"]:  # solid blacks in the darkest shapes (hair, shadows)
        ink = torch.maximum(ink, _smoothstep(-0.03, 0.03, p["spot_threshold"] - tx.blur(g, 1.5)))
    dry = tx.value_noise(x, gen, 1.0, angle=0.3, stretch=6.0)
    ink = ink * (1 - p["dry_brush"] * _smoothstep(0.55, 0.8, dry))
    return _ink_on_paper(_colour(p["paper"], x), _colour(p["ink"], x), ink)


def _engraving_sample(gen: torch.Generator) -> Params:
    angle = _uniform(gen, 0, math.pi)
    return {
        "ink": _jitter_colour(gen, _choice(gen, _INKS), 0.03), "paper": _paper(gen, 0.2),
        "spacing": _uniform(gen, 2.5, 5.0), "angles": [angle, angle + _uniform(gen, 0.9, 1.6)],
        "bend": _uniform(gen, 0.5, 3.0), "warp": _uniform(gen, 0.1, 0.8),
        "warp_period": _uniform(gen, 25.0, 70.0), "cross_threshold": _uniform(gen, 0.45, 0.75),
        "gamma": _uniform(gen, 0.7, 1.4), "contrast": _uniform(gen, 1.0, 1.6),
    }


def _engraving_apply(x: torch.Tensor, p: Params, gen: torch.Generator) -> torch.Tensor:
    g = _contrast(tx.blur(luminance(x), 0.8), p["contrast"])
    dark = (1 - g) ** p["gamma"]
    # lines bend with the tone (like a burin following the form) and with a slow warp
    offset = p["bend"] * tx.blur(g, 4.0) + p["warp"] * tx.value_noise(x, gen, p["warp_period"])
    first = tx.line_screen(x, p["spacing"], p["angles"][0], dark * 0.95 + 0.03, offset)
    cross_cov = ((dark - p["cross_threshold"]) / (1 - p["cross_threshold"])).clamp(0, 1)
    cross = tx.line_screen(x, p["spacing"] * 1.2, p["angles"][1], cross_cov * 0.8, offset * 0.5)
    ink = torch.maximum(first, cross)
    return _ink_on_paper(_colour(p["paper"], x), _colour(p["ink"], x), ink)


# --- print families ------------------------------------------------------------------------------


def _halftone_sample(gen: torch.Generator) -> Params:
    n = _randint(gen, 1, 3)
    order = torch.randperm(len(_PRINT_INKS), generator=gen).tolist()
    picks = order[:n]
    # one ink at least must be dark enough to carry the picture (no yellow-only print)
    dark = [i for i in order if sum(a * b for a, b in zip(LUMA, _PRINT_INKS[i])) < 0.45]
    if not any(i in dark for i in picks):
        picks[-1] = dark[0]
    base = _uniform(gen, 0, math.pi / 2)
    return {
        "inks": [_jitter_colour(gen, _PRINT_INKS[i], 0.05) for i in picks],
        "angles": [base + i * math.pi / 6 + _uniform(gen, -0.05, 0.05) for i in range(n)],
        "period": _uniform(gen, 3.5, 9.0), "paper": _paper(gen, 0.1),
        "shifts": [[_uniform(gen, -1.5, 1.5), _uniform(gen, -1.5, 1.5)] for _ in range(n)],
        "contrast": _uniform(gen, 1.0, 1.6),
    }


def _ink_coverages(x: torch.Tensor, paper: torch.Tensor, inks: torch.Tensor) -> torch.Tensor:
    """How much of each ink [N, 3] (0..1) reproduces ``x`` on ``paper`` in a subtractive model:
    least squares on optical densities (-log of the transmittance). [B, N, H, W]."""
    density = -torch.log((x / paper).clamp(0.02, 1))
    ink_density = -torch.log(inks.clamp(0.02, 1))  # [N, 3]
    if inks.shape[0] == 1:  # one ink: follow the darkness along the ink's own density
        d = ink_density[0]
        cov = torch.einsum("c,bchw->bhw", d, density) / (d @ d).clamp(min=1e-6)
        return cov.unsqueeze(1).clamp(0, 1)
    solve = torch.linalg.pinv(ink_density.t())  # [N, 3]
    return torch.einsum("nc,bchw->bnhw", solve, density).clamp(0, 1)


def _halftone_apply(x: torch.Tensor, p: Params, gen: torch.Generator) -> torch.Tensor:
    paper = _colour(p["paper"], x)
    inks = torch.tensor(p["inks"], dtype=x.dtype, device=x.device)
    src = tx.blur(x, p["period"] * 0.3)
    if inks.shape[0] == 1:  # a single ink prints the tone
        src = _contrast(luminance(src), p["contrast"]).expand(-1, 3, -1, -1)
    else:
        src = ((src - 0.5) * p["contrast"] + 0.5).clamp(0, 1)
    cov = _ink_coverages(src, paper, inks)
    out = paper.expand_as(x).clone()
    for i in range(inks.shape[0]):
        dots = tx.dot_screen(x, p["period"], p["angles"][i], cov[:, i:i + 1], tuple(p["shifts"][i]))
        out = out * (1 - dots + dots * inks[i].view(1, 3, 1, 1))
    return out


def _linocut_sample(gen: torch.Generator) -> Params:
    ink = _choice(gen, _INKS + [[0.75, 0.1, 0.1], [0.1, 0.2, 0.55]])
    return {
        "ink": _jitter_colour(gen, ink, 0.04), "paper": _paper(gen, 0.3),
        "tone": tx.harmonious_palette(gen, 1, saturation=(0.3, 0.8), value=(0.6, 0.95))[0]
        if float(torch.rand(1, generator=gen)) < 0.5 else None,
        "light": _uniform(gen, 0.2, 0.4), "solid": _uniform(gen, 0.6, 0.8),
        "tone_threshold": _uniform(gen, 0.6, 0.8),
        "angle": _uniform(gen, 0, math.pi), "spacing": _uniform(gen, 5.0, 9.0),
        "bend": _uniform(gen, 0.5, 2.0), "rough": _uniform(gen, 0.1, 0.3),
        "speckle": _uniform(gen, 0.0, 0.25), "smooth": _uniform(gen, 1.0, 2.5),
    }


def _linocut_apply(x: torch.Tensor, p: Params, gen: torch.Generator) -> torch.Tensor:
    g = tx.blur(luminance(x), p["smooth"])
    # mid tones are cut as parallel gouges whose width follows the tone: lights are cut away
    # completely, darks left solid; the gouges bend with the tone and have rough edges
    dark = _smoothstep(p["light"], p["solid"], 1 - g)
    rough = (tx.value_noise(x, gen, 2.0, angle=p["angle"], stretch=4.0) - 0.5) * 2 * p["rough"]
    key = tx.line_screen(x, p["spacing"], p["angle"], dark + rough * dark * (1 - dark) * 4,
                         p["bend"] * tx.blur(g, 6.0))
    key = torch.where(dark > 0.98, torch.ones_like(key), key) * (dark > 0.02)
    speckle = tx.value_noise(x, gen, 1.2)
    key = key * (1 - _smoothstep(1 - p["speckle"] * 0.6, 1.0, speckle))
    out = _colour(p["paper"], x).expand_as(x)
    if p["tone"] is not None:  # a second, lighter block printed under the key block
        tone = _smoothstep(-0.02, 0.02, p["tone_threshold"] - g)
        out = _ink_on_paper(out, _colour(p["tone"], x), tone)
    return out * (1 - key) + _colour(p["ink"], x) * key


# --- paint families ------------------------------------------------------------------------------


def _watercolour_sample(gen: torch.Generator) -> Params:
    mono = float(torch.rand(1, generator=gen)) < 0.25
    return {
        "paper": _paper(gen, 0.1), "wobble": _uniform(gen, 1.0, 4.0),
        "wobble_period": _uniform(gen, 12.0, 35.0), "wash_sigma": _uniform(gen, 1.0, 3.0),
        "bands": _randint(gen, 3, 6), "edge_darkening": _uniform(gen, 0.3, 0.9),
        "granulation": _uniform(gen, 0.05, 0.25), "grain_period": _uniform(gen, 2.0, 5.0),
        "density": _uniform(gen, 0.6, 0.9), "saturation": _uniform(gen, 0.8, 1.5),
        # some washes are one or two pigments (sepia, indigo, Payne's grey...)
        "pigments": tx.harmonious_palette(gen, 2, saturation=(0.3, 0.8), value=(0.15, 0.75))
        if mono else None,
    }


def _watercolour_apply(x: torch.Tensor, p: Params, gen: torch.Generator) -> torch.Tensor:
    wy = (tx.value_noise(x, gen, p["wobble_period"]) - 0.5) * 2 * p["wobble"]
    wx = (tx.value_noise(x, gen, p["wobble_period"]) - 0.5) * 2 * p["wobble"]
    wash = tx.blur(tx.displace(x, wy, wx), p["wash_sigma"])
    if p["pigments"] is not None:
        ramp = torch.tensor(p["pigments"] + [[1.0, 1.0, 1.0]])
        wash = tx.gradient_map(luminance(wash), ramp)
    wash = tx.saturate(wash, p["saturation"]).clamp(0, 1)
    pigment = (1 - wash) * p["density"]
    # layered washes: the amount of pigment falls into a few flat-ish bands with soft borders
    amount = luminance(pigment).clamp(min=1e-3)
    t = amount * p["bands"]
    banded = (torch.floor(t) + _smoothstep(0.25, 0.75, t - torch.floor(t))) / p["bands"]
    pigment = pigment * (0.4 + 0.6 * banded / amount)
    # pigment pools at the border of a wash: darker edges
    edges = tx.edge_strength(tx.blur(luminance(pigment), 0.8))
    pigment = pigment * (1 + p["edge_darkening"] * (edges * 8).clamp(0, 1))
    grain = tx.fbm(x, gen, p["grain_period"], octaves=2)
    pigment = pigment * (1 + p["granulation"] * (grain - 0.5) * 2)
    paper = _colour(p["paper"], x) * (1 - 0.08 * tx.fbm(x, gen, 3.0, octaves=3))
    return paper * (1 - (pigment - 0.03).clamp(0, 1))


def _oil_sample(gen: torch.Generator) -> Params:
    return {
        "radius": _uniform(gen, 2.0, 4.5), "stroke_length": _uniform(gen, 8.0, 20.0),
        "stroke_width": _uniform(gen, 1.5, 3.5), "impasto": _uniform(gen, 0.04, 0.15),
        "angle": _uniform(gen, 0, math.pi), "canvas": _uniform(gen, 0.03, 0.1),
        "canvas_period": _uniform(gen, 2.0, 3.5), "saturation": _uniform(gen, 0.9, 1.6),
        "gains": [_uniform(gen, 0.85, 1.15) for _ in range(3)], "contrast": _uniform(gen, 0.9, 1.3),
        **_recolour_sample(gen, 0.5),
    }


def _oil_apply(x: torch.Tensor, p: Params, gen: torch.Generator) -> torch.Tensor:
    paint = tx.kuwahara(x, p["radius"])
    # strokes follow the forms; in flat areas they all go the draw's way
    flow = tx.flow_angle(luminance(paint), 3.0, p["angle"], 2e-3)
    paint = tx.smear(paint, flow, p["stroke_length"] * 0.5, steps=2)
    paint = _recolour(tx.saturate(paint, p["saturation"]) * _colour(p["gains"], x), p)
    paint = (paint - 0.5) * p["contrast"] + 0.5
    # impasto: a height field of streaks along the strokes, lit from the top left
    height = tx.smear(tx.value_noise(x, gen, p["stroke_width"]), flow, p["stroke_length"], steps=4)
    gy, gx = (torch.diff(height, dim=d, append=height.narrow(d, -1, 1)) for d in (2, 3))
    light = (-(gx + gy) / tx.ref_scale(x) * 6).clamp(-1, 1)
    along, across = tx.rotated(x, 0.0)
    period = p["canvas_period"]
    weave = torch.sin(along / period * math.pi) * torch.sin(across / period * math.pi)
    return paint * (1 + p["impasto"] * light) * (1 - p["canvas"] * (0.5 + 0.5 * weave))


def _pastel_sample(gen: torch.Generator) -> Params:
    angle = _uniform(gen, 0, math.pi)
    return {
        "paper": _jitter_colour(gen, _choice(gen, _TONED_PAPERS), 0.05),
        "angles": [angle, angle + _uniform(gen, 0.4, 1.2)], "stroke_width": _uniform(gen, 2.0, 4.0),
        "stroke_length": _uniform(gen, 8.0, 18.0), "whiten": _uniform(gen, 0.1, 0.3),
        "saturation": _uniform(gen, 0.9, 1.4), "coverage": _uniform(gen, 0.7, 0.95),
        "streak_contrast": _uniform(gen, 0.05, 0.15), "tooth": _uniform(gen, 0.3, 0.6),
        "soft": _uniform(gen, 0.8, 2.0), "levels": _randint(gen, 4, 7),
        **_recolour_sample(gen, 0.5),
    }


def _pastel_apply(x: torch.Tensor, p: Params, gen: torch.Generator) -> torch.Tensor:
    chalk = _recolour(tx.saturate(tx.blur(x, p["soft"]), p["saturation"]), p).clamp(0, 1)
    # a box of sticks: colours come in steps, lifted towards white (chalky)
    n = p["levels"] - 1
    chalk = torch.round(chalk * n) / n * 0.5 + chalk * 0.5
    chalk = chalk + (1 - chalk) * p["whiten"]
    dark = 1 - luminance(chalk)
    stretch = p["stroke_length"] / p["stroke_width"]
    tooth = tx.fbm(x, gen, 1.0, octaves=2)
    out = _colour(p["paper"], x).expand_as(x)
    for i, a in enumerate(p["angles"]):
        # strokes blend the colours along their direction; the stick's pressure varies per
        # stroke, and where it is light the paper's tooth shows through the chalk
        angle = torch.full_like(dark[:1], a)
        stroked = tx.smear(chalk, angle, p["stroke_length"] * 0.4, steps=2)
        pressure = tx.equalize(tx.value_noise(x, gen, p["stroke_width"], angle=a, stretch=stretch))
        shade = 1 + p["streak_contrast"] * (pressure - 0.5) * 2
        level = p["coverage"] + 0.35 * dark + 0.3 * (pressure - 0.5) - 0.35 * i
        cover = _smoothstep(-0.25, 0.25, level - (tooth * p["tooth"] * 2 + 0.5 - p["tooth"]))
        if i > 0:  # the crossing layer only where the first was pressed hard, in the darks
            cover = cover * _smoothstep(0.3, 0.6, dark)
        out = out * (1 - cover) + (stroked * shade).clamp(0, 1) * cover
    return out


def _cartoon_sample(gen: torch.Generator) -> Params:
    return {
        "radius": _uniform(gen, 2.0, 5.0), "levels": _randint(gen, 3, 6),
        "saturation": _uniform(gen, 1.1, 1.9),
        "gains": [_uniform(gen, 0.85, 1.15) for _ in range(3)],
        "line_sigma": _uniform(gen, 1.0, 2.2), "line_threshold": _uniform(gen, 0.004, 0.015),
        "line_colour": _jitter_colour(gen, _choice(gen, _INKS[:3]), 0.03),
        "brightness": _uniform(gen, 0.0, 0.15),
    }


def _cartoon_apply(x: torch.Tensor, p: Params, gen: torch.Generator) -> torch.Tensor:
    flat = tx.blur(tx.kuwahara(x, p["radius"], sharpness=4.0), 0.8)
    lum = luminance(flat)
    # quantise the tone only, keeping each area's hue: cel shading
    n = p["levels"]
    tone = (torch.floor(lum * n) + _smoothstep(0.45, 0.55, lum * n - torch.floor(lum * n))) / n
    flat = flat + (tone + p["brightness"] - lum)
    flat = (tx.saturate(flat, p["saturation"]) * _colour(p["gains"], x)).clamp(0, 1)
    lines = tx.dog_lines(tx.blur(lum, 0.5), p["line_sigma"], p["line_threshold"])
    return flat * (1 - lines) + _colour(p["line_colour"], x) * lines


# --- cell families -------------------------------------------------------------------------------


def _stained_glass_sample(gen: torch.Generator) -> Params:
    return {
        "cell": _uniform(gen, 8.0, 16.0), "jitter": _uniform(gen, 0.7, 1.0),
        "leading": _uniform(gen, 0.6, 1.5),
        "lead_colour": _jitter_colour(gen, [0.08, 0.08, 0.09], 0.04),
        "palette": _glass_palette(gen) if float(torch.rand(1, generator=gen)) < 0.6 else None,
        "saturation": _uniform(gen, 1.4, 2.2), "mottle": _uniform(gen, 0.1, 0.3),
        "glow": _uniform(gen, 0.1, 0.35),
    }


def _glass_palette(gen: torch.Generator) -> list[list[float]]:
    """Stock glass: vivid hues evenly around the wheel (random start), each deep and light,
    plus clear glass."""
    n = _randint(gen, 4, 8)
    start, sat = _uniform(gen, 0, 1), _uniform(gen, 0.6, 1.0)
    hsv = [[(start + i / n) % 1.0, sat, v] for i in range(n) for v in (0.45, 0.9)]
    colours = tx.hsv_to_rgb(torch.tensor(hsv)).tolist()
    return colours + [[0.92, 0.92, 0.85]]


def _nearest_colour(colours: torch.Tensor, palette: torch.Tensor) -> torch.Tensor:
    """Each colour of [B, 3, H, W] replaced by its nearest palette colour [K, 3]."""
    flat = colours.permute(0, 2, 3, 1).reshape(-1, 3)
    idx = torch.cdist(flat, palette.to(flat)).argmin(1)
    return palette.to(flat)[idx].view(*colours.shape[:1], *colours.shape[2:], 3).permute(0, 3, 1, 2)


def _stained_glass_apply(x: torch.Tensor, p: Params, gen: torch.Generator) -> torch.Tensor:
    cell = p["cell"]
    sites = tx.jittered_sites(x, gen, cell, p["jitter"])
    idx, dist, gap = tx.nearest_sites(x, sites, cell)
    colour = tx.sample_at(tx.blur(x, cell * 0.3), sites.view(-1, 2)[idx])
    colour = tx.saturate(colour, p["saturation"]).clamp(0, 1)
    if p["palette"] is not None:
        colour = _nearest_colour(colour, torch.tensor(p["palette"]))
    mottle = tx.fbm(x, gen, cell * 0.4, octaves=3)
    glow = 1 - p["glow"] * (dist / cell).clamp(0, 1.2) ** 2  # brighter in each pane's middle
    glass = colour * glow * (1 + p["mottle"] * (mottle - 0.5) * 2)
    lead = tx.aa_step(p["leading"] - gap, 1 / tx.ref_scale(x))
    return glass * (1 - lead) + _colour(p["lead_colour"], x) * lead


def _mosaic_sample(gen: torch.Generator) -> Params:
    grout = _choice(gen, [[0.85, 0.83, 0.78], [0.6, 0.58, 0.55], [0.2, 0.19, 0.18]])
    return {
        "tile": _uniform(gen, 5.5, 10.0), "jitter": _uniform(gen, 0.1, 0.4),
        "gap": _uniform(gen, 0.4, 1.0), "grout": _jitter_colour(gen, grout, 0.04),
        "levels": _randint(gen, 3, 5), "tile_variation": _uniform(gen, 0.04, 0.15),
        "saturation": _uniform(gen, 0.7, 1.4), "bevel": _uniform(gen, 0.1, 0.3),
        # stock tesserae: a few tones, or the stones of a colour scheme
        "stones": tx.harmonious_palette(gen, _randint(gen, 6, 10), saturation=(0.2, 0.8),
                                        value=(0.1, 0.95))
        if float(torch.rand(1, generator=gen)) < 0.5 else None,
    }


def _mosaic_apply(x: torch.Tensor, p: Params, gen: torch.Generator) -> torch.Tensor:
    tile = p["tile"]
    sites = tx.jittered_sites(x, gen, tile, p["jitter"])
    idx, _, gap = tx.nearest_sites(x, sites, tile)
    colour = tx.sample_at(tx.blur(x, tile * 0.35), sites.view(-1, 2)[idx])
    colour = tx.saturate(colour, p["saturation"]).clamp(0, 1)
    if p["stones"] is None:  # stones come in a few tones; the hue of each is kept
        lum = luminance(colour)
        n = p["levels"] + 1
        colour = colour - lum + torch.round(lum * n) / n
    else:
        colour = tx.gradient_map(luminance(colour), torch.tensor(p["stones"]))
        colour = _nearest_colour(colour, torch.tensor(p["stones"]))
    variation = tx.rand(gen, sites.shape[0] * sites.shape[1], 3, like=x)[idx].permute(2, 0, 1)
    colour = colour * (1 + p["tile_variation"] * (variation.unsqueeze(0) - 0.5) * 2)
    bevel = 1 - p["bevel"] * (1 - (gap / (tile * 0.3)).clamp(0, 1)) ** 2
    joint = tx.aa_step(p["gap"] - gap, 1 / tx.ref_scale(x))
    return colour * bevel * (1 - joint) + _colour(p["grout"], x) * joint


def _pointillism_sample(gen: torch.Generator) -> Params:
    return {
        "cell": _uniform(gen, 3.5, 9.0), "radius": _uniform(gen, 0.5, 0.85),
        "canvas": _paper(gen, 0.4), "saturation": _uniform(gen, 1.2, 2.0),
        "colour_jitter": _uniform(gen, 0.05, 0.2), "brightness": _uniform(gen, 0.0, 0.1),
        **_recolour_sample(gen, 0.5),
    }


def _pointillism_apply(x: torch.Tensor, p: Params, gen: torch.Generator) -> torch.Tensor:
    cell = p["cell"]
    base = _recolour(tx.saturate(tx.blur(x, cell * 0.5), p["saturation"]) + p["brightness"], p)
    base = base.clamp(0, 1)
    out = _colour(p["canvas"], x).expand_as(x)
    for _ in range(2):  # two layers of dots, the second filling the gaps of the first
        sites = tx.jittered_sites(x, gen, cell, 1.0)
        idx, dist, _ = tx.nearest_sites(x, sites, cell)
        # divisionism: each dot's colour is pushed off the local colour at random
        jitter = (tx.rand(gen, sites.shape[0] * sites.shape[1], 3, like=x) - 0.5) * 2
        colour = tx.sample_at(base, sites.view(-1, 2)[idx])
        colour = colour + p["colour_jitter"] * jitter[idx].permute(2, 0, 1).unsqueeze(0)
        n_sites = sites.shape[0] * sites.shape[1]
        size = p["radius"] * cell * (0.8 + 0.4 * tx.rand(gen, n_sites, like=x)[idx])
        dot = tx.aa_step(size - dist, 1 / tx.ref_scale(x))
        out = out * (1 - dot) + colour.clamp(0, 1) * dot
    return out


FAMILIES: dict[str, StyleFamily] = {
    f.name: f
    for f in (
        StyleFamily("duotone", "luminance mapped through 2-3 inks of a colour scheme",
                    _duotone_sample, _duotone_apply),
        StyleFamily("posterize", "smoothed colours in a few flat levels per channel",
                    _posterize_sample, _posterize_apply),
        StyleFamily("palette", "flat shapes in k colours of a palette, by tone",
                    _palette_sample, _palette_apply),
        StyleFamily("pencil", "graphite sketch: dodge outlines and hatching in drawn directions",
                    _pencil_sample, _pencil_apply),
        StyleFamily("charcoal", "broad smudged strokes on toned paper, chalk highlights",
                    _charcoal_sample, _charcoal_apply),
        StyleFamily("ink", "pen line drawing with wobble and spot blacks",
                    _ink_sample, _ink_apply),
        StyleFamily("halftone", "screen print: 1-3 inks as dots on rotated grids",
                    _halftone_sample, _halftone_apply),
        StyleFamily("linocut", "carved block print: gouge marks along the forms, 1-2 blocks",
                    _linocut_sample, _linocut_apply),
        StyleFamily("watercolour", "soft layered washes, dark wash edges, granulation, paper",
                    _watercolour_sample, _watercolour_apply),
        StyleFamily("oil", "Kuwahara paint, strokes along the forms, impasto, canvas",
                    _oil_sample, _oil_apply),
        StyleFamily("cartoon", "flat cel-shaded colour with dark contour lines",
                    _cartoon_sample, _cartoon_apply),
        StyleFamily("stained_glass", "Voronoi glass panes with dark leading",
                    _stained_glass_sample, _stained_glass_apply),
        StyleFamily("mosaic", "small tesserae in stock colours with grout joints",
                    _mosaic_sample, _mosaic_apply),
        StyleFamily("engraving", "line screen whose width follows the tone, bending with the form",
                    _engraving_sample, _engraving_apply),
        StyleFamily("pointillism", "dots of broken colour on a canvas",
                    _pointillism_sample, _pointillism_apply),
        StyleFamily("pastel", "soft chalky colour in strokes on toned paper with tooth",
                    _pastel_sample, _pastel_apply),
    )
}

#: families never drawn in training: the analogy benchmark's held-out set. Each is a distinct
#: medium whose ingredients the training families teach: engraving = the tone-following line
#: screens of halftone with the directional strokes of pencil; pointillism = the colour dots of
#: halftone and the cells of mosaic in painterly colour; pastel = charcoal's strokes and paper tooth
#: with watercolour's soft, light colour.
HELDOUT_FAMILIES: tuple[str, ...] = ("engraving", "pointillism", "pastel")
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


#: Draw seeds at or above this are the analogy benchmark's (eval/analogies.py); training draws
#: stay below it, so a "training family, unseen seed" row measures draws training never saw.
EVAL_SEED_BASE = 1 << 30


def random_draw(gen: torch.Generator, families: tuple[str, ...] = TRAIN_FAMILIES,
                weights: tuple[float, ...] | None = None) -> StyleDraw:
    """A training draw: a random family of ``families`` (uniform, or in proportion to
    ``weights``, one per family), a seed below EVAL_SEED_BASE from ``gen``."""
    if weights is None:
        name = families[_randint(gen, 0, len(families) - 1)]
    else:
        probs = torch.tensor(weights, dtype=torch.float64)
        name = families[int(torch.multinomial(probs, 1, generator=gen))]
    return draw_style(name, _randint(gen, 0, EVAL_SEED_BASE - 1))


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


def render_style(images: torch.Tensor, masks: torch.Tensor,
                 style: StyleDraw | dict[int, StyleDraw]) -> torch.Tensor:
    """One draw over whole images, or per-region draws composed through ``masks``
    (:func:`render_regions`); a region dict whose regions all share one draw renders it whole."""
    if isinstance(style, dict):
        distinct = {id(d): d for d in style.values()}
        if len(distinct) > 1:
            return render_regions(images, masks, style)
        style = next(iter(distinct.values()))
    return style.render(images)
