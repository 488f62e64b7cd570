"""Stage ``aladin``: the ALADIN-ViT style encoder, trained contrastively (self-supervised).

The official ALADIN is trained for style similarity with weak style labels (BAM-FG); none are
available offline, so we approximate it with SimCLR-style self-supervision:

- positives: two random crops (area ``crop_scale``, flips, NO colour jitter: colour is style) of
  the same image; negatives: every other image of the batch (NT-Xent, ``temperature``);
- each batch mixes art portraits (the style split, ``style_fraction`` of it) and photos (content
  split); a ``pseudo_style`` fraction of the photos first gets a random style transform drawn
  once per instance and shared by its two views (see ``train.pseudo_styles``), which covers many
  more styles than the few art portraits;
- a ``family_positives`` share of the photos (0: off) form cross-face positives instead: view A
  is cut from the photo rendered with a procedural style draw (``hypernst_cli.styles.families``),
  view B from ANOTHER content face rendered with the same draw, so a code that matches the two
  has to carry the style and not the face (what analogy supervision in stage 2 relies on).

``init`` is optional: its ALADIN is fine-tuned when it has one, and its other networks are
carried into the export. All view randomness is drawn from a generator seeded by (seed, step,
rank), so ``--resume`` reproduces an uninterrupted run. AdamW with a linear warm-up then a cosine
decay to 10 % of ``lr``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from hypernst_cli.errors import UsageError
from hypernst_cli.styles.families import TRAIN_FAMILIES, StyleDraw, random_draw
from hypernst_cli.train.analogy import partner_indices
from hypernst_cli.train.common import ModelStage, sample_sheet
from hypernst_cli.train.pseudo_styles import make_views, nt_xent


def lr_factor(step: int, total: int, warmup: int) -> float:
    """Linear warm-up over ``warmup`` steps, then a cosine from 1 down to 0.1 at ``total``."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    span = max(1, total - warmup)
    progress = min(1.0, max(0.0, (step - warmup) / span))
    return 0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * progress))


@dataclass(frozen=True)
class FamilyPair:
    """A cross-face positive: batch ``row``'s photo (content index ``face``) and content image
    ``partner`` (another face), both rendered with ``draw``."""

    row: int
    face: int
    partner: int
    draw: StyleDraw


@dataclass
class ContrastiveViews:
    """One step's views: a[i] and b[i] are positives; which rows were pseudo-styled, and the
    cross-face family pairs among them."""

    a: torch.Tensor
    b: torch.Tensor
    pseudo_styled: torch.Tensor
    family_pairs: list[FamilyPair] = field(default_factory=list)


@dataclass
class AladinStage(ModelStage):
    SAMPLERS = {"content": "content_sampler", "style": "style_sampler"}

    def setup(self) -> None:
        cfg = self.cfg
        lo, hi = (float(v) for v in cfg["crop_scale"])
        if not 0 < lo <= hi <= 1:
            raise UsageError(f"crop_scale must be [low, high] within (0, 1], got {cfg['crop_scale']}")
        if not all(0 <= float(cfg[k]) <= 1 for k in ("style_fraction", "pseudo_style",
                                                      "family_positives")):
            raise UsageError("style_fraction, pseudo_style and family_positives must lie in [0, 1]")
        if float(cfg["temperature"]) <= 0:
            raise UsageError(f"temperature must be > 0, got {cfg['temperature']}")
        self.scale = (lo, hi)
        self.A = self.network("aladin").train()
        self.origin["aladin"] = "trained"
        self.A_train = self.ctx.wrap(self.A)
        self.networks = {"aladin": self.A}
        self.modules = {"aladin": self.A}
        self.optimizers = {"aladin": torch.optim.AdamW(
            self.A.parameters(), lr=float(cfg["lr"]), betas=(0.9, 0.999),
            weight_decay=float(cfg["weight_decay"]))}
        self.content, self.style = self.image_set("content"), self.image_set("style")
        self.content_sampler = self.make_sampler(len(self.content))
        self.style_sampler = self.make_sampler(len(self.style), salt=1)
        batch = int(cfg["batch_size"])
        self.n_style = min(batch, int(round(batch * float(cfg["style_fraction"]))))
        self.n_content = batch - self.n_style
        if batch < 2:
            raise UsageError("the aladin stage needs batch_size >= 2 (the other images of the "
                             "batch are the negatives)")
        self.family_share = float(cfg["family_positives"])
        if self.family_share > 0 and len(self.content) < 2:
            raise UsageError("family_positives > 0 needs at least 2 content images (two faces "
                             "per positive pair)")

    def step_generator(self, step: int) -> torch.Generator:
        return torch.Generator().manual_seed(int(self.cfg["seed"]) * 1_000_003 + step * 7919 + self.ctx.rank)

    def draw(self, step: int) -> ContrastiveViews:
        """The positive views of one step (photos first, then art portraits)."""
        from hypernst_cli.train.data import make_batch

        gen = self.step_generator(step)
        parts, styled, content_idx = [], [], []
        if self.n_content:
            content_idx = self.content_sampler.next_batch(self.n_content)
            parts.append(make_batch(self.content, content_idx)["image"])
            styled.append(torch.rand(self.n_content, generator=gen) < float(self.cfg["pseudo_style"]))
        if self.n_style:
            idx = self.style_sampler.next_batch(self.n_style)
            parts.append(make_batch(self.style, idx)["image"])
            styled.append(torch.zeros(self.n_style, dtype=torch.bool))
        images = (torch.cat(parts) + 1) / 2  # [0, 1], on the CPU: views are cut there
        flags = torch.cat(styled)
        second: dict[int, torch.Tensor] = {}
        pairs: list[FamilyPair] = []
        if self.family_share > 0 and content_idx:  # no draw from gen when off: today's stream
            images, second, pairs = self.family_pairs(images, content_idx, gen)
            for pair in pairs:
                flags[pair.row] = False  # the family draw is this row's style
        a, b = make_views(images, flags, self.A.cfg.image_size, self.scale, gen, second)
        return ContrastiveViews(a.to(self.device), b.to(self.device), flags, pairs)

    def family_pairs(self, images: torch.Tensor, content_idx: list[int], gen: torch.Generator
                     ) -> tuple[torch.Tensor, dict[int, torch.Tensor], list[FamilyPair]]:
        """Turn a ``family_positives`` share of the photo rows into cross-face positives: the
        row's photo and another content face, each rendered with one training-family draw.
        Returns (images with those rows rendered, {row: the partner's render}, the pairs)."""
        from hypernst_cli.train.data import make_batch

        chosen = torch.nonzero(torch.rand(len(content_idx), generator=gen) < self.family_share)
        rows = chosen.flatten().tolist()
        if not rows:
            return images, {}, []
        partners = partner_indices(gen, [content_idx[r] for r in rows], len(self.content))
        partner_images = (make_batch(self.content, partners)["image"] + 1) / 2
        images = images.clone()
        second, pairs = {}, []
        for row, partner, partner_image in zip(rows, partners, partner_images):
            draw = random_draw(gen, TRAIN_FAMILIES)
            images[row] = draw.render(images[row : row + 1])[0]
            second[row] = draw.render(partner_image[None])[0]
            pairs.append(FamilyPair(row, content_idx[row], partner, draw))
        return images, second, pairs

    def train_step(self, step: int) -> dict[str, float]:
        views = self.draw(step)
        a, b, flags = views.a, views.b, views.pseudo_styled
        opt = self.optimizers["aladin"]
        for group in opt.param_groups:
            group["lr"] = float(self.cfg["lr"]) * lr_factor(step, int(self.cfg["steps"]),
                                                           int(self.cfg["warmup"]))
        with self.ctx.autocast():
            codes = self.A_train(self.A.preprocess(torch.cat([a, b])))
        n = a.shape[0]
        if self.ctx.distributed:  # negatives from every rank's batch
            codes = _gather_with_grad(codes.float())
            n = codes.shape[0] // 2
            codes = _interleave_halves(codes, self.ctx.world)
        loss, stats = nt_xent(codes[:n], codes[n:], float(self.cfg["temperature"]))
        opt.zero_grad(set_to_none=True)
        self.ctx.backward(loss)
        if float(self.cfg["grad_clip"]) > 0:
            if self.ctx.scaler is not None:
                self.ctx.scaler.unscale_(opt)
            torch.nn.utils.clip_grad_norm_(self.A.parameters(), float(self.cfg["grad_clip"]))
        self.ctx.step(opt)
        if self.ctx.scaler is not None:
            self.ctx.scaler.update()
        return {"loss": float(loss.detach()), "lr": opt.param_groups[0]["lr"],
                "pseudo_styled": float(flags.float().mean()),
                **({"family_pairs": len(views.family_pairs) / a.shape[0]}
                   if self.family_share > 0 else {}),
                **{k: float(v) for k, v in stats.items()}}

    @torch.no_grad()
    def sample_grid(self) -> np.ndarray:
        """Two views of a fixed draw (pseudo-styled photos and art portraits)."""
        with torch.random.fork_rng(devices=[]):
            saved = (self.content_sampler.position, self.style_sampler.position)
            views = self.draw(0)
            self.content_sampler.position, self.style_sampler.position = saved
        return sample_sheet({"view A": views.a[:8] * 2 - 1, "view B": views.b[:8] * 2 - 1},
                            columns=8)


def _gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """All ranks' rows, this rank's keeping their gradient."""
    parts = [torch.zeros_like(x) for _ in range(torch.distributed.get_world_size())]
    torch.distributed.all_gather(parts, x.detach())
    parts[torch.distributed.get_rank()] = x
    return torch.cat(parts)


def _interleave_halves(codes: torch.Tensor, world: int) -> torch.Tensor:
    """Per-rank [A_r; B_r] blocks -> [A_0..A_w; B_0..B_w] (A[i] and B[i] stay positives)."""
    blocks = codes.chunk(world)
    return torch.cat([blk.chunk(2)[0] for blk in blocks] + [blk.chunk(2)[1] for blk in blocks])
