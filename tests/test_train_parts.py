"""Training building blocks: augmentation, adaptive p, GAN terms, EMA, LPIPS found or dropped,
stage 2's style guidance terms."""

from __future__ import annotations

import pytest
import torch

from hypernst_cli.train.augment import AdaptiveP, augment
from hypernst_cli.train.losses import (
    d_logistic,
    ema_decay,
    ema_update,
    find_lpips,
    g_nonsaturating,
    r1_penalty,
    reconstruction_loss,
    region_colour_loss,
    rgb_to_lab,
    structure_loss,
)


def test_augment_identity_at_zero_and_differentiable():
    torch.manual_seed(0)
    x = torch.rand(4, 3, 32, 32) * 2 - 1
    assert torch.equal(augment(x, 0.0), x)
    x.requires_grad_(True)
    y = augment(x, 1.0)
    assert y.shape == x.shape and not torch.allclose(y, x)
    y.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_adaptive_p_follows_the_sign_of_d_real():
    ada = AdaptiveP(target=0.6, speed_kimg=0.01, batch_images=4, interval=2)
    for step in range(4):  # D sure of the reals: overfitting -> p grows
        ada.observe(torch.ones(4))
        ada.update(step)
    grown = ada.p
    assert grown > 0
    for step in range(4, 8):
        ada.observe(-torch.ones(4))
        ada.update(step)
    assert ada.p < grown
    again = AdaptiveP(0.6, 0.01, 4, 2)
    again.load(ada.state())
    assert again.p == ada.p


def test_gan_terms():
    big = torch.full((8, 1), 20.0)
    assert g_nonsaturating(big) < 1e-6 and g_nonsaturating(-big) > 19
    assert d_logistic(big, -big) < 1e-6
    x = torch.randn(3, 5, requires_grad=True)
    logits = (x * 2).sum(1)  # gradient 2 everywhere: |grad|^2 = 4 * 5
    assert float(r1_penalty(logits, x)) == pytest.approx(20.0)


def test_ema():
    a, b = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    before = a.weight.detach().clone()
    ema_update(a, b, 0.75)
    assert torch.allclose(a.weight, 0.75 * before + 0.25 * b.weight)
    assert ema_decay(32, 10.0) == pytest.approx(0.5 ** (32 / 10000))


def test_lpips_missing_is_dropped(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))
    monkeypatch.setenv("HYPERNST_HOME", str(tmp_path / "home"))
    module, why = find_lpips("alex")
    if module is not None:
        pytest.skip("an LPIPS backbone is installed on this machine")
    assert why
    loss, parts = reconstruction_loss(torch.zeros(1, 3, 8, 8), torch.ones(1, 3, 8, 8), l2=1.0,
                                      lpips_weight=0.8, lpips=None)
    assert float(loss) == pytest.approx(1.0) and "lpips" not in parts


def test_lpips_found_is_used(monkeypatch, tmp_path):
    """A local AlexNet file (here one with random weights, in torch hub's cache) is picked up and
    the term becomes part of the loss, with gradients to the image."""
    from torchvision.models import alexnet

    hub = tmp_path / "torch" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    torch.save(alexnet(weights=None).state_dict(), hub / "alexnet-owt-7be5be79.pth")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    module, why = find_lpips("alex")
    assert module is not None, why
    out = torch.zeros(1, 3, 64, 64, requires_grad=True)
    loss, parts = reconstruction_loss(out, torch.rand(1, 3, 64, 64) * 2 - 1, l2=1.0,
                                      lpips_weight=0.8, lpips=module)
    assert "lpips" in parts and float(parts["lpips"]) > 0
    loss.backward()
    assert out.grad.abs().sum() > 0
    assert not any(p.requires_grad for p in module.parameters())


def test_train_cli_show_config_and_run_dir_guard(run_cli, tmp_path):
    import tomllib

    res = run_cli("train", "stylize", "loss.style=3", "steps=7", "--show-config")
    assert res.exit_code == 0, res.stderr
    cfg = tomllib.loads(res.stdout)
    assert cfg["stage"] == "stylize" and cfg["loss"]["style"] == 3 and cfg["steps"] == 7
    assert run_cli("train", "stylize", "loss.stlye=3", "--show-config").exit_code == 2
    assert run_cli("train", "painting", "--show-config").exit_code == 2
    assert run_cli("train", "stylize").exit_code == 2  # no -o RUN_DIR
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    (tmp_path / "run" / "checkpoints" / "step-00000001.safetensors").write_bytes(b"x")
    res = run_cli("train", "stylize", "-o", tmp_path / "run")
    assert res.exit_code == 2 and "--resume" in res.stderr


def test_differentiable_lab_matches_the_evaluation_colour_space():
    from hypernst_cli.eval.colour import rgb_to_lab as lab_numpy

    rgb = torch.randint(0, 256, (1, 3, 5, 7), generator=torch.Generator().manual_seed(0))
    ours = rgb_to_lab(rgb.float() / 127.5 - 1)[0].permute(1, 2, 0).numpy() * 100
    theirs = lab_numpy(rgb[0].permute(1, 2, 0).numpy().astype("uint8"))
    assert abs(ours - theirs).max() < 0.05


def _two_region_image(face_rgb, background_rgb):
    """A 16x16 image: left half region 1 (face) in one colour, right half region 0 in another."""
    image = torch.empty(1, 3, 16, 16)
    image[:, :, :, :8] = torch.tensor(face_rgb).view(1, 3, 1, 1)
    image[:, :, :, 8:] = torch.tensor(background_rgb).view(1, 3, 1, 1)
    mask = torch.zeros(1, 16, 16, dtype=torch.long)
    mask[:, :, :8] = 1
    return image, mask


def test_region_colour_loss_compares_colours_region_by_region():
    red, blue = [0.8, -0.8, -0.8], [-0.8, -0.8, 0.8]
    out, out_mask = _two_region_image(red, blue)
    assert float(region_colour_loss(out, out_mask, out, out_mask, 3, min_pixels=8)) < 1e-3
    # the same two colours, but in the other regions: the region-matched loss sees the swap
    swapped, swapped_mask = _two_region_image(blue, red)
    assert float(region_colour_loss(out, out_mask, swapped, swapped_mask, 3, min_pixels=8)) > 0.5
    # ... whereas a pixel shuffle that keeps each region's colours costs nothing
    flipped = out.flip(-2)
    assert float(region_colour_loss(flipped, out_mask, out, out_mask, 3, min_pixels=8)) < 1e-3
    # no region in common: the whole images are compared
    all_hair = torch.full_like(out_mask, 2)
    whole = region_colour_loss(out, out_mask, swapped, all_hair, 3, min_pixels=8)
    assert float(whole) < 1e-3  # same colour distribution overall


def test_region_colour_loss_gradient_moves_colours_to_the_target():
    target, mask = _two_region_image([0.6, 0.2, -0.4], [-0.5, 0.1, 0.7])
    x = torch.zeros_like(target, requires_grad=True)
    opt = torch.optim.Adam([x], lr=0.05)
    first = None
    for _ in range(60):
        loss = region_colour_loss(x, mask, target, mask, 3, min_pixels=8)
        first = float(loss.detach()) if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss.detach()) < 0.2 * first


def test_structure_loss_ignores_colour_and_tone_shifts_but_not_edges():
    g = torch.Generator().manual_seed(0)
    content = torch.rand(2, 3, 32, 32, generator=g) * 2 - 1
    shifted = content + torch.tensor([0.3, -0.1, 0.2]).view(1, 3, 1, 1)
    assert float(structure_loss(shifted, content)) < 1e-6
    other = torch.rand(2, 3, 32, 32, generator=g) * 2 - 1
    assert float(structure_loss(other, content)) > 0.1
