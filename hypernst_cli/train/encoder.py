"""Stage ``encoder``: e4e for a trained generator (Tov et al. 2021).

``init`` must hold the generator (frozen here); the encoder is fine-tuned when init has one, else
trained from scratch. Losses: ``l2`` * MSE + ``lpips`` * LPIPS (when its backbone is found) between
the image and G(E(image)); ``delta_reg`` * sum_i ||w_i - w_0|| (e4e's delta regularisation);
progressive deltas (one more W+ delta enabled every ``progressive_every`` steps); an optional
latent discriminator (weight ``latent_disc``) pulling the encoded w towards the mapping's W, with
lazy R1 (``r1`` every ``r1_every`` steps, as e4e).
The encoder's ``latent_avg`` is the generator's mean latent.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from hypernst_cli.pipeline.core import invert
from hypernst_cli.train.common import ImageUnion, ModelStage, progressive_stage, sample_sheet
from hypernst_cli.train.discriminator import (
    DiscriminatorTerm,
    LazyR1,
    discriminator_optimizer,
    discriminator_step,
)
from hypernst_cli.train.losses import g_nonsaturating, reconstruction_loss


class LatentDiscriminator(nn.Module):
    """e4e's latent discriminator: an MLP on single w vectors -> logit (real = mapped z)."""

    def __init__(self, style_dim: int, layers: int = 4) -> None:
        super().__init__()
        mods: list[nn.Module] = []
        for _ in range(layers - 1):
            mods += [nn.Linear(style_dim, style_dim), nn.LeakyReLU(0.2)]
        mods.append(nn.Linear(style_dim, 1))
        self.net = nn.Sequential(*mods)

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return self.net(w)


@dataclass
class EncoderStage(ModelStage):
    def setup(self) -> None:
        cfg, loss = self.cfg, self.cfg["loss"]
        self.G = self.frozen(self.network("generator", required=True))
        self.E = self.network("encoder").train()
        self.origin["encoder"] = "trained"
        with torch.no_grad():  # e4e predicts offsets from the generator's average latent
            g = torch.Generator(device="cpu").manual_seed(int(cfg["seed"]))
            avg = self.G.mean_latent(4096, generator=g)
            self.E.latent_avg.copy_(avg.expand_as(self.E.latent_avg))
        self.E_train = self.ctx.wrap(self.E)
        self.networks = {"generator": self.G, "encoder": self.E}
        self.modules = {"encoder": self.E}
        self.optimizers = {"encoder": torch.optim.Adam(self.E.parameters(), lr=cfg["lr"])}
        self.latent_D = None
        if loss["latent_disc"] > 0:
            self.latent_D = LatentDiscriminator(self.G.style_dim).to(self.device)
            self.latent_D_train = self.ctx.wrap(self.latent_D)
            self.modules["latent_disc"] = self.latent_D
            self.r1 = LazyR1.from_loss(loss)
            self.optimizers["latent_disc"] = discriminator_optimizer(
                self.latent_D.parameters(), cfg["lr"], self.r1, betas=(0.9, 0.999))
        self.lpips_loss = self.lpips()
        self.data = ImageUnion([self.image_set("content"), self.image_set("style")])
        self.sampler = self.make_sampler(len(self.data))
        self.preview = self.data_preview()

    def data_preview(self) -> torch.Tensor:
        from hypernst_cli.train.data import make_batch

        n = min(4, len(self.data))
        return make_batch(self.data, list(range(n)))["image"].to(self.device)

    def train_step(self, step: int) -> dict[str, float]:
        loss_cfg = self.cfg["loss"]
        self.E.set_progressive_stage(
            progressive_stage(step, int(self.cfg["progressive_every"]), self.E.n_latent))
        x = self.batch(self.data, self.sampler)["image"]
        logs: dict[str, float] = {"progressive_stage": float(self.E.progressive_stage)}

        if self.latent_D is not None:  # latent discriminator: mapped w (real) vs encoded w (fake)
            with torch.no_grad():
                real_w = self.G.mapping(torch.randn(x.shape[0], self.G.style_dim, device=self.device))
                fake_w = invert(self.E, x).flatten(0, 1)
            term = DiscriminatorTerm(self.latent_D_train, real=real_w, fake=fake_w,
                                     loss_key="latent_d_loss", r1_key="latent_r1")
            logs.update(discriminator_step(self.ctx, self.optimizers["latent_disc"], [term], step,
                                           self.r1).logs)
            self.latent_D.requires_grad_(False)

        with self.ctx.autocast():
            w = self.call(self.E_train, self.resize_in(x))
            y = self.call(self.G, w)
        loss, parts = reconstruction_loss(y, x, l2=loss_cfg["l2"], lpips_weight=loss_cfg["lpips"],
                                          lpips=self.lpips_loss)
        deltas = w[:, 1:] - w[:, :1]
        reg = deltas.float().norm(dim=2).sum(1).mean()
        loss = loss + loss_cfg["delta_reg"] * reg
        if self.latent_D is not None:
            adv = g_nonsaturating(self.latent_D(w.flatten(0, 1).float()))
            loss = loss + loss_cfg["latent_disc"] * adv
            logs["latent_adv"] = float(adv.detach())
        opt = self.optimizers["encoder"]
        opt.zero_grad(set_to_none=True)
        self.ctx.backward(loss)
        self.ctx.step(opt)
        if self.ctx.scaler is not None:
            self.ctx.scaler.update()
        logs.update(loss=float(loss.detach()), delta_reg=float(reg.detach()), **{k: float(v) for k, v in parts.items()})
        return logs

    def resize_in(self, x: torch.Tensor) -> torch.Tensor:
        from hypernst_cli.pipeline.core import encoder_input_size, resize

        return resize(x, encoder_input_size(self.E))

    @torch.no_grad()
    def sample_grid(self) -> np.ndarray:
        self.E.eval()
        y = self.G(invert(self.E, self.preview))
        self.E.train()
        return sample_sheet({"input": self.preview, "G(E(x))": y})
