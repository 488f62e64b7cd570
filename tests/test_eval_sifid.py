"""SIFID: the Fréchet distance, the Inception stem (names as in pytorch-fid's file), random weights,
local weight lookup and the missing-weights path."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hypernst_cli.errors import WeightsIntegrityError
from hypernst_cli.eval.sifid import (
    HUB_FILE,
    RANDOM_NOTE,
    InceptionStem,
    SIFIDMetric,
    feature_statistics,
    frechet_distance,
)
from hypernst_cli.weights import registry


def _image(seed: int = 0, size: int = 64) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    img = np.stack([60 + 150 * x, 90 + 100 * np.sin(6 * y), 120 + 80 * x * y], axis=-1)
    return np.clip(img + rng.normal(0, 5, img.shape), 0, 255).astype(np.uint8)


def _noisy(img: np.ndarray, sigma: float) -> np.ndarray:
    rng = np.random.default_rng(9)
    return np.clip(img + rng.normal(0, sigma, img.shape), 0, 255).astype(np.uint8)


@pytest.fixture
def hub_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(registry, "load_registry", lambda *a, **k: {})
    return tmp_path / "torch" / "hub" / "checkpoints"


def test_frechet_distance_known_values():
    mu, sigma = np.zeros(4), np.eye(4)
    assert frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0.0, abs=1e-9)
    # 1-D: (m1 - m2)^2 + (s1 - s2)^2 for standard deviations s1, s2
    assert frechet_distance(
        np.array([1.0]), np.array([[4.0]]), np.array([3.0]), np.array([[9.0]])
    ) == (pytest.approx(4.0 + 1.0))
    # diagonal covariances: sum over dimensions
    d = frechet_distance(np.zeros(2), np.diag([1.0, 4.0]), np.ones(2), np.diag([4.0, 16.0]))
    assert d == pytest.approx(2.0 + 1.0 + 4.0)
    # a singular product takes the eps path and stays finite
    singular = np.zeros((3, 3))
    singular[0, 0] = 1.0
    assert np.isfinite(frechet_distance(np.zeros(3), singular, np.zeros(3), singular))
    with pytest.raises(ValueError):
        frechet_distance(np.zeros(2), np.eye(2), np.zeros(3), np.eye(3))


def test_stem_names_and_shapes_match_torchvision_inception():
    """pytorch-fid's file is a torchvision Inception3 state dict: our names must be a subset."""
    from torchvision.models.inception import Inception3

    full = Inception3(num_classes=1008, aux_logits=False, init_weights=False).state_dict()
    for layer, channels in (("pool1", 64), ("conv4a", 192)):
        stem = InceptionStem(layer)
        own = stem.state_dict()
        assert set(own) <= set(full)
        assert all(own[k].shape == full[k].shape for k in own)
        assert stem.Conv2d_1a_3x3.bn.eps == pytest.approx(0.001)
        out = stem(torch.rand(1, 3, 64, 64))
        assert out.shape[1] == channels == stem.channels
    # pool1: stride-2 conv (31), 3x3 conv (29), padded 3x3 (29), 3x3/2 max-pool -> 14
    assert InceptionStem()(torch.rand(1, 3, 64, 64)).shape == (1, 64, 14, 14)


def test_random_weights_zero_for_identical_and_grow_with_noise():
    metric = SIFIDMetric(weights="random")
    assert metric.available and metric.note == RANDOM_NOTE and "random" in metric.source
    img = _image()
    assert metric(img, img) == pytest.approx(0.0, abs=1e-6)
    values = [metric(img, _noisy(img, s)) for s in (5, 20, 60)]
    assert 0 < values[0] < values[1] < values[2], values
    assert len(metric._cache) == 1  # the style's statistics were computed once
    conv4a = SIFIDMetric(weights="random", layer="conv4a")
    assert conv4a(img, img) == pytest.approx(0.0, abs=1e-6)
    assert conv4a(img, _noisy(img, 20)) > 0


def test_statistics_are_over_spatial_positions():
    stem = InceptionStem().eval()
    mu, sigma = feature_statistics(stem, _image(size=64))
    assert mu.shape == (64,) and sigma.shape == (64, 64)
    np.testing.assert_allclose(sigma, sigma.T, atol=1e-9)


def test_missing_weights_are_unavailable_with_the_fix(hub_dir):
    metric = SIFIDMetric()
    assert not metric.available
    assert (
        "hypernst download sifid-inception" in metric.missing_hint
        and HUB_FILE in metric.missing_hint
    )
    assert metric(_image(), _image()) is None


def test_fid_inception_file_loads_strictly_from_the_hub_cache(hub_dir):
    from torchvision.models.inception import Inception3

    torch.manual_seed(0)
    net = Inception3(num_classes=1008, aux_logits=False, init_weights=False)
    # The stem's tensors plus a few of the rest, as in the real file; no BN counters (old files).
    state = {
        k: v
        for k, v in net.state_dict().items()
        if (k.startswith("Conv2d_") or k.startswith("Mixed_5b.branch1x1"))
        and not k.endswith("num_batches_tracked")
    }
    hub_dir.mkdir(parents=True)
    torch.save(state, hub_dir / HUB_FILE)
    metric = SIFIDMetric(layer="conv4a")
    assert metric.available and metric.weights_path == hub_dir / HUB_FILE
    metric.prepare()
    assert torch.equal(metric._stem.Conv2d_4a_3x3.conv.weight, state["Conv2d_4a_3x3.conv.weight"])
    assert torch.equal(
        metric._stem.Conv2d_1a_3x3.bn.running_var, state["Conv2d_1a_3x3.bn.running_var"]
    )
    img = _image()
    assert metric(img, img) == pytest.approx(0.0, abs=1e-6)

    del state["Conv2d_2b_3x3.bn.weight"]
    torch.save(state, hub_dir / HUB_FILE)
    with pytest.raises(WeightsIntegrityError, match="Conv2d_2b_3x3.bn.weight"):
        SIFIDMetric().prepare()
