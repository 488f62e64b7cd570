"""Analogy supervision for stage 2 (not in the paper): paired targets from procedural styles.

The paper's stage 2 has no target for what a stylized face should look like; its discriminators
learn one from real art over a long GPU budget. On a CPU budget the hyper-network learns a colour
wash instead. An *image analogy* gives a direct target: for content faces A != B of the content
set and a style draw T (``hypernst_cli.styles.families``), the exemplar is T(A) and the target is
T(B). The hyper-network sees B with the region codes of T(A) (ALADIN patch averages on A's mask,
paper Eq. 1, the model's own code path) arranged on B's mask, and its output is compared with
T(B) pixel for pixel.

A *region-mixed* item draws one style per region (background, face, hair): the exemplar composes
the three renders of A through A's mask and the target those of B through B's mask, so the region
codes have to steer their own regions.

Every random choice of a step (which faces are the exemplars, the draws) comes from a generator
seeded by (seed, step, rank), so a resumed run sees the same items. Draw seeds stay below
EVAL_SEED_BASE (``random_draw``), under the benchmark's evaluation seeds; held-out families are refused.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from hypernst_cli.errors import UsageError
from hypernst_cli.pipeline.style_codes import N_REGIONS
from hypernst_cli.styles.families import (
    FAMILIES,
    HELDOUT_FAMILIES,
    TRAIN_FAMILIES,
    StyleDraw,
    random_draw,
    render_style,
)
from hypernst_cli.io.tensors import to_uint8
from hypernst_cli.train.data import make_batch

if TYPE_CHECKING:
    from hypernst_cli.pipeline.code_cache import StyleCodeProvider

#: per item: the draw of each region (the same draw in every region unless region-mixed)
RegionDraws = dict[int, StyleDraw]


def training_families(names: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """The families a training stage may draw: ``names`` (empty: every training family).
    Unknown names and held-out families are refused: the benchmark measures those unseen."""
    if not names:
        return TRAIN_FAMILIES
    unknown = [n for n in names if n not in FAMILIES]
    if unknown:
        raise UsageError(f"unknown style famil{'y' if len(unknown) == 1 else 'ies'} {unknown}",
                         hint=f"known: {', '.join(FAMILIES)}")
    held = [n for n in names if n in HELDOUT_FAMILIES]
    if held:
        raise UsageError(f"style families {held} are held out for evaluation and never trained on",
                         hint=f"training families: {', '.join(TRAIN_FAMILIES)}")
    return tuple(dict.fromkeys(names))


def family_weights(spec: str, families: tuple[str, ...]) -> tuple[float, ...] | None:
    """Draw weights for ``families`` from "name=w,name=w" (unlisted families weigh 1, 0 never
    drawn); None for an empty spec (uniform)."""
    if not spec.strip():
        return None
    given: dict[str, float] = {}
    for part in spec.split(","):
        name, sep, value = part.strip().partition("=")
        try:
            weight = float(value) if sep else float("nan")
        except ValueError:
            weight = float("nan")
        if not weight >= 0:  # also catches nan
            raise UsageError(f"analogy.family_weights: '{part.strip()}' is not NAME=WEIGHT with "
                             "a weight >= 0", hint='e.g. "posterize=3,cartoon=2"')
        if name not in families:
            raise UsageError(f"analogy.family_weights names '{name}', which is not drawn here",
                             hint=f"families drawn: {', '.join(families)}")
        given[name] = weight
    weights = tuple(given.get(name, 1.0) for name in families)
    if not any(weights):
        raise UsageError("analogy.family_weights leaves no family to draw (every weight is 0)")
    return weights


def step_generator(seed: int, step: int, rank: int, salt: int) -> torch.Generator:
    """The generator of one step's draws; ``salt`` keeps streams of different uses apart."""
    return torch.Generator().manual_seed(seed * 1_000_003 + step * 7_919 + rank * 104_729 + salt)


def partner_indices(gen: torch.Generator, own: list[int], n: int) -> list[int]:
    """For each index of ``own``, another index of range(n), uniform among the n - 1 others."""
    if n < 2:
        raise UsageError("analogy items and family positives need at least 2 content images")
    out = []
    for i in own:
        j = int(torch.randint(0, n - 1, (1,), generator=gen))
        out.append(j + 1 if j >= i else j)
    return out


def draw_item_styles(gen: torch.Generator, families: tuple[str, ...], region_mixed: float,
                     weights: tuple[float, ...] | None = None) -> RegionDraws:
    """One item's draws: a single draw for every region, or (with probability ``region_mixed``)
    an independent draw per region; families in proportion to ``weights`` (None: uniform)."""
    mixed = float(torch.rand(1, generator=gen)) < region_mixed
    if mixed:
        return {r: random_draw(gen, families, weights) for r in range(N_REGIONS)}
    draw = random_draw(gen, families, weights)
    return {r: draw for r in range(N_REGIONS)}


def render_item(image: torch.Tensor, mask: torch.Tensor, draws: RegionDraws) -> torch.Tensor:
    """T(x) for one image [3, H, W] in [-1, 1] with its mask [H, W]: one draw renders the whole
    image; per-region draws are composed through the mask. Returns [3, H, W] in [-1, 1].
    Rendered on the CPU, where the draws' seeded texture generators live."""
    out = render_style((image[None].float().cpu() + 1) / 2, mask[None].cpu(), draws)
    return (out[0] * 2 - 1).to(image.device, image.dtype)


def threaded_map(fn: Callable[[Any], Any], items: list[Any]) -> list[Any]:
    """``[fn(x) for x in items]`` on a few CPU threads (torch and OpenCV release the GIL): on a
    GPU a step's renders, crops and palettes are most of its time otherwise. ``fn`` must draw
    from nothing shared, so the results do not depend on the order."""
    workers = min(len(items), max(1, torch.get_num_threads() // 2), 8)
    if workers <= 1:
        return [fn(x) for x in items]
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(fn, items))


def render_items(jobs: list[tuple[torch.Tensor, torch.Tensor, RegionDraws]]) -> list[torch.Tensor]:
    """``render_item`` of every (image, mask, draws); each draw has its own seeded generator."""
    return threaded_map(lambda job: render_item(*job), jobs)


@dataclass
class AnalogyBatch:
    """n analogy items: content B (given), exemplar T(A) with A's mask and codes, target T(B)."""

    exemplar: torch.Tensor  # T(A) [n, 3, H, W] in [-1, 1]
    exemplar_mask: torch.Tensor  # A's masks [n, H, W]
    exemplar_codes: torch.Tensor  # [n, N_REGIONS + 1, D]: code tables of T(A) on A's mask
    target: torch.Tensor  # T(B) [n, 3, H, W] in [-1, 1]
    exemplar_index: list[int]  # A's index in the content set
    draws: list[RegionDraws]
    #: T(A)'s palette tables [n, N_REGIONS + 1, QUANTILES, 3] and ink tables
    #: [n, N_REGIONS + 1, INKS, 3] (on A's mask), as the tool computes them for a style image
    palette: torch.Tensor | None = None
    inks: torch.Tensor | None = None

    def to(self, device: torch.device) -> AnalogyBatch:
        """The same items with their tensors on ``device``."""
        return dataclasses.replace(
            self, exemplar=self.exemplar.to(device), exemplar_mask=self.exemplar_mask.to(device),
            exemplar_codes=self.exemplar_codes.to(device), target=self.target.to(device),
            palette=None if self.palette is None else self.palette.to(device),
            inks=None if self.inks is None else self.inks.to(device))


def exemplar_codes(provider: StyleCodeProvider, exemplars: torch.Tensor,
                   masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Code tables [n, N_REGIONS + 1, D] (region codes, global code), palette tables
    [n, N_REGIONS + 1, QUANTILES, 3] and ink tables [n, N_REGIONS + 1, INKS, 3] of rendered
    exemplars [n, 3, H, W] in [-1, 1] on their known masks [n, H, W]: the provider's own path
    for an image file (so the palette is the one the tool would use), not cached (every
    rendered draw is new)."""
    images = to_uint8(exemplars)
    labels = masks.cpu().numpy().astype(np.uint8)
    codes = threaded_map(lambda job: provider.for_image(job[0], mask=job[1]),
                         list(zip(images, labels)))
    return (torch.stack([c.table.float() for c in codes]),
            torch.stack([c.palette.float() for c in codes]),
            torch.stack([c.inks.float() for c in codes]))


class AnalogySource:
    """Draws a step's analogy items from the content set (``[analogy]`` of the stylize config)."""

    def __init__(self, cfg: dict[str, Any], content: Any, provider: StyleCodeProvider,
                 seed: int) -> None:
        self.share = float(cfg["share"])
        self.region_mixed = float(cfg["region_mixed"])
        if not 0 <= self.share <= 1 or not 0 <= self.region_mixed <= 1:
            raise UsageError("analogy.share and analogy.region_mixed must lie in [0, 1]")
        self.families = training_families(list(cfg["families"]))
        self.family_weights = family_weights(str(cfg["family_weights"]), self.families)
        self.weights = {k: float(cfg[k]) for k in ("l1", "laplacian", "lpips", "lowpass", "texture")}
        self.through_palette = bool(cfg["through_palette"])
        self.prefetch = bool(cfg["prefetch"])
        self.content, self.provider, self.seed = content, provider, seed
        self._ahead: tuple[tuple[int, int, tuple[int, ...]], Future[AnalogyBatch]] | None = None
        self._pool: ThreadPoolExecutor | None = None
        if self.share > 0 and len(content) < 2:
            raise UsageError("analogy.share > 0 needs at least 2 content images (A != B)")

    def count(self, batch_size: int) -> int:
        """Analogy items per batch: ``share`` of it, at least one when the share is not 0."""
        if self.share <= 0:
            return 0
        return min(batch_size, max(1, int(round(self.share * batch_size))))

    def draw_ahead(self, step: int, rank: int, content: torch.Tensor, masks: torch.Tensor,
                   indices: list[int]) -> None:
        """Start drawing ``step``'s items on a background thread (``take`` collects them), so
        the CPU renders the next step's items while the device trains on this step's."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="analogy-items")
        key = (step, rank, tuple(indices))
        self._ahead = (key, self._pool.submit(self.draw, step, rank, content.cpu(), masks.cpu(),
                                              indices))

    def take(self, step: int, rank: int, content: torch.Tensor, masks: torch.Tensor,
             indices: list[int]) -> AnalogyBatch:
        """``draw(step, ...)`` on ``content``'s device: the items drawn ahead when they are this
        step's (the same items, drawn earlier), else drawn now."""
        ahead, self._ahead = self._ahead, None
        if ahead is not None and ahead[0] == (step, rank, tuple(indices)):
            items = ahead[1].result()
        else:
            items = self.draw(step, rank, content, masks, indices)
        return items.to(content.device)

    def draw(self, step: int, rank: int, content: torch.Tensor, masks: torch.Tensor,
             indices: list[int]) -> AnalogyBatch:
        """Items for contents B (``content`` [n, 3, H, W] in [-1, 1], their masks and indices in
        the content set): each gets an exemplar face A != B and its own draws, fixed by
        (seed, step, rank). Tensors on ``content``'s device."""
        gen = step_generator(self.seed, step, rank, salt=17)
        partners = partner_indices(gen, indices, len(self.content))
        draws = [draw_item_styles(gen, self.families, self.region_mixed, self.family_weights)
                 for _ in indices]
        a = make_batch(self.content, partners)
        a_images, a_masks = a["image"], a["mask"]
        # exemplars T(A) then targets T(B), rendered together
        renders = render_items([*zip(a_images, a_masks, draws), *zip(content, masks, draws)])
        exemplar, target = torch.stack(renders[:len(draws)]), torch.stack(renders[len(draws):])
        codes, palettes, inks = exemplar_codes(self.provider, exemplar, a_masks)
        through = self.through_palette
        return AnalogyBatch(exemplar, a_masks, codes, target, partners, draws,
                            palettes if through else None,
                            inks if through else None).to(content.device)
