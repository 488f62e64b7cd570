"""Stages ``reconstruct`` (stage 1) and ``stylize`` (stage 2): the HyperNST hyper-network.

Both start from ``init``: a model folder holding the generator, e4e and ALADIN (all frozen here)
and, for stage 2, the stage-1 hyper-network. Each image is conditioned on region-averaged ALADIN
codes arranged on the content image's mask (paper Eq. 1); codes are computed once per image with
the prepared masks and cached under DATA/codes.

Refinement follows HyperStyle's training loop: ``iterations`` passes per batch, each predicting
offsets from (content, previous output), each with its own loss and backward (the previous output
and the accumulated offsets enter the next pass detached); one optimizer step per batch.

Stage 1 (paper 3.4): every image reconstructs itself with its own codes, all layers incl. toRGB.

Stage 2 (paper 3.3-3.5): ``hypernet.freeze_for_stylization()`` (content encoder, E_mask and the
heads below ``start_layer`` frozen). Per batch, content images c and style images s:
  (B) reconstruction: y(c, c) with c's own codes, L_rec = l2 * MSE + lpips * LPIPS;
  (A) stylization: y(c, s) with s's codes arranged on c's mask, judged by the image discriminator
      (y(c, s) fake, s real) and by the patch co-occurrence discriminator region by region
      (patches of y(c, s) in region r against patches of s in region r; a region missing on
      either side is skipped);
  L = rec * L_rec + style * (L_disc + L_pcd) with non-saturating -log D terms; the
  discriminators are trained with y(c, s) as fake, s as real, and R1 on reals.
  With ``analogy.share`` > 0 (not in the paper, see ``train.analogy``) the first items of the
  batch are analogy items instead: content B with the codes of an exemplar T(A), its output
  compared with the target T(B) (L1 + Laplacian L1 + LPIPS, optionally L1 at a quarter of the
  resolution and the patch texture distance of eval/texture.py); the unpaired terms act on the rest.
"""

from __future__ import annotations

import copy
import dataclasses
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch
from torch.nn import functional as F

from hypernst_cli.eval.texture import patch_swd
from hypernst_cli.models.hypernet import RefineResult, refine
from hypernst_cli.models.patches import crop_patches, region_boxes
from hypernst_cli.pipeline.core import Latent, condition, encode, render
from hypernst_cli.pipeline.code_cache import style_code_provider
from hypernst_cli.pipeline.style_codes import N_REGIONS
from hypernst_cli.train.analogy import AnalogyBatch, AnalogySource
from hypernst_cli.train.common import (
    ImageUnion,
    ModelStage,
    PreparedMasks,
    code_tables,
    sample_sheet,
)
from hypernst_cli.train.discriminator import (
    DiscriminatorTerm,
    LazyR1,
    discriminator_optimizer,
    discriminator_step,
)
from hypernst_cli.train.losses import (
    g_nonsaturating,
    l1_laplacian_loss,
    reconstruction_loss,
    region_colour_loss,
    structure_loss,
)
from hypernst_cli.train.style_variants import StyleVariants

#: the texture term compares at most this many 5x5 windows an octave (a 128 px image has 15,376):
#: at 256 px a sample of them, at the cost of 128 px (eval/texture.py ``max_patches``)
TEXTURE_PATCHES = 16384


@dataclass
class HyperStage(ModelStage):
    """The frozen networks, the codes and the refinement loop both stages share."""

    def setup_frozen(self) -> None:
        # the exported model records the refinement passes it was trained with: inference's
        # default number of iterations (HyperNSTPipeline)
        assert self.model_cfg is not None
        self.model_cfg = self.model_cfg.replace(hypernet=dataclasses.replace(
            self.model_cfg.hypernet, iterations=int(self.cfg["iterations"])))
        self.G = self.frozen(self.network("generator", required=True))
        self.E = self.frozen(self.network("encoder", required=True))
        self.aladin = self.frozen(self.network("aladin", required=True))
        self.H = self.network("hypernet")
        self.networks = {"generator": self.G, "encoder": self.E, "aladin": self.aladin,
                         "hypernet": self.H}
        self.origin["hypernet"] = "trained"
        self.sets = {split: self.image_set(split) for split in self.splits()}
        samples = [s for d in self.sets.values() for s in d.samples]
        # codes cached under DATA/codes, where `hypernst prepare` put them
        self.code_provider = style_code_provider(self.aladin, self.model_cfg, PreparedMasks(samples),
                                                 cache_dir=self.data_dir(), device=self.device)
        self.codes = {split: code_tables(self.code_provider, d.samples).to(self.device)
                      for split, d in self.sets.items()}
        self.lpips_loss = self.lpips()

    def splits(self) -> list[str]:
        return ["content", "style"]

    def hyper_optimizer(self) -> torch.optim.Optimizer:
        params = [p for p in self.H.parameters() if p.requires_grad]
        return torch.optim.Adam(params, lr=float(self.cfg["lr"]), betas=(0.9, 0.999))

    @torch.no_grad()
    def start(self, x: torch.Tensor) -> tuple[Latent, torch.Tensor]:
        """(the encoded Latent: W+, and F with the spatial path; its render without offsets):
        where refinement starts."""
        latent = encode(self.E, self.G, x)
        return latent, render(self.G, latent)

    def refine(self, content: torch.Tensor, mask: torch.Tensor, codes: torch.Tensor,
               latent: Latent, initial: torch.Tensor,
               loss_fn: Callable[[torch.Tensor, int], torch.Tensor],
               offset_weight: float = 0.0) -> RefineResult:
        """HyperStyle's training iterations through the one refinement loop of inference
        (models/hypernet.py ``refine``): ``loss_fn(output, t)`` is backpropagated after each pass,
        plus ``offset_weight`` x the mean squared offset of the trained layers (a bound on how far
        the weights move; 0 = off, the paper). Returns the (detached) outputs and offsets."""
        code_map, global_code = condition(codes.to(content.dtype), mask)

        def on_pass(y: torch.Tensor, offsets: list[torch.Tensor | None], t: int) -> None:
            loss = loss_fn(y.float(), t)
            if offset_weight > 0:
                loss = loss + offset_weight * self.offset_penalty(offsets)
            if loss.requires_grad:  # a pass with no term on it (all weights 0) only runs forward
                self.ctx.backward(loss)

        return refine(self.G, self.H_train, latent.wplus, content, code_map,
                      int(self.cfg["iterations"]), initial, global_code=global_code,
                      features=latent.features, on_pass=on_pass, autocast=self.ctx.autocast,
                      call=self.call)

    @property
    def trained_layers(self) -> list[int]:
        return list(range(self.H.n_layers))

    def offset_penalty(self, offsets: list[torch.Tensor | None]) -> torch.Tensor:
        """Mean over the layers this stage trains of the mean squared accumulated offset."""
        layers = set(self.trained_layers)
        trained = [o.float().pow(2).mean() for i, o in enumerate(offsets)
                   if o is not None and i in layers]
        return torch.stack(trained).mean()

    @torch.no_grad()
    def preview(self, x: torch.Tensor, mask: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        from hypernst_cli.pipeline.core import stylize_tensors

        was = self.H.training
        self.H.eval()
        out = stylize_tensors(self.G, self.H, self.E, x, mask, codes,
                              iterations=int(self.cfg["iterations"])).images
        self.H.train(was)
        return out


@dataclass
class ReconstructStage(HyperStage):
    def setup(self) -> None:
        self.setup_frozen()
        self.H.train()
        self.H_train = self.ctx.wrap(self.H)
        self.modules = {"hypernet": self.H}
        self.optimizers = {"hypernet": self.hyper_optimizer()}
        # AAHQ and FFHQ both (paper 3.4): the union of the splits, each image with its own codes
        self.data = ImageUnion(list(self.sets.values()))
        self.all_codes = torch.cat(list(self.codes.values()))
        self.sampler = self.make_sampler(len(self.data))

    def splits(self) -> list[str]:
        from hypernst_cli.errors import UsageError

        splits = list(self.cfg["splits"])
        if not splits or any(s not in ("content", "style") for s in splits):
            raise UsageError(f"splits must name content and/or style, got {splits}")
        return splits

    def train_step(self, step: int) -> dict[str, float]:
        loss_cfg = self.cfg["loss"]
        batch = self.batch(self.data, self.sampler)
        x, mask = batch["image"], batch["mask"]
        codes = self.all_codes[batch["index"].to(self.device)]
        latent, initial = self.start(x)
        logs: dict[str, float] = {}

        def loss_fn(y: torch.Tensor, t: int) -> torch.Tensor:
            loss, parts = reconstruction_loss(y, x, l2=loss_cfg["l2"], lpips_weight=loss_cfg["lpips"],
                                              lpips=self.lpips_loss)
            logs[f"loss_{t + 1}"] = float(loss.detach())
            for k, v in parts.items():
                logs[f"{k}_{t + 1}"] = float(v)
            return loss

        opt = self.optimizers["hypernet"]
        opt.zero_grad(set_to_none=True)
        self.refine(x, mask, codes, latent, initial, loss_fn)
        self.ctx.step(opt)
        if self.ctx.scaler is not None:
            self.ctx.scaler.update()
        logs["loss"] = logs[f"loss_{int(self.cfg['iterations'])}"]
        logs["initial_mse"] = float(torch.mean((initial - x) ** 2))
        return logs

    def sample_grid(self) -> np.ndarray:
        from hypernst_cli.train.data import make_batch

        idx = list(range(min(4, len(self.data))))
        b = make_batch(self.data, idx)
        x, mask = b["image"].to(self.device), b["mask"].to(self.device)
        with torch.no_grad():
            initial = render(self.G, encode(self.E, self.G, x))
        y = self.preview(x, mask, self.all_codes[idx])
        return sample_sheet({"input": x, "e4e": initial, "hypernet": y})


@dataclass
class StylizeStage(HyperStage):
    SAMPLERS = {"content": "content_sampler", "style": "style_sampler"}

    @property
    def trained_layers(self) -> list[int]:
        return self._trained_layers

    def setup(self) -> None:
        self.setup_frozen()
        self.content, self.style = self.sets["content"], self.sets["style"]
        self.content_codes, self.style_codes = self.codes["content"], self.codes["style"]
        copies = int(self.cfg["style_variants"])
        if copies > 0:  # colour-graded copies of every style image, with their own codes
            self.style = StyleVariants(self.sets["style"], copies, seed=int(self.cfg["seed"]))
            self.style_codes = self.style.code_table(self.code_provider).to(self.device)
        if not self.has_init("hypernet"):
            self.log_once("hypernet", "init has no hyper-network: stage 2 starts from a random one "
                          "(train stage 1, `hypernst train reconstruct`, first)")
        from hypernst_cli.errors import UsageError

        spec = self.cfg["stylize_layers"]
        try:
            self._trained_layers = self.H.stylization_layers(spec)
        except ValueError as exc:
            raise UsageError(f"stylize_layers: {exc}") from None
        self.H.freeze_for_stylization(self._trained_layers)
        self.H.train()
        self.H_train = self.ctx.wrap(self.H)
        self.D = self.network("discriminator").train()
        self.PD = self.network("patch_disc").train()
        self.setup_analogy()
        # with loss.style = 0 (or no unpaired items) nothing reads the discriminators: they are
        # carried, not trained
        self.adversarial = float(self.cfg["loss"]["style"]) > 0 and self.n_unpaired > 0
        if self.adversarial:
            self.origin.update(discriminator="trained", patch_disc="trained")
        else:
            self.notes["discriminators"] = ("loss.style = 0: the image and patch discriminators "
                                            "were neither run nor trained in this stage")
        self.networks.update(discriminator=self.D, patch_disc=self.PD)
        self.D_train = self.ctx.wrap(self.D)
        self.PD_train = self.ctx.wrap(self.PD)
        self.modules = {"hypernet": self.H, "discriminator": self.D, "patch_disc": self.PD}
        self.r1 = LazyR1.from_loss(self.cfg["loss"])
        self.optimizers = {
            "hypernet": self.hyper_optimizer(),
            "discriminators": discriminator_optimizer(
                list(self.D.parameters()) + list(self.PD.parameters()), float(self.cfg["lr_d"]),
                self.r1),
        }
        self.content_sampler = self.make_sampler(len(self.content))
        self.style_sampler = self.make_sampler(len(self.style), salt=1)
        pd_cfg = self.model_cfg.patch_disc
        self.patch_size = pd_cfg.patch_size
        self.patch_count = pd_cfg.patches_per_region

    # --- analogy items ---------------------------------------------------------------------------
    def setup_analogy(self) -> None:
        """The ``[analogy]`` options: how many items of a batch are analogy items, and the
        LPIPS module their loss uses (dropped with one note when its backbone is missing)."""
        self.analogy = AnalogySource(self.cfg["analogy"], self.content, self.code_provider,
                                     int(self.cfg["seed"]))
        batch = int(self.cfg["batch_size"])
        self.n_analogy = self.analogy.count(batch)
        self.n_unpaired = batch - self.n_analogy
        loss_cfg = self.cfg["loss"]
        unpaired_terms = ("style", "colour", "code", "structure")
        if self.n_unpaired == 0 and any(float(loss_cfg[k]) > 0 for k in unpaired_terms):
            self.log_once("analogy", "analogy.share = 1: every item is an analogy item, so the "
                          "unpaired style terms (loss.style, colour, code, structure) had no items")
        if self.n_analogy and self.analogy.weights["lpips"] > 0 and self.lpips_loss is None:
            from hypernst_cli.train.losses import find_lpips

            self.lpips_loss, why = find_lpips("alex", self.device)
            if self.lpips_loss is None:
                self.cfg["analogy"]["lpips"] = self.analogy.weights["lpips"] = 0.0
                self.log_once("lpips_analogy", f"LPIPS term of the analogy loss dropped: {why}")

    def analogy_term(self, y: torch.Tensor, target: torch.Tensor,
                     generator: torch.Generator | None = None, *,
                     palette: torch.Tensor | None = None,
                     inks: torch.Tensor | None = None,
                     masks: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, float]]:
        """The analogy loss of outputs y(B, T(A)) against their targets T(B); ``generator`` draws
        the texture term's projections. With ``palette`` (the exemplars' palette tables; and
        ``inks``, their ink tables) the outputs are first put through the model config's palette
        post-process on the contents' ``masks``, as the tool renders them."""
        w = self.analogy.weights
        if palette is not None:
            from hypernst_cli.pipeline.palette import apply_palettes, configured

            tables = [configured(self.model_cfg.palette, t, None if inks is None else inks[i])
                      for i, t in enumerate(palette)]
            y = apply_palettes(y, tables, masks)
        loss, parts = l1_laplacian_loss(y, target, l1=w["l1"], laplacian=w["laplacian"],
                                        lpips_weight=w["lpips"], lpips=self.lpips_loss)
        if w["lowpass"] > 0:
            low = (F.avg_pool2d(y.float(), 4) - F.avg_pool2d(target.float(), 4)).abs().mean()
            loss, parts["lowpass"] = loss + w["lowpass"] * low, low.detach()
        if w["texture"] > 0:
            tex = patch_swd(y, target, projections=32, generator=generator,
                            max_patches=TEXTURE_PATCHES).mean()
            loss, parts["texture"] = loss + w["texture"] * tex, tex.detach()
        return loss, {"loss_analogy": float(loss.detach()),
                      **{f"analogy_{k}": float(v) for k, v in parts.items()}}

    # --- region-matched patches ------------------------------------------------------------------
    def patches(self, image: torch.Tensor, mask: torch.Tensor, region: int, count: int,
                gen: torch.Generator) -> torch.Tensor | None:
        boxes = region_boxes(mask.cpu(), region, count, self.patch_size,
                             float(self.cfg["loss"]["patch_coverage"]), generator=gen)
        if boxes.shape[0] == 0:
            return None
        return crop_patches(image, boxes, self.patch_size)

    def patch_pairs(self, stylized: torch.Tensor, content_mask: torch.Tensor, style: torch.Tensor,
                    style_mask: torch.Tensor, gen: torch.Generator
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
        """Per (sample, region) present on both sides: patches of y(c, s) in the region of c's mask
        (query), patches of s in the same region of s's mask (reference), and other patches of s
        in that region (the real query). Stacked as [n, count, 3, p, p]; None when no pair."""
        fake_q, ref, real_q = [], [], []
        k = self.patch_count
        for b in range(stylized.shape[0]):
            for region in range(N_REGIONS):
                q = self.patches(stylized[b], content_mask[b], region, k, gen)
                s = self.patches(style[b], style_mask[b], region, 2 * k, gen)
                if q is None or s is None:
                    continue  # the region is missing on one side: nothing to match
                fake_q.append(q)
                ref.append(s[:k])
                real_q.append(s[k:])
        if not fake_q:
            return None
        return torch.stack(fake_q), torch.stack(ref), torch.stack(real_q)

    def guidance(self, loss_cfg: dict[str, Any], c: torch.Tensor, c_mask: torch.Tensor,
                 s: torch.Tensor, s_mask: torch.Tensor
                 ) -> Callable[[torch.Tensor], tuple[torch.Tensor, dict[str, float]]]:
        """The optional direct style terms on y(c, s) (not in the paper, all 0 by default), for
        budgets too short for the discriminators alone to make the offsets depend on the style:
        ``colour`` x region-matched Lab colour moments against s, ``code`` x (1 - cosine) between
        the ALADIN codes of y(c, s) and s, ``structure`` x band-pass luminance L1 against c."""
        w_colour, w_code, w_structure = (float(loss_cfg[k]) for k in ("colour", "code", "structure"))
        target_code = None
        if w_code > 0:
            with torch.no_grad():
                target_code = self.aladin.encode((s.float() + 1) / 2)

        def terms(y: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
            total, parts = y.new_zeros((), dtype=torch.float32), {}
            if w_colour > 0:
                colour = region_colour_loss(y, c_mask, s, s_mask, N_REGIONS)
                total, parts["loss_colour"] = total + w_colour * colour, float(colour.detach())
            if target_code is not None:
                cos = (self.aladin.encode((y.float() + 1) / 2) * target_code).sum(1).mean()
                total, parts["loss_code"] = total + w_code * (1 - cos), float(1 - cos.detach())
            if w_structure > 0:
                kept = structure_loss(y, c)
                total, parts["loss_structure"] = total + w_structure * kept, float(kept.detach())
            return total, parts

        return terms

    def train_step(self, step: int) -> dict[str, float]:
        loss_cfg = self.cfg["loss"]
        cb = self.batch(self.content, self.content_sampler)
        sb = self.batch(self.style, self.style_sampler)
        c, c_mask = cb["image"], cb["mask"]
        # the first n_a contents are analogy items; the rest are paired with style images
        n_a = self.n_analogy
        s, s_mask = sb["image"][n_a:], sb["mask"][n_a:]
        u_mask = c_mask[n_a:]
        own = self.content_codes[cb["index"].to(self.device)]
        swapped = self.style_codes[sb["index"].to(self.device)][n_a:]
        analogy: AnalogyBatch | None = None
        if n_a:
            t0 = time.perf_counter()
            analogy = self.analogy.take(step, self.ctx.rank, c[:n_a], c_mask[:n_a],
                                        cb["index"][:n_a].tolist())
            # how long the step waited for its items: near 0 while drawing ahead keeps up
            wait_items = time.perf_counter() - t0
            if self.analogy.prefetch:
                upcoming = self.host_batch(self.content, copy.copy(self.content_sampler))
                self.analogy.draw_ahead(step + 1, self.ctx.rank, upcoming["image"][:n_a],
                                        upcoming["mask"][:n_a], upcoming["index"][:n_a].tolist())
            swapped = torch.cat([analogy.exemplar_codes, swapped])
        gen = torch.Generator().manual_seed(int(self.cfg["seed"]) * 1_000_003 + step * 101 + self.ctx.rank)
        latent, initial = self.start(c)
        logs: dict[str, float] = {}
        # the last pass's reconstruction and stylization losses, as backpropagated: the logged total
        last_losses: dict[str, float] = {}
        n_iter = int(self.cfg["iterations"])
        opt_h = self.optimizers["hypernet"]
        opt_h.zero_grad(set_to_none=True)
        self.D.requires_grad_(False)
        self.PD.requires_grad_(False)

        # (B) reconstruction with the content's own codes
        def rec_fn(y: torch.Tensor, t: int) -> torch.Tensor:
            loss, parts = reconstruction_loss(y, c, l2=loss_cfg["l2"], lpips_weight=loss_cfg["lpips"],
                                              lpips=self.lpips_loss)
            weighted = loss_cfg["rec"] * loss
            if t == n_iter - 1:
                logs["loss_rec"] = float(loss.detach())
                logs.update({f"rec_{k}": float(v) for k, v in parts.items()})
                last_losses["rec"] = float(weighted.detach())
            return weighted

        offset_weight = float(loss_cfg["offsets"])
        self.refine(c, c_mask, own, latent, initial, rec_fn, offset_weight)

        # (A) stylization with the style image's codes on the content's mask (and the analogy
        # items with their exemplar's codes, compared with their targets)
        guidance = self.guidance(loss_cfg, c[n_a:], u_mask, s, s_mask) if self.n_unpaired else None

        def style_fn(y: torch.Tensor, t: int) -> torch.Tensor:
            loss, parts = y.new_zeros((), dtype=torch.float32), {}
            if analogy is not None:
                loss, parts = self.analogy_term(y[:n_a], analogy.target, gen,
                                                palette=analogy.palette, inks=analogy.inks,
                                                masks=c_mask[:n_a])
            y_u = y[n_a:]
            if guidance is not None:
                guided, guided_parts = guidance(y_u)
                loss = loss + guided
                parts.update(guided_parts)
            if self.adversarial:
                l_disc = g_nonsaturating(self.D(y_u))
                pairs = self.patch_pairs(y_u, u_mask, s, s_mask, gen)
                l_pcd = g_nonsaturating(self.PD(pairs[0], pairs[1])) if pairs else y.new_zeros(())
                loss = loss + loss_cfg["style"] * (l_disc + l_pcd)
                parts.update(loss_disc=float(l_disc.detach()), loss_pcd=float(l_pcd.detach()),
                             patch_pairs=float(0 if pairs is None else pairs[0].shape[0]))
            if t == n_iter - 1:
                logs.update(parts)
                last_losses["style"] = float(loss.detach())
            return loss

        stylized = self.refine(c, c_mask, swapped, latent, initial, style_fn,
                               offset_weight).images[-1][n_a:]
        self.ctx.step(opt_h)
        if self.adversarial:
            terms = self.discriminator_terms(s, s_mask, stylized, u_mask, gen)
            update = discriminator_step(self.ctx, self.optimizers["discriminators"], terms, step,
                                        self.r1)
            logs.update({"d_patch_loss": 0.0, **update.logs})  # 0: no region pair this step
        if self.ctx.scaler is not None:
            self.ctx.scaler.update()
        logs["loss"] = sum(last_losses.values())
        if analogy is not None:
            logs["wait_items"] = wait_items
        return logs

    def discriminator_terms(self, s: torch.Tensor, s_mask: torch.Tensor, stylized: torch.Tensor,
                            c_mask: torch.Tensor, gen: torch.Generator) -> list[DiscriminatorTerm]:
        """Both discriminators' inputs: y(c, s) fake and s real for the image discriminator;
        region-matched patches of y(c, s) fake and other patches of s real, each against
        patches of s as the reference, for the patch discriminator (when a region pairs)."""
        terms = [DiscriminatorTerm(self.D_train, real=s, fake=stylized)]
        pairs = self.patch_pairs(stylized, c_mask, s, s_mask, gen)
        if pairs is not None:
            fake_q, ref, real_q = pairs
            terms.append(DiscriminatorTerm(self.PD_train, real=real_q, fake=fake_q, context=(ref,),
                                           loss_key="d_patch_loss", r1_key="r1_patch"))
        return terms

    def sample_grid(self) -> np.ndarray:
        from hypernst_cli.train.data import make_batch

        n = min(4, len(self.content))
        cb = make_batch(self.content, list(range(n)))
        sb = make_batch(self.style, [i % len(self.style) for i in range(n)])
        c, mask = cb["image"].to(self.device), cb["mask"].to(self.device)
        styled = self.preview(c, mask, self.style_codes[[i % len(self.style) for i in range(n)]])
        rec = self.preview(c, mask, self.content_codes[:n])
        rows = {"content": c, "style": sb["image"], "stylized": styled, "reconstructed": rec}
        if self.n_analogy:  # fixed items: step 0's draws on the first faces
            items = self.analogy.draw(0, 0, c, mask, list(range(n)))
            rows.update(exemplar=items.exemplar, target=items.target,
                        analogy=self.preview(c, mask, items.exemplar_codes))
        return sample_sheet(rows)
