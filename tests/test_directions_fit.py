"""fit_direction (linear SVM / ridge in W+) recovers planted directions; orthogonalisation; labels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from hypernst_cli.pipeline.directions_fit import (
    EncodedSet,
    Sample,
    fit_attributes,
    fit_direction,
    linear_svm,
    orthogonalize,
    ridge,
    utkface_age,
)


def planted(n: int = 500, layers: int = 10, dim: int = 32, noise: float = 0.3, seed: int = 0):
    """W+ latents [N, L, D] (one base code per sample, a little per-layer jitter) whose score is
    their projection on a known unit vector, plus noise."""
    g = torch.Generator().manual_seed(seed)
    n_true = torch.randn(dim, generator=g)
    n_true /= n_true.norm()
    base = torch.randn(n, dim, generator=g) * 2.0 + 0.5  # offset and scale: not unit Gaussian
    latents = base[:, None] + 0.2 * torch.randn(n, layers, dim, generator=g)
    score = latents.mean(1) @ n_true + noise * torch.randn(n, generator=g)
    return latents, score, n_true


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.reshape(-1).double(), b.reshape(-1).double()
    return float(a @ b / (a.norm() * b.norm()))


def test_classification_recovers_a_planted_direction():
    latents, score, n_true = planted()
    fit = fit_direction(latents, (score > 0).float(), "classification")
    assert fit.direction.shape == (1, 32)
    assert fit.direction.norm() == pytest.approx(1.0, abs=1e-5)
    assert cosine(fit.direction, n_true) > 0.9
    assert fit.n_test == 100 and fit.n_train == 400 and fit.accuracy > 0.85
    assert fit.thresholds is None  # binary labels are used as they are


def test_classification_of_a_continuous_score_uses_its_extremes():
    latents, score, n_true = planted()
    fit = fit_direction(latents, score, "classification", extremes=0.3)
    assert cosine(fit.direction, n_true) > 0.9
    assert fit.n_train == pytest.approx(0.6 * 400, abs=2)  # the middle 40 % is left out
    lo, hi = fit.thresholds
    assert lo < hi
    assert fit.accuracy > 0.95 and fit.correlation > 0.9
    meta = fit.metadata()
    assert meta["method"] == "linear-svm" and meta["shape"] == [1, 32] and meta["space"] == "w"


def test_regression_recovers_a_planted_direction():
    latents, score, n_true = planted()
    fit = fit_direction(latents, score * 10 + 40, "regression")  # e.g. ages
    assert cosine(fit.direction, n_true) > 0.9
    assert fit.correlation > 0.9 and fit.accuracy is None
    # the direction points towards larger labels: flipping them flips it
    flipped = fit_direction(latents, -score, "regression")
    assert cosine(flipped.direction, fit.direction) == pytest.approx(-1.0, abs=1e-4)


def test_flat_layers_and_plain_w():
    latents, score, n_true = planted()
    flat = fit_direction(latents, score, "regression", layers="flat")
    assert flat.direction.shape == (10, 32)
    assert flat.direction.norm() == pytest.approx(1.0, abs=1e-5)
    assert cosine(flat.direction.mean(0), n_true) > 0.9
    assert flat.metadata()["space"] == "w+"
    plain = fit_direction(latents.mean(1), score, "classification")  # [N, D] latents
    assert plain.direction.shape == (1, 32) and cosine(plain.direction, n_true) > 0.9


def test_random_labels_do_not_correlate_on_held_out_samples():
    latents, _, _ = planted(n=400)
    labels = torch.randn(400, generator=torch.Generator().manual_seed(7))
    fit = fit_direction(latents, labels, "regression")
    assert abs(fit.correlation) < 0.3


def test_fit_errors():
    latents, score, _ = planted(n=40)
    with pytest.raises(ValueError, match="both classes"):
        fit_direction(latents, torch.ones(40), "classification")
    with pytest.raises(ValueError, match="labels"):
        fit_direction(latents, score[:10], "regression")
    with pytest.raises(ValueError, match="kind"):
        fit_direction(latents, score, "svm")
    with pytest.raises(ValueError, match="layers"):
        fit_direction(latents, score, layers="last")
    with pytest.raises(ValueError, match="N, D"):
        fit_direction(torch.zeros(40), score)


def test_solvers_directly():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 5))
    y = np.sign(x[:, 2] - 0.5 * x[:, 0])
    w, b = linear_svm(x, y, c=10.0)
    assert np.mean(np.sign(x @ w + b) == y) > 0.97
    target = np.array([1.0, -2.0, 0.0, 0.5, 3.0])
    w, b = ridge(x, x @ target + 4.0, l2=1e-6)
    assert np.allclose(w, target, atol=1e-3) and b == pytest.approx(4.0, abs=1e-3)
    wide = rng.normal(size=(20, 100))  # more dimensions than samples: the dual form
    w, _ = ridge(wide, wide[:, 0], l2=1e-4)
    assert np.corrcoef(wide @ w, wide[:, 0])[0, 1] > 0.99


def test_orthogonalize():
    g = torch.Generator().manual_seed(1)
    a, b, c = (torch.nn.functional.normalize(torch.randn(1, 16, generator=g), dim=1) for _ in range(3))
    o = orthogonalize(a, b)
    assert float((o * b).sum()) == pytest.approx(0.0, abs=1e-6)
    assert o.norm() == pytest.approx(1.0, abs=1e-6) and o.shape == a.shape
    expected = a - (a * b).sum() * b
    assert cosine(o, expected) == pytest.approx(1.0, abs=1e-6)
    both = orthogonalize(a, b, c)
    assert abs(float((both * b).sum())) < 1e-6 and abs(float((both * c).sum())) < 1e-6
    with pytest.raises(ValueError, match="span"):
        orthogonalize(b, b)
    with pytest.raises(ValueError, match="layers mode"):
        orthogonalize(a, torch.randn(4, 16))


def test_utkface_age():
    assert utkface_age("26_1_0_20170116171048641.jpg.chip.jpg") == 26
    assert utkface_age(Path("/x/y/1_0_2_20161219194716652.jpg.chip.jpg")) == 1
    assert utkface_age("ffhq_000000.png") is None


def test_fit_attributes_with_conditions():
    latents, score, n_true = planted(n=300)
    g = torch.Generator().manual_seed(3)
    second = torch.randn(300, generator=g) + 0.8 * score  # correlated with the first attribute
    encoded = EncodedSet(samples=[
        Sample(Path(f"{i}.png"), latents[i],
               {"age": float(score[i]), "smile": float(second[i]), "yaw": None})
        for i in range(300)
    ])
    encoded.skip("no_face", "a.png: no face found")
    fits, failures = fit_attributes(encoded, ["age", "smile", "pose"], kind="regression",
                                    conditions={"smile": ["age"]})
    assert set(fits) == {"age", "smile"} and "pose" in failures  # no yaw labels
    assert fits["smile"].orthogonal_to == ["age"]
    assert float((fits["smile"].direction * fits["age"].direction).sum()) == pytest.approx(0, abs=1e-6)
    assert encoded.skip_counts() == {"no_face": 1}


def test_the_default_regularisation_keeps_the_direction_where_the_latents_vary():
    """Few samples in many dimensions: a weakly regularised SVM (C = 1) leans towards directions
    in which the latents barely vary (which a generator hardly renders); the default C finds the
    planted attribute axis, one of the latents' high-variance axes."""
    g = torch.Generator().manual_seed(0)
    spread = torch.full((128,), 0.03)
    spread[:8] = 1.0
    latents = torch.randn(300, 128, generator=g) * spread
    n_true = torch.zeros(128)
    n_true[0] = 1.0
    score = latents @ n_true + 0.5 * torch.randn(300, generator=g)
    weak = fit_direction(latents, score, "classification", c=1.0)
    default = fit_direction(latents, score, "classification")
    assert cosine(default.direction, n_true) > 0.85 > 0.7 > cosine(weak.direction, n_true)
    assert (latents @ default.direction.reshape(-1)).std() > 1.3 * (latents @ weak.direction.reshape(-1)).std()
