"""One discriminator update for every stage that trains one: logistic loss, lazy R1, Adam.

StyleGAN2's recipe (Karras et al. 2020, appendix B): the discriminators minimise the
non-saturating logistic loss softplus(D(fake)) + softplus(-D(real)); every ``r1_every`` steps a
separate update adds R1 = |grad_x D(x)|^2 on the reals, scaled by r1 / 2 x r1_every so that its
average strength is that of an R1 on every step ("lazy regularisation"). Those extra updates
make Adam take r1_every + 1 steps per r1_every batches, so the optimiser's lr and betas are
corrected by ratio = r1_every / (r1_every + 1): lr x ratio, betas ** ratio
(:func:`lazy_adam`, :func:`discriminator_optimizer`).

A stage gives :func:`discriminator_step` one :class:`DiscriminatorTerm` per discriminator (the
image discriminator on images, the patch co-occurrence discriminator on (query, reference)
patch sets, ...); each term's real inputs get the R1.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from hypernst_cli.train.losses import d_logistic, r1_penalty
from hypernst_cli.train.trainer import TrainContext

#: StyleGAN2's Adam betas for the discriminator (and generator): no momentum, a long average
STYLEGAN2_BETAS = (0.0, 0.99)


@dataclass(frozen=True)
class LazyR1:
    """R1 of ``weight`` on the reals, applied every ``every`` steps (0 weight: off)."""

    weight: float
    every: int = 16

    @classmethod
    def from_loss(cls, loss_cfg: dict[str, Any]) -> LazyR1:
        """From a stage's ``[loss]`` table (``r1``, ``r1_every``)."""
        return cls(float(loss_cfg["r1"]), max(1, int(loss_cfg["r1_every"])))

    def due(self, step: int) -> bool:
        return self.weight > 0 and step % self.every == 0

    @property
    def scale(self) -> float:
        """The factor on the penalty in an R1 update: r1 / 2, times the steps it stands for."""
        return self.weight / 2 * self.every


def lazy_adam(params: Iterable[torch.nn.Parameter], lr: float,
              betas: Sequence[float] = STYLEGAN2_BETAS, every: int = 1,
              regularised: bool = True) -> torch.optim.Adam:
    """Adam for a network with a lazy regulariser every ``every`` steps (R1 for discriminators,
    path length for StyleGAN2's generator): lr x ratio and betas ** ratio, ratio =
    every / (every + 1), so the extra regularisation updates do not speed up or shorten the
    optimiser's memory. ``regularised`` False (the regulariser is off): plain Adam(lr, betas)."""
    ratio = every / (every + 1) if regularised else 1.0
    b1, b2 = (float(b) for b in betas)
    return torch.optim.Adam(params, lr=float(lr) * ratio, betas=(b1**ratio, b2**ratio))


def discriminator_optimizer(params: Iterable[torch.nn.Parameter], lr: float, r1: LazyR1,
                            betas: Sequence[float] = STYLEGAN2_BETAS) -> torch.optim.Adam:
    """The discriminators' Adam, corrected for ``r1``'s lazy updates (see :func:`lazy_adam`)."""
    return lazy_adam(params, lr, betas, r1.every, regularised=r1.weight > 0)


@dataclass
class DiscriminatorTerm:
    """One discriminator's share of the update: ``module(real, *context)`` should score high,
    ``module(fake, *context)`` low. ``context``: inputs given with both (the reference patches
    of a patch co-occurrence discriminator); R1 differentiates with respect to ``real`` only.
    ``loss_key`` / ``r1_key``: the logged names (terms with the same name add up)."""

    module: Callable[..., torch.Tensor]
    real: torch.Tensor
    fake: torch.Tensor
    context: tuple[torch.Tensor, ...] = ()
    loss_key: str = "d_loss"
    r1_key: str = "r1"


@dataclass
class DiscriminatorResult:
    """What an update logged, and each term's (detached) logits of the main update."""

    logs: dict[str, float] = field(default_factory=dict)
    real_logits: list[torch.Tensor] = field(default_factory=list)
    fake_logits: list[torch.Tensor] = field(default_factory=list)


def _add(logs: dict[str, float], key: str, value: torch.Tensor) -> None:
    logs[key] = logs.get(key, 0.0) + float(value.detach())


def discriminator_step(ctx: TrainContext, optimizer: torch.optim.Optimizer,
                       terms: Sequence[DiscriminatorTerm], step: int, r1: LazyR1
                       ) -> DiscriminatorResult:
    """One update of the discriminators behind ``optimizer`` on ``terms``, and on the steps
    ``r1`` is due, a second update with the R1 penalty on every term's reals.

    The fakes are detached (the generator side is not trained here). The logistic loss runs
    under the context's autocast and GradScaler; R1 runs in full precision (second-order
    gradients), unscaled. Grads are switched on for the optimiser's parameters; the caller
    switches them off again for its generator pass."""
    result = DiscriminatorResult()
    if not terms:
        return result
    for group in optimizer.param_groups:
        for p in group["params"]:
            p.requires_grad_(True)
    total = None
    with ctx.autocast():
        for term in terms:
            real_logits = term.module(term.real.detach(), *term.context).float()
            fake_logits = term.module(term.fake.detach(), *term.context).float()
            loss = d_logistic(real_logits, fake_logits)
            total = loss if total is None else total + loss
            _add(result.logs, term.loss_key, loss)
            result.real_logits.append(real_logits.detach())
            result.fake_logits.append(fake_logits.detach())
    optimizer.zero_grad(set_to_none=True)
    ctx.backward(total)
    ctx.step(optimizer)

    if r1.due(step):
        penalty_total = None
        for term in terms:
            real = term.real.detach().requires_grad_(True)
            logits = term.module(real, *term.context)
            penalty = r1_penalty(logits, real)
            _add(result.logs, term.r1_key, penalty)
            # the 0 x logits term keeps every parameter in the graph (DDP's bookkeeping)
            penalty = penalty + 0 * logits.sum()
            penalty_total = penalty if penalty_total is None else penalty_total + penalty
        optimizer.zero_grad(set_to_none=True)
        ctx.backward(r1.scale * penalty_total, scaled=False)
        ctx.step(optimizer, scaled=False)
    return result
