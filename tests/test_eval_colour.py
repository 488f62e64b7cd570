"""Colour statistics: Lab conversion, sliced Wasserstein distance, Reinhard transfer, the metric."""

from __future__ import annotations

import numpy as np
import pytest

from hypernst_cli.eval.colour import (
    ColourMetric,
    colour_distance,
    colour_transfer,
    lab_to_rgb,
    rgb_to_lab,
    sliced_wasserstein,
)
from hypernst_cli.faces.regions import BACKGROUND, FACE, HAIR


def _image(seed: int = 0, size: int = 64) -> np.ndarray:
    rng = np.random.default_rng(seed)
    # smooth colour gradients plus texture: a plausible photo-like colour distribution
    y, x = np.mgrid[0:size, 0:size] / size
    base = np.stack([0.2 + 0.6 * x, 0.3 + 0.4 * y, 0.5 + 0.3 * x * y], axis=-1) * 255
    return np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)


def test_lab_known_values_and_round_trip():
    lab = rgb_to_lab(np.array([[[255, 255, 255], [0, 0, 0], [255, 0, 0]]], dtype=np.uint8))
    np.testing.assert_allclose(lab[0, 0], [100, 0, 0], atol=0.01)
    np.testing.assert_allclose(lab[0, 1], [0, 0, 0], atol=0.01)
    np.testing.assert_allclose(lab[0, 2], [53.24, 80.09, 67.20], atol=0.05)  # sRGB red, D65
    img = _image(1)
    back = lab_to_rgb(rgb_to_lab(img))
    assert np.abs(back.astype(int) - img.astype(int)).max() <= 1


def test_swd_is_zero_for_identical_sets_and_matches_a_known_shift():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(2000, 3))
    assert sliced_wasserstein(a, a) == 0.0
    assert sliced_wasserstein(a, rng.permutation(a)) == pytest.approx(0.0, abs=1e-12)
    # a translation by t: every 1-D projection shifts by <t, u>; E[<t,u>^2] = |t|^2 / 3 in 3-D
    t = np.array([3.0, 0.0, 0.0])
    d = sliced_wasserstein(a, a + t, n_directions=2000)
    assert d == pytest.approx(3.0 / np.sqrt(3.0), rel=0.05)
    with pytest.raises(ValueError):
        sliced_wasserstein(a, np.zeros((0, 3)))


def test_colour_distance_grows_with_colour_shift_and_noise():
    img = _image(2)
    assert colour_distance(img, img)["overall"] == pytest.approx(0.0, abs=1e-9)
    shifts = []
    for s in (0, 10, 25, 50):
        shifted = np.clip(img.astype(int) + np.array([s, 0, -s]), 0, 255).astype(np.uint8)
        shifts.append(colour_distance(img, shifted)["overall"])
    assert shifts[0] == pytest.approx(0.0, abs=1e-9)
    assert all(b > a + 0.5 for a, b in zip(shifts, shifts[1:], strict=False)), shifts
    rng = np.random.default_rng(3)
    noisy = [
        colour_distance(img, np.clip(img + rng.normal(0, s, img.shape), 0, 255).astype(np.uint8))[
            "overall"
        ]
        for s in (5, 20, 60)
    ]
    assert noisy[0] < noisy[1] < noisy[2], noisy


def test_colour_distance_per_region():
    img = _image(4)
    mask = np.full(img.shape[:2], BACKGROUND, np.uint8)
    mask[16:48, 16:48] = FACE
    mask[:8] = HAIR
    out = img.copy()
    out[mask == FACE] = np.clip(out[mask == FACE].astype(int) + 40, 0, 255)  # only the face moves
    d = colour_distance(img, out, reference_mask=mask, output_mask=mask)
    assert d["face"] > 10 and d["overall"] > 0
    assert d["background"] == pytest.approx(0.0, abs=1e-9)
    assert d["hair"] == pytest.approx(0.0, abs=1e-9)
    no_hair = np.where(mask == HAIR, BACKGROUND, mask)
    assert colour_distance(img, out, reference_mask=no_hair, output_mask=mask)["hair"] is None
    with pytest.raises(ValueError):
        colour_distance(img, out, reference_mask=mask[:10], output_mask=mask)


def test_colour_transfer_matches_lab_moments_and_lowers_the_distance():
    content, style = _image(5), np.clip(_image(6)[..., ::-1] * 0.6 + 40, 0, 255).astype(np.uint8)
    out = colour_transfer(content, style)
    assert out.dtype == np.uint8 and out.shape == content.shape
    lo, ls = rgb_to_lab(out).reshape(-1, 3), rgb_to_lab(style).reshape(-1, 3)
    np.testing.assert_allclose(lo.mean(0), ls.mean(0), atol=1.0)
    np.testing.assert_allclose(lo.std(0), ls.std(0), rtol=0.1, atol=1.0)
    before = colour_distance(style, content)["overall"]
    after = colour_distance(style, out)["overall"]
    assert after < 0.5 * before, (before, after)
    flat = np.full_like(content, 128)
    flat_out = colour_transfer(flat, style)  # no spread to scale: only the mean moves
    assert (flat_out == flat_out[0, 0]).all() and not (flat_out == flat).all()


def test_colour_metric_with_a_parser_adds_region_columns():
    img = _image(7)
    calls = []

    def parser(image: np.ndarray) -> np.ndarray:
        calls.append(1)
        m = np.zeros(image.shape[:2], np.uint8)
        m[:, 32:] = FACE
        return m

    metric = ColourMetric(parser=parser)
    assert metric.row_keys() == ["colour", "colour_background", "colour_face", "colour_hair"]
    row = metric.evaluate(img, img)
    assert row["colour"] == pytest.approx(0.0, abs=1e-9) and row["colour_hair"] is None
    metric.evaluate(img, img)
    assert len(calls) == 3  # the style's mask is cached: 1 + 2 output masks
    summary = metric.summarize([row, {**row, "colour": 2.0}])
    assert summary["colour"] == pytest.approx(1.0) and summary["colour_hair"] is None
    assert ColourMetric().evaluate(img, img) == {"colour": pytest.approx(0.0, abs=1e-9)}
