"""The texture distance (eval/texture.py): what it ignores (where strokes fall, tone and colour)
and what it sees (whether the strokes are there), and that it trains as a loss."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hypernst_cli.eval.texture import patch_swd, texture_distance


def line_screen(period: float = 5.0, shift: int = 0, size: int = 96) -> np.ndarray:
    y, x = np.mgrid[:size, :size]
    ink = np.sin(2 * np.pi * (x + shift + 0.5 * y) / period) > 0
    return np.repeat((ink * 200 + 30).astype(np.uint8)[..., None], 3, axis=2)


def test_a_texture_out_of_phase_is_close_and_a_flat_image_is_far():
    lines = line_screen()
    shifted = line_screen(shift=2)
    flat = np.full_like(lines, int(lines.mean()))
    assert texture_distance(lines, lines) == 0.0
    near, far = texture_distance(lines, shifted), texture_distance(lines, flat)
    assert near < 2.0 and far > 40.0
    # L1 says the opposite: the flat image is nearer than the shifted texture
    l1 = lambda a, b: np.abs(a.astype(float) - b).mean()  # noqa: E731
    assert l1(lines, flat) < l1(lines, shifted)


def test_tone_and_colour_are_left_to_l1():
    lines = line_screen().astype(np.int16)
    tinted = np.clip(lines + np.array([20, -10, 5]), 0, 255).astype(np.uint8)
    assert texture_distance(line_screen(), tinted) < 1.0
    # a different stroke period is a different texture
    assert texture_distance(line_screen(), line_screen(period=12.0)) > 10.0


def test_the_metric_is_deterministic_and_symmetric():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    b = line_screen(size=64)
    assert texture_distance(a, b) == texture_distance(a, b) == pytest.approx(texture_distance(b, a))
    with pytest.raises(ValueError, match="one shape"):
        patch_swd(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 9, 9))


def test_as_a_loss_it_grows_strokes_on_a_flat_image():
    """Gradient steps on the distance alone turn a flat grey into lines of the target's kind
    (not its phase: the pixel L1 to the target stays large)."""
    target = torch.from_numpy(line_screen(size=48)).permute(2, 0, 1)[None].float() / 127.5 - 1
    x = torch.zeros_like(target).add_(target.mean()).requires_grad_(True)
    opt = torch.optim.Adam([x], lr=0.05)
    gen = torch.Generator().manual_seed(0)
    start = float(patch_swd(x.detach(), target, generator=gen).mean())
    for _ in range(60):
        opt.zero_grad()
        patch_swd(x, target, projections=16, generator=gen).mean().backward()
        opt.step()
    end = float(patch_swd(x.detach(), target, generator=torch.Generator().manual_seed(0)).mean())
    assert end < 0.5 * start, (start, end)
    assert float(x.detach().std()) > 0.3  # contrast appeared where there was none


def test_a_sample_of_the_windows_estimates_the_distance():
    """``max_patches`` (the training loss at 256 px): a random sample of the windows gives about
    the full distance, and with at least as many as there are it is the full distance."""
    t = lambda a: torch.from_numpy(a).permute(2, 0, 1)[None].float()  # noqa: E731
    lines, coarse = t(line_screen(size=128)), t(line_screen(period=12.0, size=128))
    flat = torch.full_like(lines, float(lines.mean()))

    def swd(a, b, **kw):
        return float(patch_swd(a, b, generator=torch.Generator().manual_seed(0), **kw)[0])

    for other in (flat, coarse):
        full = swd(lines, other)
        assert full > 10.0
        sampled = swd(lines, other, max_patches=2000)
        assert sampled == pytest.approx(full, rel=0.1) and sampled != full  # a sample was taken
        assert swd(lines, other, max_patches=124 * 124) == full
    assert swd(lines, lines, max_patches=2000) == 0.0
