"""The analogy benchmark: stylization with a ground truth (``hypernst evaluate --analogies``).

A procedural style draw T (styles/families.py) applied to two aligned faces gives an image analogy
A : T(A) :: B : T(B). The model gets the content B and the exemplar T(A) and should produce T(B);
unlike real style images, the truth is known, so the output is scored by L1 and SSIM against it
and by a texture distance that ignores where strokes fall (eval/texture.py), next to two baselines
on the same item: the unstyled face B, and B with the exemplar's Lab mean and standard deviation
(Reinhard colour transfer, eval/colour.py). B histogram-matched to the exemplar in Lab (the
palette post-process alone) is reported beside them, so a model's lead over its own palette step
shows. A further reference, the floor, says how close any
model can get: the truth's own family and parameters rendered on B with other texture seeds
(the per-pixel median of ``FLOOR_SEEDS`` renders, the best single guess under L1 when the
strokes' random placement is unknown). A model sees only the exemplar, so it cannot know where
the truth's strokes, dots or panes fall; the floor is what L1 leaves over for that alone.

Conventions:

- Every image is at the model's resolution R. Faces are resized to R (Lanczos) first, and each draw
  renders the exemplar and the truth directly at R (families scale their textures with the image
  side, so a draw looks the same at any size).
- Region masks (0 background, 1 face, 2 hair) come from the project's face parser, run once per
  face on the file as given (an aligned face is parsed as it is) and resized to R (nearest). The
  exemplar's codes use A's mask (a stylized face may defeat the detector), the content is fed
  as already aligned with B's mask: nothing is re-detected or realigned.
- Draws: families in ``HELDOUT_FAMILIES`` are never drawn in training. Training families are only
  measured with seeds at or above ``EVAL_SEED_BASE``: training must draw its seeds below it.
- Region-mixed items render a different draw per region (A's mask for the exemplar, B's mask for
  the truth); they are scored per region, and by the "own region" test: is the output's error in
  region r lower against T_r(B) than against every other region's T_r'(B)?
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from hypernst_cli.errors import UsageError
from hypernst_cli.eval.report import settings_text
from hypernst_cli.faces.regions import REGION_NAMES
from hypernst_cli.styles.families import EVAL_SEED_BASE

_SEED_SPAN = (1 << 31) - 1 - EVAL_SEED_BASE

#: the four metric subjects of every item, in table order
SUBJECTS = ("model", "unstyled", "colour_transfer", "histogram_transfer")
#: their column titles
SUBJECT_SHORT = {"model": "model", "unstyled": "unstyled", "colour_transfer": "colour tr.",
                 "histogram_transfer": "hist. tr."}

HELDOUT_SPLIT = "held-out family"
UNSEEN_SEED_SPLIT = "training family, unseen seeds"
REGION_MIXED = "region-mixed"

#: a region smaller than this share of the image is not scored on its own (too few pixels)
MIN_REGION_SHARE = 0.005
#: the most items shown on the contact sheet (spread over the rows of the table)
SHEET_ROWS = 24

#: texture seeds whose per-pixel median is the floor (the Bayes guess under L1, approximately)
FLOOR_SEEDS = 9

SSIM_SIGMA = 1.5
SSIM_WINDOW = 11


# --- metrics -----------------------------------------------------------------------------------


def l1_grey(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Mean absolute difference in grey levels (0-255) over pixels and channels; with ``mask``
    (bool, H x W) over the masked pixels only."""
    a, b = _pair(a, b)
    diff = np.abs(a - b)
    if mask is not None:
        diff = diff[np.asarray(mask, dtype=bool)]
        if diff.size == 0:
            raise ValueError("l1_grey: the mask selects no pixel")
    return float(diff.mean())


def _pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {a.shape} and {b.shape}")
    return a, b


def gaussian_window(sigma: float = SSIM_SIGMA, size: int = SSIM_WINDOW) -> np.ndarray:
    """The normalised 1-D Gaussian of the SSIM window (the 2-D window is its outer product)."""
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2
    g = np.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def _filter_valid(x: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Separable filtering of a 2-D array with ``g``, keeping only fully covered positions."""
    from numpy.lib.stride_tricks import sliding_window_view

    rows = sliding_window_view(x, len(g), axis=1) @ g
    return sliding_window_view(rows, len(g), axis=0) @ g


def ssim(a: np.ndarray, b: np.ndarray, *, data_range: float = 255.0,
         sigma: float = SSIM_SIGMA, size: int = SSIM_WINDOW) -> float:
    """SSIM of Wang et al. (2004): an 11 x 11 Gaussian window (sigma 1.5), K1 = 0.01, K2 = 0.03,
    local statistics weighted by the window, averaged over the positions where the window fits
    and, for colour images, over the channels. Identical images give 1."""
    a, b = _pair(a, b)
    if a.ndim == 2:
        a, b = a[..., None], b[..., None]
    if min(a.shape[:2]) < size:
        raise ValueError(f"SSIM needs images of at least {size} px, got {a.shape[:2]}")
    g = gaussian_window(sigma, size)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    values = []
    for ch in range(a.shape[2]):
        x, y = a[..., ch], b[..., ch]
        mx, my = _filter_valid(x, g), _filter_valid(y, g)
        vx = _filter_valid(x * x, g) - mx**2
        vy = _filter_valid(y * y, g) - my**2
        cxy = _filter_valid(x * y, g) - mx * my
        num = (2 * mx * my + c1) * (2 * cxy + c2)
        den = (mx**2 + my**2 + c1) * (vx + vy + c2)
        values.append(float(np.mean(num / den)))
    return float(np.mean(values))


def region_pixels_enough(mask: np.ndarray, region: int) -> bool:
    m = np.asarray(mask) == region
    return int(m.sum()) >= max(16, math.ceil(MIN_REGION_SHARE * m.size))


def own_region_hits(output: np.ndarray, truths: dict[int, np.ndarray],
                    mask: np.ndarray) -> dict[int, bool | None]:
    """Per region r of ``truths`` (region -> the whole content rendered with r's draw): True when
    the output's L1 inside r is lower against ``truths[r]`` than against every other region's
    truth (ties count as a miss); None when r has too few pixels in ``mask``, or when another
    region's truth is identical inside r (the test cannot tell the two styles apart there)."""
    hits: dict[int, bool | None] = {}
    for r in truths:
        inside = np.asarray(mask) == r
        if not region_pixels_enough(mask, r) or any(
                np.array_equal(truths[r][inside], truths[o][inside]) for o in truths if o != r):
            hits[r] = None
            continue
        own = l1_grey(output, truths[r], inside)
        others = [l1_grey(output, truths[o], inside) for o in truths if o != r]
        hits[r] = bool(others) and own < min(others)
    return hits


# --- faces and draws ---------------------------------------------------------------------------


@dataclass
class AnalogyFace:
    """One aligned face at the model's resolution, with its region labels."""

    name: str
    image: np.ndarray  # (R, R, 3) uint8
    mask: np.ndarray  # (R, R) uint8: 0 background, 1 face, 2 hair


def load_faces(paths: Sequence[Path], resolution: int,
               parse: Callable[..., np.ndarray]) -> list[AnalogyFace]:
    """Read aligned faces, parse their regions (``parse(image, source=path)``, at the file's own
    size) and resize both to ``resolution``. A face must be square and at least that large."""
    from PIL import Image

    from hypernst_cli.io import load_image
    from hypernst_cli.io.inputs import unique_stems
    from hypernst_cli.pipeline.stylize import resize_uint8

    paths = [Path(p) for p in paths if not Path(p).name.endswith(".mask.png")]
    if len(paths) < 2:
        raise UsageError(f"the analogy benchmark needs at least 2 faces, got {len(paths)}",
                         hint="give aligned face images or folders with --faces")
    names = unique_stems(paths)
    faces = []
    for path in paths:
        image = load_image(path)
        h, w = image.shape[:2]
        if h != w:
            raise UsageError(f"{path}: {w}x{h} px is not a square aligned face",
                             hint="align it first with `hypernst align`")
        if h < resolution:
            raise UsageError(f"{path}: {h} px is smaller than the model's {resolution} px",
                             hint="use aligned faces at the model's resolution or larger")
        labels = np.asarray(parse(image, source=path), dtype=np.uint8)
        mask = np.array(Image.fromarray(labels).resize((resolution, resolution),
                                                         Image.Resampling.NEAREST))
        faces.append(AnalogyFace(names[path], np.array(resize_uint8(image, resolution)), mask))
    return faces


def eval_seed(seed: int, *keys: Any) -> int:
    """A draw seed in [EVAL_SEED_BASE, 2**31 - 1), a fixed function of the run seed and keys."""
    digest = hashlib.sha256(json.dumps([seed, *keys]).encode()).digest()
    return EVAL_SEED_BASE + int.from_bytes(digest[:8], "big") % _SEED_SPAN


def resolve_families(names: Sequence[str] | None) -> list[str]:
    """Family names from ``--families``: names, or ``heldout`` / ``train`` / ``all``; none given
    means the held-out families (an error while none is defined: no silent fallback)."""
    from hypernst_cli.styles.families import FAMILIES, HELDOUT_FAMILIES, TRAIN_FAMILIES

    groups = {"heldout": list(HELDOUT_FAMILIES), "train": list(TRAIN_FAMILIES),
              "all": list(FAMILIES)}
    specs = [s.strip() for n in (names or ["heldout"]) for s in n.split(",") if s.strip()]
    out: list[str] = []
    for spec in specs:
        if spec in groups:
            chosen = groups[spec]
        elif spec in FAMILIES:
            chosen = [spec]
        else:
            raise UsageError(f"unknown style family '{spec}'",
                             hint=f"use heldout, train, all or one of: {', '.join(FAMILIES)}")
        out += [f for f in chosen if f not in out]
    if not out:
        raise UsageError("no held-out style families are defined (HELDOUT_FAMILIES is empty)"
                         if "heldout" in specs else "no style families selected",
                         hint="name families with --families, e.g. --families train "
                              "(training families with unseen seeds)")
    return out


def family_split(family: str) -> str:
    from hypernst_cli.styles.families import HELDOUT_FAMILIES

    return HELDOUT_SPLIT if family in HELDOUT_FAMILIES else UNSEEN_SEED_SPLIT


@dataclass
class AnalogyItem:
    """Exemplar face A, content face B (indices into the faces) and the style: one draw for
    the whole image, or one per region (region-mixed)."""

    exemplar_face: int
    content_face: int
    draw: Any = None  # StyleDraw
    region_draws: dict[int, Any] = field(default_factory=dict)  # region -> StyleDraw

    @property
    def mixed(self) -> bool:
        return bool(self.region_draws)

    @property
    def group(self) -> str:
        return REGION_MIXED if self.mixed else self.draw.family

    @property
    def split(self) -> str:
        if self.mixed:
            splits = {family_split(d.family) for d in self.region_draws.values()}
            return splits.pop() if len(splits) == 1 else "mixed splits"
        return family_split(self.draw.family)


def plan_items(n_faces: int, families: Sequence[str], *, draws: int = 2, seed: int = 0,
               region_mixed: int = 0, limit: int | None = None) -> list[AnalogyItem]:
    """Per family, ``draws`` draws x every ordered pair (A, B), A != B (or a seeded sample of
    ``limit`` of them per family); then ``region_mixed`` items, each a seeded pair with one draw
    per region (regions take different families when there are enough)."""
    from hypernst_cli.styles.families import draw_style

    if n_faces < 2:
        raise UsageError(f"the analogy benchmark needs at least 2 faces, got {n_faces}")
    if draws < 1:
        raise UsageError(f"--draws must be at least 1, got {draws}")
    if limit is not None and limit < 1:
        raise UsageError(f"--limit must be at least 1, got {limit}")
    if region_mixed < 0:
        raise UsageError(f"--region-mixed must be 0 or more, got {region_mixed}")
    if not families:
        raise UsageError("no style families to draw from")
    pairs = [(a, b) for a in range(n_faces) for b in range(n_faces) if a != b]
    items: list[AnalogyItem] = []
    for family in families:
        # item i is draw i // len(pairs) on pair i % len(pairs); only the kept ones are drawn,
        # so a large --draws with a small --limit costs the limit, not draws x pairs
        n_items = draws * len(pairs)
        keep: Sequence[int] = range(n_items)
        if limit is not None and limit < n_items:
            keep = sorted(random.Random(f"{seed}-{family}").sample(range(n_items), limit))
        drawn: dict[int, Any] = {}
        for i in keep:
            d, (a, b) = divmod(i, len(pairs))[0], pairs[i % len(pairs)]
            if d not in drawn:
                drawn[d] = draw_style(family, eval_seed(seed, family, d))
            items.append(AnalogyItem(a, b, draw=drawn[d]))
    rng = random.Random(f"{seed}-{REGION_MIXED}")
    for k in range(region_mixed):
        a, b = pairs[rng.randrange(len(pairs))]
        order = list(families)
        rng.shuffle(order)
        chosen = [order[r % len(order)] for r in range(len(REGION_NAMES))]
        region_draws: dict[int, Any] = {}
        for r, family in enumerate(chosen):
            # a family with few parameters (posterize's levels) can draw the same style twice:
            # redraw so the regions' styles differ, or the own-region test has nothing to tell
            for attempt in range(20):
                d = draw_style(family, eval_seed(seed, REGION_MIXED, k, r, attempt))
                if all((d.family, d.params) != (o.family, o.params) for o in region_draws.values()):
                    break
            region_draws[r] = d
        items.append(AnalogyItem(a, b, region_draws=region_draws))
    return items


def render(image: np.ndarray, mask: np.ndarray, item: AnalogyItem) -> np.ndarray:
    """``image`` rendered with the item's style (per region by ``mask`` for region-mixed)."""
    import torch

    from hypernst_cli.io.tensors import to_tensor, to_uint8
    from hypernst_cli.styles.families import render_style

    m = torch.from_numpy(np.asarray(mask, dtype=np.int64))[None]
    styled = render_style(to_tensor(image, unit=True), m, item.region_draws if item.mixed else item.draw)
    return to_uint8(styled, unit=True)[0]


def floor_render(image: np.ndarray, mask: np.ndarray, item: AnalogyItem,
                 seeds: int = FLOOR_SEEDS) -> np.ndarray:
    """The item's style (same families and parameters) rendered on ``image`` with ``seeds`` other
    texture seeds, merged by the per-pixel median: what a model that knew the draw but not where
    its strokes fall would best output under L1. Deterministic families give the truth itself."""
    import dataclasses

    def reseeded(k: int) -> AnalogyItem:
        if item.mixed:
            return AnalogyItem(0, 0, region_draws={r: dataclasses.replace(d, seed=d.seed + k)
                                                   for r, d in item.region_draws.items()})
        return AnalogyItem(0, 0, draw=dataclasses.replace(item.draw, seed=item.draw.seed + k))

    renders = np.stack([render(image, mask, reseeded(k)) for k in range(1, seeds + 1)])
    return np.median(renders, axis=0).round().astype(np.uint8)


def render_item(item: AnalogyItem, faces: Sequence[AnalogyFace]) -> tuple[np.ndarray, np.ndarray]:
    """(exemplar T(A), truth T(B)) at the faces' resolution."""
    a, b = faces[item.exemplar_face], faces[item.content_face]
    return render(a.image, a.mask, item), render(b.image, b.mask, item)


def describe_draw(draw: Any) -> dict[str, Any]:
    return {"family": draw.family, "seed": draw.seed, "params": draw.params}


# --- the model interface -----------------------------------------------------------------------


class AnalogyModel(Protocol):
    """What the benchmark runs: aligned content + its mask, exemplar + its mask -> output, all
    uint8 at the model's resolution; ``reconstruct`` is the pipeline's strength-0 reference."""

    def stylize(self, content: np.ndarray, content_mask: np.ndarray, exemplar: np.ndarray,
                exemplar_mask: np.ndarray, strength: float = 1.0) -> np.ndarray: ...

    def reconstruct(self, content: np.ndarray, content_mask: np.ndarray) -> np.ndarray: ...


class PipelineAnalogyModel:
    """A loaded ``HyperNSTPipeline`` as an ``AnalogyModel``: the content is fed as already
    aligned (``prepare_aligned``, inverted once per face), the exemplar's region codes come from
    its known mask (``provider.for_image(image, mask=...)``), codes are blended by strength."""

    def __init__(self, pipe: Any) -> None:
        self.pipe = pipe
        self._faces: dict[str, Any] = {}

    def _face(self, content: np.ndarray, mask: np.ndarray) -> Any:
        key = hashlib.sha256(np.ascontiguousarray(content).tobytes()
                             + np.ascontiguousarray(mask).tobytes()).hexdigest()
        if key not in self._faces:
            self._faces[key] = self.pipe.prepare_aligned(content, mask, source=f"face-{key[:8]}")
        return self._faces[key]

    def stylize(self, content: np.ndarray, content_mask: np.ndarray, exemplar: np.ndarray,
                exemplar_mask: np.ndarray, strength: float = 1.0) -> np.ndarray:
        from hypernst_cli.pipeline.style_codes import blend
        from hypernst_cli.io.tensors import to_uint8

        face = self._face(content, content_mask)
        target = self.pipe.provider.for_image(exemplar, mask=exemplar_mask)
        codes = blend(face.own_codes.table, target.table, strength)
        palette = self.pipe.palette_for(target, strength=strength)
        return to_uint8(self.pipe.generate([face], codes, palettes=[palette]).images)[0]

    def reconstruct(self, content: np.ndarray, content_mask: np.ndarray) -> np.ndarray:
        """What the pipeline renders with the content's own codes (``hypernst invert``, and
        ``--strength 0``, which blends all the way back to them)."""
        from hypernst_cli.io.tensors import to_uint8

        face = self._face(content, content_mask)
        return to_uint8(self.pipe.generate([face], face.own_codes.table).images)[0]


# --- the run -----------------------------------------------------------------------------------


@dataclass
class AnalogyReport:
    faces: list[str]
    resolution: int
    strength: float
    seed: int
    rows: list[dict[str, Any]]  # one per item
    summary: dict[str, Any]
    settings: dict[str, Any] = field(default_factory=dict)
    sheet: list[tuple[str, list[np.ndarray]]] = field(default_factory=list, repr=False)
    files: dict[str, Path] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "benchmark": "analogies",
            "faces": self.faces,
            "resolution": self.resolution,
            "strength": self.strength,
            "seed": self.seed,
            "eval_seed_base": EVAL_SEED_BASE,
            "settings": self.settings,
            "summary": self.summary,
            "items": self.rows,
            "files": {k: str(v) for k, v in self.files.items()},
        }


def _scores(output: np.ndarray, truth: np.ndarray) -> tuple[float, float, float]:
    from hypernst_cli.eval.texture import texture_distance

    return l1_grey(output, truth), ssim(output, truth), texture_distance(output, truth)


def run_analogies(
    faces: Sequence[AnalogyFace],
    model: AnalogyModel,
    items: Sequence[AnalogyItem],
    *,
    strength: float = 1.0,
    seed: int = 0,
    sheet_rows: int = SHEET_ROWS,
    log: Callable[[str], None] | None = None,
) -> AnalogyReport:
    """Run ``model`` on every item, score it and the two baselines against the truth, and
    summarise (per family, overall, region-mixed, style sensitivity, the strength-0 check)."""
    from hypernst_cli.eval.colour import colour_transfer, histogram_transfer

    log = log or (lambda _m: None)
    if not items:
        raise UsageError("no analogy items to run")
    rows: list[dict[str, Any]] = []
    outputs: list[np.ndarray] = []
    sheet_candidates: list[tuple[str, list[np.ndarray]]] = []
    for n, item in enumerate(items, 1):
        a, b = faces[item.exemplar_face], faces[item.content_face]
        exemplar, truth = render_item(item, faces)
        log(f"item {n}/{len(items)}: {item.group}: {a.name} -> {b.name}")
        output = model.stylize(b.image.copy(), b.mask.copy(), exemplar, a.mask.copy(), strength)
        output = np.asarray(output, dtype=np.uint8)
        if output.shape != b.image.shape:
            raise UsageError(f"the model's output is {output.shape}, expected {b.image.shape}")
        baseline = colour_transfer(b.image, exemplar)
        candidates = {"model": output, "unstyled": b.image, "colour_transfer": baseline,
                      "histogram_transfer": histogram_transfer(b.image, exemplar)}
        scores = {k: _scores(v, truth) for k, v in candidates.items()}
        floor = floor_render(b.image, b.mask, item)
        row: dict[str, Any] = {
            "kind": REGION_MIXED if item.mixed else "family",
            "group": item.group,
            "split": item.split,
            "exemplar_face": a.name,
            "content_face": b.name,
            "l1": {k: s[0] for k, s in scores.items()},
            "ssim": {k: s[1] for k, s in scores.items()},
            "texture": {k: s[2] for k, s in scores.items()},
            "l1_floor": l1_grey(floor, truth),
        }
        row["model_beats_both"] = bool(row["l1"]["model"] < min(row["l1"]["unstyled"],
                                                                row["l1"]["colour_transfer"]))
        row["model_beats_histogram"] = bool(row["l1"]["model"] < row["l1"]["histogram_transfer"])
        row["model_texture_beats_both"] = bool(
            row["texture"]["model"] < min(row["texture"]["unstyled"], row["texture"]["colour_transfer"]))
        if item.mixed:
            row["draws"] = {REGION_NAMES[r]: describe_draw(d) for r, d in item.region_draws.items()}
            row["region_l1"] = {
                REGION_NAMES[r]: ({k: l1_grey(v, truth, b.mask == r) for k, v in candidates.items()}
                                  if region_pixels_enough(b.mask, r) else None)
                for r in range(len(REGION_NAMES))
            }
            per_region_truths = {r: render(b.image, b.mask, AnalogyItem(0, 0, draw=d))
                                 for r, d in item.region_draws.items()}
            hits = own_region_hits(output, per_region_truths, b.mask)
            row["own_region"] = {REGION_NAMES[r]: h for r, h in hits.items()}
        else:
            row["draw"] = describe_draw(item.draw)
        rows.append(row)
        outputs.append(output)
        label = f"{item.group[:12]} {item.exemplar_face}>{item.content_face}"
        sheet_candidates.append((label, [exemplar, b.image, truth, output, baseline,
                                         candidates["histogram_transfer"]]))

    summary = summarize(rows)
    summary["sensitivity"] = style_sensitivity(items, outputs)
    summary["strength0"] = strength_zero_check(faces, model, items, outputs)
    report = AnalogyReport(
        faces=[f.name for f in faces], resolution=int(faces[0].image.shape[0]),
        strength=strength, seed=seed, rows=rows, summary=summary,
        sheet=_pick_sheet_rows(items, sheet_candidates, sheet_rows),
    )
    return report


def _mean(values: Sequence[float]) -> float | None:
    return float(np.mean(values)) if len(values) else None


def _ratio(num: float | None, den: float | None) -> float | None:
    return None if num is None or not den else num / den


def share_interval(hits: int, n: int, z: float = 1.96) -> tuple[float, float] | None:
    """The Wilson score interval (95 % at ``z`` 1.96) of a share of ``hits`` in ``n``, in percent
    (None for no items). Items that share faces are not independent, so the true spread is wider
    still."""
    if n <= 0:
        return None
    p = hits / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return 100.0 * max(0.0, centre - half), 100.0 * min(1.0, centre + half)


def group_summary(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Means of L1, SSIM and the texture distance per subject, the shares of items the model
    beats both baselines on (by L1; by texture), and model L1 / baseline L1 (ratio of the means;
    below 1 = the model is closer)."""
    out: dict[str, Any] = {"items": len(rows)}
    out["l1"] = {k: _mean([r["l1"][k] for r in rows]) for k in SUBJECTS}
    out["ssim"] = {k: _mean([r["ssim"][k] for r in rows]) for k in SUBJECTS}
    beats = [bool(r["model_beats_both"]) for r in rows]
    out["beats_both_pct"] = _mean([100.0 * b for b in beats])
    out["beats_both_ci95"] = share_interval(sum(beats), len(beats))
    out["beats_histogram_pct"] = _mean([100.0 * r["model_beats_histogram"] for r in rows])
    out["texture"] = {k: _mean([r["texture"][k] for r in rows]) for k in SUBJECTS}
    out["texture_beats_both_pct"] = _mean([100.0 * r["model_texture_beats_both"] for r in rows])
    out["l1_ratio"] = {k: _ratio(out["l1"]["model"], out["l1"][k])
                       for k in ("unstyled", "colour_transfer", "histogram_transfer")}
    out["l1_floor"] = _mean([r["l1_floor"] for r in rows])
    out["floor_ratio_colour_transfer"] = _ratio(out["l1_floor"], out["l1"]["colour_transfer"])
    return out


def summarize(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    family_rows = [r for r in rows if r["kind"] == "family"]
    mixed_rows = [r for r in rows if r["kind"] == REGION_MIXED]
    groups: dict[str, Any] = {}
    for r in family_rows:
        groups.setdefault(r["group"], []).append(r)
    summary: dict[str, Any] = {
        "families": {g: {"split": rs[0]["split"], **group_summary(rs)} for g, rs in groups.items()},
        "overall": group_summary(family_rows) if family_rows else None,
        "region_mixed": None,
    }
    heldout_rows = [r for r in family_rows if r["split"] == HELDOUT_SPLIT]
    # the analogy issue's acceptance is stated on the held-out families together
    summary["heldout"] = group_summary(heldout_rows) if heldout_rows else None
    if mixed_rows:
        mixed = group_summary(mixed_rows)
        mixed["region_l1"] = {
            name: {k: _mean([r["region_l1"][name][k] for r in mixed_rows if r["region_l1"][name]])
                   for k in SUBJECTS}
            for name in REGION_NAMES
        }
        hits = [h for r in mixed_rows for h in r["own_region"].values() if h is not None]
        mixed["own_region_pct"] = _mean([100.0 * h for h in hits])
        mixed["own_region_ci95"] = share_interval(sum(hits), len(hits))
        mixed["own_region_tests"] = len(hits)
        summary["region_mixed"] = mixed
    return summary


def style_sensitivity(items: Sequence[AnalogyItem],
                      outputs: Sequence[np.ndarray]) -> dict[str, Any]:
    """Per content face, the mean L1 between its outputs for exemplars of different families
    (and, for reference, of different draws of one family); then the mean over the faces."""
    per_face: dict[int, dict[str, list[float]]] = {}
    plain = [(it, out) for it, out in zip(items, outputs) if not it.mixed]
    for i, (x, ox) in enumerate(plain):
        for y, oy in plain[i + 1:]:
            if x.content_face != y.content_face:
                continue
            if x.draw.family != y.draw.family:
                key = "across_families"
            elif x.draw.seed != y.draw.seed:
                key = "within_family"
            else:
                continue  # the same draw from another exemplar face
            per_face.setdefault(x.content_face, {}).setdefault(key, []).append(l1_grey(ox, oy))
    out: dict[str, Any] = {}
    for key in ("across_families", "within_family"):
        means = [float(np.mean(v[key])) for v in per_face.values() if v.get(key)]
        out[f"{key}_l1"] = _mean(means)
        out[f"{key}_faces"] = len(means)
    return out


def strength_zero_check(faces: Sequence[AnalogyFace], model: AnalogyModel,
                        items: Sequence[AnalogyItem],
                        outputs: Sequence[np.ndarray]) -> dict[str, Any]:
    """Per content face (with its first item's exemplar): L1 between the ``strength 0`` output and
    the reconstruction (the pipeline defines strength 0 as the content's own codes, so this
    should be 0), L1 of the reconstruction to the face, and of the outputs to the reconstruction
    (how far the style moves the output at all)."""
    reconstruct = getattr(model, "reconstruct", None)
    if reconstruct is None:
        return {"strength0_vs_reconstruction_l1": None, "reconstruction_vs_content_l1": None,
                "output_vs_reconstruction_l1": None, "faces": 0}
    zero, rec_content, moved = [], [], []
    first: dict[int, int] = {}
    for i, it in enumerate(items):
        first.setdefault(it.content_face, i)
    for face_index, i in first.items():
        it, b = items[i], faces[face_index]
        exemplar, _ = render_item(it, faces)
        rec = np.asarray(reconstruct(b.image.copy(), b.mask.copy()), dtype=np.uint8)
        out0 = np.asarray(model.stylize(b.image.copy(), b.mask.copy(), exemplar,
                                        faces[it.exemplar_face].mask.copy(), 0.0), dtype=np.uint8)
        zero.append(l1_grey(out0, rec))
        rec_content.append(l1_grey(rec, b.image))
        moved += [l1_grey(o, rec) for j, o in enumerate(outputs)
                  if items[j].content_face == face_index]
    return {"strength0_vs_reconstruction_l1": _mean(zero),
            "reconstruction_vs_content_l1": _mean(rec_content),
            "output_vs_reconstruction_l1": _mean(moved), "faces": len(first)}


def _pick_sheet_rows(items: Sequence[AnalogyItem], rows: list[tuple[str, list[np.ndarray]]],
                     cap: int) -> list[tuple[str, list[np.ndarray]]]:
    """At most ``cap`` items: every group gets an equal share (spare places go to the groups with
    more items), spread evenly over the group so every draw and face pair can show."""
    by_group: dict[str, list[int]] = {}
    for i, it in enumerate(items):
        by_group.setdefault(it.group, []).append(i)
    share = {g: 0 for g in by_group}
    left = min(cap, len(rows))
    while left:
        open_groups = [g for g in by_group if share[g] < len(by_group[g])]
        for g in sorted(open_groups, key=lambda g: -len(by_group[g]))[:left]:
            share[g] += 1
            left -= 1
    chosen: list[int] = []
    for g, members in by_group.items():
        k = share[g]
        if k:
            chosen += [members[round(j * (len(members) - 1) / max(1, k - 1))] for j in range(k)]
    return [rows[i] for i in sorted(set(chosen))]


# --- the report --------------------------------------------------------------------------------


def _f(value: float | None, fmt: str = "{:.2f}") -> str:
    return "n/a" if value is None else fmt.format(value)


def _table_row(label: str, split: str, s: dict[str, Any]) -> str:
    l1, ss, ratio = s["l1"], s["ssim"], s["l1_ratio"]
    cells = [label, split, str(s["items"])]
    cells += [_f(l1[k]) for k in SUBJECTS] + [_f(ss[k], "{:.3f}") for k in SUBJECTS]
    cells += [_f(s["beats_both_pct"], "{:.0f}%"), _f(ratio["unstyled"], "{:.3f}"),
              _f(ratio["colour_transfer"], "{:.3f}")]
    cells += [_f(s["l1_floor"]), _f(s["floor_ratio_colour_transfer"], "{:.3f}")]
    cells += [_f(s["beats_histogram_pct"], "{:.0f}%"), _f(ratio["histogram_transfer"], "{:.3f}")]
    return "| " + " | ".join(cells) + " |"


def _texture_row(label: str, s: dict[str, Any]) -> str:
    cells = [label, str(s["items"])] + [_f(s["texture"][k]) for k in SUBJECTS]
    cells.append(_f(s["texture_beats_both_pct"], "{:.0f}%"))
    return "| " + " | ".join(cells) + " |"


def _texture_table(s: dict[str, Any]) -> list[str]:
    lines = ["", "## Texture", "",
             "Patch sliced Wasserstein distance to the truth (eval/texture.py: the distributions "
             "of mean-free 5 x 5 patches at two scales, grey levels, lower is closer): it does "
             "not care where a stroke or dot falls, only whether the output has the truth's "
             "kind of strokes and dots. L1 prefers a flat output to a texture out of phase; this "
             "does not.", "",
             "| Style | Items | " + " | ".join(f"Texture {SUBJECT_SHORT[k]}" for k in SUBJECTS)
             + " | Model closer than unstyled and colour tr. |",
             "|---|---:|" + "---:|" * (len(SUBJECTS) + 1)]
    lines += [_texture_row(family, fs) for family, fs in s["families"].items()]
    if s["overall"]:
        lines.append(_texture_row("**all families**", s["overall"]))
    if s["region_mixed"]:
        lines.append(_texture_row(REGION_MIXED, s["region_mixed"]))
    return lines


def _interval(ci: Sequence[float] | None) -> str:
    return "n/a" if ci is None else f"{ci[0]:.0f}-{ci[1]:.0f}%"


def _share_intervals(s: dict[str, Any]) -> list[str]:
    """How sure the "model beats both" shares are: their 95 % intervals (Wilson)."""
    rows = [(label, s.get(key)) for label, key in (("held-out families", "heldout"),
                                                    ("all families", "overall"),
                                                    (REGION_MIXED, "region_mixed"))]
    cells = [f"{label} {_f(g['beats_both_pct'], '{:.0f}%')} of {g['items']} "
             f"({_interval(g['beats_both_ci95'])})" for label, g in rows if g]
    if not cells:
        return []
    return ["", "Model beats both, with 95 % intervals (Wilson; items share faces and draws, so "
                "the true spread is wider): " + "; ".join(cells) + "."]


def markdown(report: AnalogyReport) -> str:
    """The tables people read: per family, overall, region-mixed, sensitivity, strength 0."""
    s = report.summary
    head = ("| Style | Split | Items | "
            + " | ".join(f"L1 {SUBJECT_SHORT[k]}" for k in SUBJECTS) + " | "
            + " | ".join(f"SSIM {SUBJECT_SHORT[k]}" for k in SUBJECTS)
            + " | Model beats both | L1 model/unstyled | L1 model/colour tr. | L1 floor | "
            "floor/colour tr. | Model beats hist. tr. | L1 model/hist. tr. |")
    lines = [
        "# Analogy benchmark",
        "",
        f"{len(report.faces)} faces ({', '.join(report.faces)}) at {report.resolution} px; "
        f"strength {report.strength:g}; seed {report.seed}; draw seeds >= {EVAL_SEED_BASE}.",
        "",
        *([f"Settings: {settings_text(report.settings)}.", ""] if report.settings else []),
        "Exemplar T(A), content B, truth T(B), all at the model's resolution (faces resized to "
        "it, draws rendered at it; region masks from the face parser on the files as given). "
        "L1 in grey levels (0-255, lower is better), "
        "SSIM (Gaussian window, 1 is identical) against the truth, for the model's output, the "
        "unstyled face B and B with the exemplar's Lab mean and std (colour transfer). Model "
        "beats both: share of items whose model L1 is below both baselines'. Histogram "
        "transfer: B histogram-matched to the exemplar in Lab, i.e. the palette post-process "
        "without the model; the last two columns say how much the model adds to it. L1 floor: the "
        "truth's own family and parameters with other texture seeds (per-pixel median of "
        f"{FLOOR_SEEDS}), i.e. the L1 left when only the strokes' random placement is unknown; "
        "no model that sees just the exemplar can be expected below it (0 for families "
        "without random texture).",
        "",
        head,
        "|---|---|" + "---:|" * (head.count("|") - 3),
    ]
    for family, fs in s["families"].items():
        lines.append(_table_row(family, fs["split"], fs))
    if s.get("heldout"):
        lines.append(_table_row("**held-out families**", HELDOUT_SPLIT, s["heldout"]))
    if s["overall"]:
        lines.append(_table_row("**all families**", "", s["overall"]))
    mixed = s["region_mixed"]
    if mixed:
        lines.append(_table_row(REGION_MIXED, "one draw per region", mixed))
    lines += _share_intervals(s)
    lines += _texture_table(s)
    if mixed:
        lines += ["", "## Region-mixed items", "",
                  "| Region | " + " | ".join(f"L1 {SUBJECT_SHORT[k]}" for k in SUBJECTS) + " |",
                  "|---|" + "---:|" * len(SUBJECTS)]
        for name, v in mixed["region_l1"].items():
            lines.append(f"| {name} | " + " | ".join(_f(v[k]) for k in SUBJECTS) + " |")
        lines += ["", f"Own-region test: the output's error in a region is lowest against that "
                      f"region's own style in {_f(mixed['own_region_pct'], '{:.0f}%')} of "
                      f"{mixed['own_region_tests']} (item, region) tests "
                      f"(95 % interval {_interval(mixed['own_region_ci95'])})."]
    sens, zero = s["sensitivity"], s["strength0"]
    lines += [
        "", "## Style sensitivity", "",
        f"- Mean L1 between one content's outputs for exemplars of different families: "
        f"{_f(sens['across_families_l1'])} grey levels (over {sens['across_families_faces']} "
        f"faces; the target is >= 20); for different draws of one family: "
        f"{_f(sens['within_family_l1'])}.",
        f"- Strength 0 vs the reconstruction (content's own codes; should be 0): "
        f"{_f(zero['strength0_vs_reconstruction_l1'])}. Reconstruction vs the face: "
        f"{_f(zero['reconstruction_vs_content_l1'])}. Outputs vs the reconstruction: "
        f"{_f(zero['output_vs_reconstruction_l1'])}.",
    ]
    if report.files:
        lines += ["", "## Files", ""]
        lines += [f"- `{p.name}`" for p in report.files.values()]
    return "\n".join(lines) + "\n"


def write_analogy_report(report: AnalogyReport, out_dir: Path | str, *,
                         cell: int | None = None) -> dict[str, Path]:
    """analogies.json, analogies.md and analogies_contact.png in ``out_dir``, each atomically."""
    from hypernst_cli.io import atomic_write_text, save_image
    from hypernst_cli.io.contact_sheet import contact_sheet

    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"{out_dir}: not a folder", hint="give a folder for the report with -o")
    files = {"json": out_dir / "analogies.json", "markdown": out_dir / "analogies.md"}
    if report.sheet:
        files["contact sheet"] = out_dir / "analogies_contact.png"
    report.files = files
    if report.sheet:
        sheet = contact_sheet([r for _, r in report.sheet],
                              cell=cell or max(96, report.resolution),
                              row_labels=[label for label, _ in report.sheet],
                              col_labels=["exemplar T(A)", "content B", "truth T(B)", "output",
                                          "colour tr.", "hist. tr."])
        save_image(sheet, files["contact sheet"])
    atomic_write_text(files["json"], json.dumps(report.to_dict(), indent=2, sort_keys=True,
                                                default=_json_default) + "\n")
    atomic_write_text(files["markdown"], markdown(report))
    return files


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (tuple, set)):
        return list(value)
    return str(value)


def evaluate_analogies(
    face_paths: Sequence[Path],
    model: AnalogyModel,
    *,
    resolution: int,
    parse: Callable[..., np.ndarray],
    out_dir: Path | str,
    families: Sequence[str] | None = None,
    draws: int = 2,
    seed: int = 0,
    region_mixed: int = 0,
    limit: int | None = None,
    strength: float = 1.0,
    settings: dict[str, Any] | None = None,
    log: Callable[[str], None] | None = None,
) -> AnalogyReport:
    """The whole benchmark: check the options, load and parse the faces, plan the items, run,
    and write the report files to ``out_dir``."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():  # fail before the long part
        raise UsageError(f"{out_dir}: not a folder", hint="give a folder for the report with -o")
    if not 0.0 <= strength <= 1.0:
        raise UsageError(f"--strength must be between 0 and 1, got {strength}")
    chosen = resolve_families(families)
    # the options, checked before the faces load (one draw: the checks do not depend on it)
    plan_items(2, chosen, draws=1, seed=seed, region_mixed=0, limit=limit)
    if draws < 1:
        raise UsageError(f"--draws must be at least 1, got {draws}")
    if region_mixed < 0:
        raise UsageError(f"--region-mixed must be 0 or more, got {region_mixed}")
    faces = load_faces(face_paths, resolution, parse)
    items = plan_items(len(faces), chosen, draws=draws, seed=seed, region_mixed=region_mixed,
                       limit=limit)
    report = run_analogies(faces, model, items, strength=strength, seed=seed, log=log)
    report.settings = {"families": chosen, "draws": draws, "region_mixed": region_mixed,
                       "limit": limit, **(settings or {})}
    write_analogy_report(report, out_dir)
    return report
