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
from hypernst_cli.train.losses import (
    d_logistic,
    ema_decay,
    ema_update,
    g_nonsaturating,
    path_length_penalty,
    r1_penalty,
)


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
        r1_every = max(1, int(loss["r1_every"]))
        pl_every = max(1, int(loss["path_length_every"]))
        g_ratio = pl_every / (pl_every + 1) if loss["path_length"] > 0 else 1.0
        d_ratio = r1_every / (r1_every + 1) if loss["r1"] > 0 else 1.0
        self.optimizers = {
            "generator": torch.optim.Adam(self.G.parameters(), lr=cfg["lr"] * g_ratio,
                                          betas=tuple(b ** g_ratio for b in betas)),
            "discriminator": torch.optim.Adam(self.D.parameters(), lr=cfg["lr"] * d_ratio,
                                              betas=tuple(b ** d_ratio for b in betas)),
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
        return {"position": self.sampler.position, "mean_path_length": self.mean_path_length,
                "ada": self.ada.state() if self.ada else None}

    def load_data_state(self, state: dict[str, Any]) -> None:
        self.sampler.position = int(state["position"])
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

        # discriminator: real vs generated
        self.D.requires_grad_(True)
        with torch.no_grad(), self.ctx.autocast():
            fake = self.G(self.latents(b), randomize_noise=True)
        with self.ctx.autocast():
            real_logits = self.D_train(self.aug(real))
            fake_logits = self.D_train(self.aug(fake.detach()))
            d_loss = d_logistic(real_logits.float(), fake_logits.float())
        opt_d.zero_grad(set_to_none=True)
        self.ctx.backward(d_loss)
        self.ctx.step(opt_d)
        if self.ada is not None:
            self.ada.observe(real_logits)
            self.ada.update(step, self.ctx.distributed)
            logs["ada_p"] = self.ada.p
        logs.update(d_loss=float(d_loss.detach()), real_score=float(real_logits.detach().mean()),
                    fake_score=float(fake_logits.detach().mean()))

        r1_every = max(1, int(loss_cfg["r1_every"]))
        if loss_cfg["r1"] > 0 and step % r1_every == 0:
            real_in = real.detach().requires_grad_(True)
            logits = self.D_train(self.aug(real_in))  # full precision: second-order gradients
            penalty = r1_penalty(logits, real_in)
            opt_d.zero_grad(set_to_none=True)
            # the 0 * logits term keeps every D parameter in the graph (DDP bookkeeping)
            (loss_cfg["r1"] / 2 * penalty * r1_every + 0 * logits[0].sum()).backward()
            opt_d.step()
            logs["r1"] = float(penalty.detach())

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
            (loss_cfg["path_length"] * pl_every * penalty + 0 * images[0, 0, 0, 0]).backward()
            opt_g.step()
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
