"""The one discriminator update (train/discriminator.py): logistic loss, lazy R1, corrected Adam."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from hypernst_cli.train.discriminator import (
    DiscriminatorTerm,
    LazyR1,
    discriminator_optimizer,
    discriminator_step,
    lazy_adam,
)
from hypernst_cli.train.losses import d_logistic
from hypernst_cli.train.trainer import TrainContext

CPU = TrainContext(device=torch.device("cpu"))


class Linear(nn.Module):
    """D(x) = <w, x> (+ <v, context> when given): grad_x D = w, so R1 = |w|^2 exactly."""

    def __init__(self, dim: int = 4) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.arange(1.0, dim + 1) / dim)
        self.v = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        out = x @ self.w
        return out if context is None else out + context.mean(0) @ self.v


def test_lazy_adam_corrects_lr_and_betas_for_the_extra_updates():
    p = [nn.Parameter(torch.zeros(2))]
    group = discriminator_optimizer(p, 0.002, LazyR1(10.0, 16)).param_groups[0]
    ratio = 16 / 17
    assert group["lr"] == pytest.approx(0.002 * ratio)
    assert group["betas"] == pytest.approx((0.0, 0.99**ratio))
    # no R1: nothing to correct
    group = discriminator_optimizer(p, 0.002, LazyR1(0.0, 16), betas=(0.5, 0.9)).param_groups[0]
    assert group["lr"] == pytest.approx(0.002) and group["betas"] == pytest.approx((0.5, 0.9))
    group = lazy_adam(p, 0.01, (0.0, 0.99), every=4).param_groups[0]
    assert group["lr"] == pytest.approx(0.008) and group["betas"] == pytest.approx((0.0, 0.99**0.8))


def _run(r1: LazyR1, steps: int, lr: float = 0.1) -> tuple[Linear, list[dict[str, float]]]:
    torch.manual_seed(0)
    d = Linear()
    opt = torch.optim.SGD(d.parameters(), lr=lr)
    real, fake = torch.randn(5, 4), torch.randn(5, 4)
    logs = [discriminator_step(CPU, opt, [DiscriminatorTerm(d, real, fake)], step, r1).logs
            for step in range(steps)]
    return d, logs


def test_r1_runs_only_every_r1_every_steps_scaled_by_it():
    _, logs = _run(LazyR1(10.0, 3), 7)
    assert [("r1" in row) for row in logs] == [True, False, False, True, False, False, True]
    assert all("d_loss" in row for row in logs)
    _, off = _run(LazyR1(0.0, 3), 4)
    assert not any("r1" in row for row in off)

    # one step: the logistic update, then (R1 due) an SGD step on r1 / 2 x every x |w|^2, whose
    # gradient in w is r1 x every x w
    plain, _ = _run(LazyR1(0.0, 3), 1)
    lazy, (row,) = _run(LazyR1(10.0, 3), 1)
    w = plain.w.detach()
    assert row["r1"] == pytest.approx(float((w**2).sum()), rel=1e-5)
    assert torch.allclose(lazy.w, w - 0.1 * 10.0 * 3 * w, atol=1e-6)


def test_terms_add_up_by_name_with_context_and_detached_fakes():
    torch.manual_seed(0)
    image, patch = Linear(), Linear()
    opt = torch.optim.SGD(list(image.parameters()) + list(patch.parameters()), lr=0.0)
    real, fake = torch.randn(3, 4), torch.randn(3, 4, requires_grad=True)
    q_real, q_fake, ref = torch.randn(2, 4), torch.randn(2, 4), torch.randn(6, 4)
    terms = [DiscriminatorTerm(image, real, fake),
             DiscriminatorTerm(patch, q_real, q_fake, context=(ref,), loss_key="d_patch_loss",
                               r1_key="r1_patch"),
             DiscriminatorTerm(patch, q_real, q_fake, context=(ref,))]  # shares d_loss / r1
    image.requires_grad_(False)  # a generator pass left them off: the update turns them on
    result = discriminator_step(CPU, opt, terms, 0, LazyR1(1.0, 1))
    with torch.no_grad():
        l_image = float(d_logistic(image(real), image(fake)))
        l_patch = float(d_logistic(patch(q_real, ref), patch(q_fake, ref)))
    assert result.logs["d_loss"] == pytest.approx(l_image + l_patch, rel=1e-5)
    assert result.logs["d_patch_loss"] == pytest.approx(l_patch, rel=1e-5)
    r1_image, r1_patch = float((image.w.detach()**2).sum()), float((patch.w.detach()**2).sum())
    assert result.logs["r1"] == pytest.approx(r1_image + r1_patch, rel=1e-5)
    assert result.logs["r1_patch"] == pytest.approx(r1_patch, rel=1e-5)
    assert all(p.requires_grad for p in image.parameters())
    assert fake.grad is None  # the generator side is not trained here
    assert len(result.real_logits) == 3 and result.real_logits[0].shape == (3,)
    assert discriminator_step(CPU, opt, [], 0, LazyR1(1.0, 1)).logs == {}


def test_a_grad_scaler_sees_the_logistic_update_and_not_r1():
    """GradScaler allows one step per optimizer between updates: R1 (full precision) must not
    go through it, the logistic loss must."""
    scaler = torch.amp.GradScaler("cpu", init_scale=4.0)
    ctx = TrainContext(device=torch.device("cpu"), scaler=scaler)
    d = Linear()
    opt = torch.optim.SGD(d.parameters(), lr=0.1)
    term = DiscriminatorTerm(d, torch.randn(5, 4), torch.randn(5, 4))
    calls = []
    scale = scaler.scale
    scaler.scale = lambda loss: calls.append(1) or scale(loss)  # type: ignore[method-assign]
    for step in range(3):
        logs = discriminator_step(ctx, opt, [term], step, LazyR1(10.0, 1)).logs
        scaler.update()
        assert "r1" in logs
    assert len(calls) == 3  # once per step: the logistic loss only
