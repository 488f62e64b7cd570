"""Stage ``autoencoder``: the generator and e4e trained JOINTLY (x -> e4e -> W+ -> G -> x').

A StyleGAN2 trained as a GAN needs GPU-days and no pretrained one is available offline, so the
compact recipe trains the synthesis network and the encoder together as an autoencoder on the
content and style images of a prepared folder:

- reconstruction: ``l1`` * L1 + ``laplacian`` * Laplacian-pyramid L1 + ``lpips`` * LPIPS (when
  the backbone is found locally);
- adversarial (from step ``adv_start``): non-saturating ``adv`` * -log D(x') with the StyleGAN2
  discriminator (x real, x' fake, lazy R1), which restores the detail an L1 loss blurs;
- patch co-occurrence (``patch`` > 0): patches of x' must look like they come from x, judged
  against other patches of x (Swapping Autoencoder's discriminator, random windows);
- e4e's delta regularisation ``delta_reg`` * sum_i ||w_i - w_0||: W+ stays near its w_0, which
  keeps the latents editable; optional progressive deltas (``progressive_every``).

Spatial path (the config's ``generator.feature_resolution``): the encoder's feature head is
trained with the generator's later layers, rendering F = G_f(W+) + residual in one generator call
(``feature_residual``). Two terms keep W+ meaningful, so that the plain render G(W+), the early
layers and the edits (which move W+) still matter: ``loss.feature`` * mean (F - G_f(W+))^2, i.e.
the squared residual (Feature-Style encoder's feature-matching idea, with G_f trained too), and
``plain_fraction``: that share of each batch is rendered without the residual (F = G_f(W+)), so
W+ alone must reconstruct it (Feature-Style encoder trains with and without F); both at no extra
generator pass. docs/compact-model.md ("Spatial features") has the measurements.

Growing (``train_from_layer`` N != 0; a model from ``train/extend.py --resolution``): only the
generator's synthesis layers from index N on (models/stylegan2.py's layer indexing; negative N
counts from the end: -3 is the last block's up conv, conv and toRGB) are trained; the encoder
and every earlier layer stay as in ``init`` (the encoder in eval mode, its BatchNorm statistics
fixed), so the latents and the features the later stages were trained on do not move.

The MAPPING NETWORK IS NOT TRAINED and stays at its initial weights: every latent comes from the
encoder, and the edit directions are fit in W+ on encoded latents, so z -> w sampling is not
needed (a model card note says so). EMA copies of the generator and of the encoder (the pair
that is exported, so they match) follow ``ema_half_life_kimg``. The exported encoder's
``latent_avg`` is the mean w_0 that this exported encoder gives the training images (up to
``latent_avg_images`` of them, measured at export: a running mean during training would lag
behind the EMA weights); the shift is moved out of its w_0 head's bias, so the exported encoder
computes exactly the same latents.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from hypernst_cli.errors import UsageError
from hypernst_cli.models.patches import crop_patches, random_boxes
from hypernst_cli.pipeline.core import encode, encoder_input_size, invert, render, resize
from hypernst_cli.train.common import ImageUnion, ModelStage, progressive_stage, sample_sheet
from hypernst_cli.train.discriminator import (
    DiscriminatorTerm,
    LazyR1,
    discriminator_optimizer,
    discriminator_step,
)
from hypernst_cli.train.losses import ema_decay, ema_update, g_nonsaturating, l1_laplacian_loss


def recentre_encoder(encoder: nn.Module, mean_w0: torch.Tensor) -> nn.Module:
    """A copy of ``encoder`` whose ``latent_avg`` row 0 is ``mean_w0``, computing the same W+.

    The encoder outputs w_0 + (deltas) + latent_avg; adding d to every row of latent_avg and
    subtracting it from the w_0 head's output bias leaves each latent unchanged.
    """
    out = copy.deepcopy(encoder)
    with torch.no_grad():
        shift = mean_w0.to(out.latent_avg) - out.latent_avg[0]
        head = out.styles[0].linear
        head.bias -= shift / head.lr_mul
        out.latent_avg += shift
    return out


@dataclass
class AutoencoderStage(ModelStage):
    def setup(self) -> None:
        cfg, loss = self.cfg, self.cfg["loss"]
        assert self.model_cfg is not None
        self.G = self.network("generator").train()
        self.E = self.network("encoder").train()
        self.D = self.network("discriminator").train()
        self.origin.update(generator="trained", encoder="trained", discriminator="trained")
        self.use_patch = float(loss["patch"]) > 0
        self.patch_size = self.model_cfg.patch_disc.patch_size
        self.patch_count = self.model_cfg.patch_disc.patches_per_region
        if self.use_patch and self.patch_size > self.model_cfg.resolution:
            raise UsageError(f"patch size {self.patch_size} exceeds the resolution "
                             f"{self.model_cfg.resolution}")
        self.PD = self.network("patch_disc").train() if self.use_patch else None
        self.G_ema = copy.deepcopy(self.G).eval().requires_grad_(False)
        self.E_ema = copy.deepcopy(self.E).eval().requires_grad_(False)
        self.G_train, self.E_train = self.ctx.wrap(self.G), self.ctx.wrap(self.E)
        self.D_train = self.ctx.wrap(self.D)
        self.PD_train = self.ctx.wrap(self.PD) if self.PD is not None else None
        # the mapping network is not part of the autoencoder: not optimised (see the docstring)
        self.G.style.requires_grad_(False)
        synthesis = [p for n, p in self.G.named_parameters() if not n.startswith("style.")]
        self.train_from = int(cfg["train_from_layer"])
        if self.train_from:
            synthesis = self.freeze_below(self.train_from)
        betas = tuple(float(b) for b in cfg["betas"])
        self.r1 = LazyR1.from_loss(loss)
        d_params = list(self.D.parameters()) + (list(self.PD.parameters()) if self.PD else [])
        self.optimizers = {
            "generator": torch.optim.Adam(synthesis, lr=float(cfg["lr"]), betas=betas),
            "discriminator": discriminator_optimizer(d_params, float(cfg["lr_d"]), self.r1, betas),
        }
        if not self.train_from:
            self.optimizers["encoder"] = torch.optim.Adam(
                self.E.parameters(), lr=float(cfg["lr_encoder"]), betas=(0.9, 0.999))
        self.modules = {"generator": self.G, "encoder": self.E, "g_ema": self.G_ema,
                        "e_ema": self.E_ema, "discriminator": self.D}
        self.networks = {"generator": self.G_ema, "encoder": self.E_ema, "discriminator": self.D}
        if self.PD is not None:
            self.modules["patch_disc"] = self.PD
            self.networks["patch_disc"] = self.PD
            self.origin["patch_disc"] = "trained"
        self.notes["mapping"] = ("generator mapping network: not trained (latents come from the "
                                 "encoder; edit directions live in W+)")
        self.lpips_loss = self.lpips()
        self.data = ImageUnion([self.image_set("content"), self.image_set("style")])
        self.sampler = self.make_sampler(len(self.data))
        from hypernst_cli.train.data import make_batch

        self.preview = make_batch(self.data, list(range(min(4, len(self.data)))))["image"].to(self.device)

    def freeze_below(self, first: int) -> list[nn.Parameter]:
        """Freeze the encoder and the synthesis layers before index ``first``; the parameters
        left to train (those of layers ``first`` on)."""
        layers = self.G.synthesis_layers()
        given, first = first, first + len(layers) if first < 0 else first
        if not 0 < first < len(layers):
            raise UsageError(f"train_from_layer {given}: the generator's layers are "
                             f"0..{len(layers) - 1}",
                             hint="give the first layer of the new blocks, or -3 for the last "
                                  "block (0 trains everything)")
        self.G.requires_grad_(False)
        for layer in layers[first:]:
            layer.requires_grad_(True)
        self.E.requires_grad_(False).eval()
        self.origin["encoder"] = "init"
        self.notes["frozen"] = (f"trained only the generator's layers {first}..{len(layers) - 1}; "
                                "the encoder and the earlier layers are init's")
        return [p for p in self.G.parameters() if p.requires_grad]

    # --- losses ------------------------------------------------------------------------------
    def reconstruction(self, y: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        loss_cfg = self.cfg["loss"]
        total, parts = l1_laplacian_loss(
            y, x, l1=float(loss_cfg["l1"]), laplacian=float(loss_cfg["laplacian"]),
            lpips_weight=float(loss_cfg["lpips"]), lpips=self.lpips_loss,
            levels=int(loss_cfg["laplacian_levels"]))
        logs = {k: float(v) for k, v in parts.items()}
        logs["rec"] = float(total.detach())
        return total, logs

    def patch_sets(self, y: torch.Tensor, x: torch.Tensor, gen: torch.Generator
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(patches of x' (fake queries), patches of x (reference), other patches of x (real
        queries)), each [B, count, 3, p, p]."""
        b, k, p, (h, w) = x.shape[0], self.patch_count, self.patch_size, x.shape[-2:]
        fake_q, ref, real_q = (crop_patches(image, random_boxes(b, k, p, h, w, gen), p)
                               for image in (y, x, x))
        return fake_q, ref, real_q

    # --- one step ----------------------------------------------------------------------------
    def train_step(self, step: int) -> dict[str, float]:
        cfg, loss_cfg = self.cfg, self.cfg["loss"]
        stage = progressive_stage(step, int(cfg["progressive_every"]), self.E.n_latent)
        self.E.set_progressive_stage(stage)
        self.E_ema.set_progressive_stage(stage)
        x = self.batch(self.data, self.sampler)["image"]
        gen = torch.Generator().manual_seed(int(cfg["seed"]) * 1_000_003 + step * 101 + self.ctx.rank)
        adversarial = step >= int(cfg["adv_start"])
        use_adv = adversarial and float(loss_cfg["adv"]) > 0
        use_patch = adversarial and self.PD is not None
        opt_g, opt_e, opt_d = (self.optimizers.get(k) for k in ("generator", "encoder",
                                                                  "discriminator"))

        # generator + encoder
        self.D.requires_grad_(False)
        if self.PD is not None:
            self.PD.requires_grad_(False)
        with self.ctx.autocast():
            w, residual = self.call(self.E_train, resize(x, encoder_input_size(self.E)),
                                    with_features=True)
            if residual is not None:
                residual = residual * self.keep_residual(x.shape[0], gen).to(residual)
            y = self.call(self.G_train, w, feature_residual=residual,
                          randomize_noise=bool(cfg["randomize_noise"]))
        loss, logs = self.reconstruction(y, x)
        if residual is not None:
            feature = residual.float().pow(2).mean()  # (F - G_f(W+))^2
            loss = loss + float(loss_cfg["feature"]) * feature
            logs["feature"] = float(feature.detach())
        deltas = w[:, 1:] - w[:, :1]
        reg = deltas.float().norm(dim=2).sum(1).mean()
        loss = loss + float(loss_cfg["delta_reg"]) * reg
        logs["delta_reg"] = float(reg.detach())
        patches = self.patch_sets(y, x, gen) if use_patch else None
        if use_adv:
            with self.ctx.autocast():
                adv = g_nonsaturating(self.D(y).float())
            loss = loss + float(loss_cfg["adv"]) * adv
            logs["g_adv"] = float(adv.detach())
        if patches is not None:
            with self.ctx.autocast():
                pcd = g_nonsaturating(self.PD(patches[0], patches[1]).float())
            loss = loss + float(loss_cfg["patch"]) * pcd
            logs["g_patch"] = float(pcd.detach())
        opt_g.zero_grad(set_to_none=True)
        if opt_e is not None:
            opt_e.zero_grad(set_to_none=True)
        self.ctx.backward(loss)
        self.ctx.step(opt_g)
        if opt_e is not None:
            self.ctx.step(opt_e)
        logs["loss"] = float(loss.detach())

        # discriminators: x real, x' fake (one generator pass per step: x' detached); the
        # patch discriminator's queries against the same reference patches of x
        terms = [DiscriminatorTerm(self.D_train, real=x, fake=y)] if use_adv else []
        if patches is not None:
            fake_q, ref, real_q = patches
            terms.append(DiscriminatorTerm(self.PD_train, real=real_q, fake=fake_q, context=(ref,)))
        logs.update(discriminator_step(self.ctx, opt_d, terms, step, self.r1).logs)
        if self.ctx.scaler is not None:
            self.ctx.scaler.update()

        decay = ema_decay(self.batch_images, float(cfg["ema_half_life_kimg"]))
        ema_update(self.G_ema, self.G, decay)
        ema_update(self.E_ema, self.E, decay)
        return logs

    def keep_residual(self, batch: int, gen: torch.Generator) -> torch.Tensor:
        """[B, 1, 1, 1]: 0 for the samples rendered from W+ alone (``plain_fraction``), else 1."""
        plain = torch.rand(batch, generator=gen) < float(self.cfg["plain_fraction"])
        return (~plain).float().view(batch, 1, 1, 1)

    @torch.no_grad()
    def sample_grid(self) -> np.ndarray:
        with torch.random.fork_rng(devices=[]):
            latent = encode(self.E_ema, self.G_ema, self.preview)
            columns = {"input": self.preview, "EMA G(E(x))": render(self.G_ema, latent)}
            if latent.features is not None:
                columns["EMA G(W+) (no F)"] = self.G_ema(latent.wplus)
        return sample_sheet(columns)

    @torch.no_grad()
    def mean_w0(self, encoder: nn.Module) -> torch.Tensor:
        """Mean encoded w_0 over (up to ``latent_avg_images``) training images, in order."""
        from hypernst_cli.train.data import make_batch

        n = min(len(self.data), max(1, int(self.cfg["latent_avg_images"])))
        total = torch.zeros(encoder.style_dim, device=self.device)
        for start in range(0, n, 32):
            x = make_batch(self.data, list(range(start, min(n, start + 32))))["image"]
            total += invert(encoder, x.to(self.device))[:, 0].float().sum(0)
        return total / n

    def export(self, folder: Path) -> Path:
        self.E_ema.set_progressive_stage(self.E.n_latent - 1)
        encoder = recentre_encoder(self.E_ema, self.mean_w0(self.E_ema))
        self.networks["encoder"] = encoder
        self.notes["latent_avg"] = (f"encoder latent_avg: mean encoded w0 of "
                                    f"{min(len(self.data), int(self.cfg['latent_avg_images']))} "
                                    "training images")
        return super().export(folder)
