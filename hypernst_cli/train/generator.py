"""Stage ``generator``: StyleGAN2 on photos + art portraits (paper 3.4).

Trained from scratch or fine-tuned from ``init`` (its ``generator``, and its ``discriminator``
when present) on the content and style images of a prepared folder together. Non-saturating
logistic loss, lazy R1 on reals every ``loss.r1_every`` steps, optional path-length
regularisation, style mixing, an EMA copy of the generator (what is exported), and optional
ADA-style augmentation with an adaptive probability for small sets.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from hypernst_cli.train.augment import AdaptiveP, augment
from hypernst_cli.train.common import ImageUnion, ModelStage, sample_sheet
from hypernst_cli.train.discriminator import (
    DiscriminatorTerm,
    LazyR1,
    discriminator_optimizer,
    discriminator_step,
    lazy_adam,
)
from hypernst_cli.train.losses import ema_decay, ema_update, g_nonsaturating, path_length_penalty


@dataclass
class GeneratorStage(ModelStage):
    def setup(self) -> None:
        cfg, loss = self.cfg, self.cfg["loss"]
        self.G = self.network("generator")
        self.D = self.network("discriminator")
        self.G.train()
        self.D.train()
        self.g_ema = copy.deepcopy(self.G).eval().requires_grad_(False)
        self.networks = {"generator": self.g_ema, "discriminator": self.D}
        self.origin.update(generator="trained", discriminator="trained")
        self.G_train = self.ctx.wrap(self.G)
        self.D_train = self.ctx.wrap(self.D)
        # lazy regularisation: Adam's lr and betas scaled as in StyleGAN2 for the skipped steps
        betas = tuple(float(b) for b in cfg["betas"])
        self.r1 = LazyR1.from_loss(loss)
        pl_every = max(1, int(loss["path_length_every"]))
        self.optimizers = {
            "generator": lazy_adam(self.G.parameters(), cfg["lr"], betas, pl_every,
                                   regularised=loss["path_length"] > 0),
            "discriminator": discriminator_optimizer(self.D.parameters(), cfg["lr"], self.r1, betas),
        }
        self.modules = {"generator": self.G, "g_ema": self.g_ema, "discriminator": self.D}
        self.data = ImageUnion([self.image_set("content"), self.image_set("style")])
        self.sampler = self.make_sampler(len(self.data))
        aug = cfg["augment"]
        if aug["kind"] not in ("none", "ada"):
            from hypernst_cli.errors import UsageError

            raise UsageError(f"unknown augment.kind '{aug['kind']}'", hint="use none or ada")
        self.ada = AdaptiveP(float(aug["target"]), float(aug["speed_kimg"]), self.batch_images) \
            if aug["kind"] == "ada" else None
        self.mean_path_length = 0.0
        g = torch.Generator().manual_seed(int(cfg["seed"]) + 12345)
        self.sample_z = torch.randn(8, self.G.style_dim, generator=g).to(self.device)

    # --- state -------------------------------------------------------------------------------
    def data_state(self) -> dict[str, Any]:
        return {**super().data_state(), "mean_path_length": self.mean_path_length,
                "ada": self.ada.state() if self.ada else None}

    def load_data_state(self, state: dict[str, Any]) -> None:
        super().load_data_state(state)
        self.mean_path_length = float(state.get("mean_path_length", 0.0))
        if self.ada is not None and state.get("ada"):
            self.ada.load(state["ada"])

    # --- one step ----------------------------------------------------------------------------
    def latents(self, batch: int) -> torch.Tensor:
        """W+ from mapped z, with style mixing at a random crossover (probability ``mixing``)."""
        n, d = self.G.n_latent, self.G.style_dim
        z = torch.randn(2, batch, d, device=self.device)
        w = self.G.mapping(z)  # [2, B, D]
        wplus = w[0][:, None].expand(batch, n, d)
        if float(torch.rand(())) < float(self.cfg["mixing"]):
            cross = int(torch.randint(1, n, ()))
            wplus = torch.cat([wplus[:, :cross], w[1][:, None].expand(batch, n - cross, d)], 1)
        return wplus

    def aug(self, x: torch.Tensor) -> torch.Tensor:
        return augment(x, self.ada.p) if self.ada is not None else x

    def train_step(self, step: int) -> dict[str, float]:
        loss_cfg = self.cfg["loss"]
        real = self.batch(self.data, self.sampler)["image"]
        b = real.shape[0]
        opt_g, opt_d = self.optimizers["generator"], self.optimizers["discriminator"]
        logs: dict[str, float] = {}

        # discriminator: real vs generated, both through the augmentation (ADA)
        with torch.no_grad(), self.ctx.autocast():
            fake = self.G(self.latents(b), randomize_noise=True)
        term = DiscriminatorTerm(lambda images: self.D_train(self.aug(images)), real=real, fake=fake)
        update = discriminator_step(self.ctx, opt_d, [term], step, self.r1)
        real_logits, fake_logits = update.real_logits[0], update.fake_logits[0]
        if self.ada is not None:
            self.ada.observe(real_logits)
            self.ada.update(step, self.ctx.distributed)
            logs["ada_p"] = self.ada.p
        logs.update(update.logs, real_score=float(real_logits.mean()),
                    fake_score=float(fake_logits.mean()))

        # generator: non-saturating loss through the (frozen) discriminator
        self.D.requires_grad_(False)
        with self.ctx.autocast():
            fake = self.G_train(self.latents(b), randomize_noise=True)
            g_loss = g_nonsaturating(self.D(self.aug(fake)).float())
        opt_g.zero_grad(set_to_none=True)
        self.ctx.backward(g_loss)
        self.ctx.step(opt_g)
        logs["g_loss"] = float(g_loss.detach())

        pl_every = max(1, int(loss_cfg["path_length_every"]))
        if loss_cfg["path_length"] > 0 and step % pl_every == 0:
            pl_batch = max(1, b // 2)
            wplus = self.latents(pl_batch).detach().requires_grad_(True)
            images = self.G_train(wplus, randomize_noise=True)
            penalty, self.mean_path_length = path_length_penalty(images, wplus, self.mean_path_length)
            opt_g.zero_grad(set_to_none=True)
            # full precision, a lazy regulariser: outside the GradScaler (see TrainContext)
            self.ctx.backward(loss_cfg["path_length"] * pl_every * penalty + 0 * images[0, 0, 0, 0],
                              scaled=False)
            self.ctx.step(opt_g, scaled=False)
            logs["path_length"] = float(penalty.detach())
        if self.ctx.scaler is not None:
            self.ctx.scaler.update()

        ema_update(self.g_ema, self.G, ema_decay(self.batch_images, float(self.cfg["ema_half_life_kimg"])))
        return logs

    @torch.no_grad()
    def sample_grid(self) -> np.ndarray:
        with torch.random.fork_rng(devices=[]):
            w = self.g_ema.mapping(self.sample_z)
            images = self.g_ema(w)
        return sample_sheet({"g_ema": images[:4], "g_ema ": images[4:]})
