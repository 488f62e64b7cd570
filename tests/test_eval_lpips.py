"""LPIPS: random-backbone runs (the real backbones cannot be downloaded here), local weight
lookup (registry entry, torch hub cache, missing), torchvision -> lpips name mapping."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from hypernst_cli.errors import WeightsIntegrityError, WeightsNotFoundError
from hypernst_cli.eval.lpips_metric import RANDOM_NOTE, LPIPSMetric, backbone_state
from hypernst_cli.weights import registry


def _face(seed: int = 0, size: int = 64) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    blob = np.exp(-((x - 0.5) ** 2 + (y - 0.45) ** 2) / 0.05)
    img = np.stack([80 + 150 * blob, 60 + 120 * blob * x, 90 + 60 * y], axis=-1)
    return np.clip(img + rng.normal(0, 4, img.shape), 0, 255).astype(np.uint8)


def _noisy(img: np.ndarray, sigma: float, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(img + rng.normal(0, sigma, img.shape), 0, 255).astype(np.uint8)


@pytest.fixture
def no_local_weights(monkeypatch, tmp_path):
    """An empty torch hub cache and a registry without the backbone entries."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(registry, "load_registry", lambda *a, **k: {})
    return tmp_path / "torch" / "hub" / "checkpoints"


@pytest.fixture(autouse=True)
def no_downloads(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a download was attempted")

    # torchvision's weight loading ends in torch.hub's downloader, looked up at call time
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)
    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    monkeypatch.setattr(torch.hub, "urlopen", refuse)


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_random_backbone_zero_for_identical_and_grows_with_noise(net):
    metric = LPIPSMetric(net, weights="random")
    assert metric.available and metric.note == RANDOM_NOTE and "random" in metric.source
    img = _face()
    assert metric(img, img) == pytest.approx(0.0, abs=1e-6)
    values = [metric(img, _noisy(img, s)) for s in (4, 16, 48)]
    assert values[0] > 1e-4 and values[0] < values[1] < values[2], values
    # an output of another size is compared at the content's size
    bigger = np.asarray(__import__("PIL.Image", fromlist=["Image"]).fromarray(img).resize((96, 96)))
    assert metric(img, bigger) < values[2]
    # the cached-content path computes exactly what lpips' own forward does
    for sigma in (4, 48):
        out = _noisy(img, sigma)
        assert metric(img, out) == pytest.approx(metric.reference_distance(img, out), rel=1e-5)
    assert metric(img, bigger) == pytest.approx(metric.reference_distance(img, bigger), rel=1e-5)


def test_random_backbone_is_seeded():
    img, out = _face(), _noisy(_face(), 20)
    a = LPIPSMetric("alex", weights="random", seed=3)(img, out)
    b = LPIPSMetric("alex", weights="random", seed=3)(img, out)
    c = LPIPSMetric("alex", weights="random", seed=4)(img, out)
    assert a == b and a != c


def _alexnet_features_file(path: Path, seed: int = 0) -> dict[str, torch.Tensor]:
    """A file in torchvision's alexnet layout (features.* and a classifier tensor we ignore)."""
    import torchvision

    torch.manual_seed(seed)
    state = {
        k: v
        for k, v in torchvision.models.alexnet().state_dict().items()
        if k.startswith("features.")
    }
    state["classifier.1.weight"] = torch.zeros(2, 2)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return state


def test_missing_backbone_is_unavailable_with_the_fix(no_local_weights):
    metric = LPIPSMetric("alex")
    assert not metric.available
    assert "hypernst download lpips-alexnet-backbone" in metric.missing_hint
    assert "alexnet-owt-7be5be79.pth" in metric.missing_hint
    assert metric(_face(), _face()) is None
    assert metric.evaluate(_face(), _face()) == {"lpips_alex": None}
    vgg = LPIPSMetric("vgg")
    assert not vgg.available and "hypernst download lpips-vgg16-backbone" in vgg.missing_hint


def test_backbone_from_the_hub_cache_loads_into_the_trunk(no_local_weights):
    state = _alexnet_features_file(no_local_weights / "alexnet-owt-7be5be79.pth")
    metric = LPIPSMetric("alex")
    assert metric.available and metric.note is None
    assert metric.weights_path == no_local_weights / "alexnet-owt-7be5be79.pth"
    metric.prepare()
    trunk = metric._model.net
    assert torch.equal(getattr(trunk.slice1, "0").weight, state["features.0.weight"])
    assert torch.equal(getattr(trunk.slice5, "10").bias, state["features.10.bias"])
    img = _face()
    assert metric(img, img) == pytest.approx(0.0, abs=1e-6)
    assert metric(img, _noisy(img, 30)) > 0


def test_registry_entry_wins_over_the_hub_cache(no_local_weights, tmp_path, monkeypatch):
    _alexnet_features_file(no_local_weights / "alexnet-owt-7be5be79.pth", seed=0)
    own = tmp_path / "own" / "alexnet.pth"
    _alexnet_features_file(own, seed=1)
    entry = registry.WeightsEntry(name="lpips-alexnet-backbone", kind="backbone", filename="a.pth")
    monkeypatch.setattr(registry, "load_registry", lambda *a, **k: {entry.name: entry})
    monkeypatch.setattr(registry, "locate", lambda e: (own, "downloaded"))
    assert LPIPSMetric("alex").weights_path == own


def test_explicit_weights_path_and_bad_files(tmp_path):
    with pytest.raises(WeightsNotFoundError):
        LPIPSMetric("alex", weights=tmp_path / "nope.pth")
    bad = tmp_path / "bad.pth"
    state = _alexnet_features_file(bad)
    del state["features.3.weight"]
    torch.save(state, bad)
    with pytest.raises(WeightsIntegrityError, match="features.3.weight"):
        LPIPSMetric("alex", weights=bad).prepare()
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsIntegrityError):
        LPIPSMetric("alex", weights=garbage).prepare()


def test_vgg_names_map_onto_lpips_slices():
    import warnings

    import lpips
    from torchvision.models import vgg

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trunk = lpips.pretrained_networks.vgg16(pretrained=False)
    features = vgg.make_layers(vgg.cfgs["D"]).state_dict()  # torchvision's vgg16 .features
    mapped = backbone_state({f"features.{k}": v for k, v in features.items()}, trunk, Path("x"))
    trunk.load_state_dict(mapped)  # strict: every trunk tensor found
    assert torch.equal(getattr(trunk.slice5, "28").weight, features["28.weight"])
    wrong = {f"features.{k}": v for k, v in features.items()}
    wrong["features.0.weight"] = torch.zeros(1)
    with pytest.raises(WeightsIntegrityError, match="shape"):
        backbone_state(wrong, trunk, Path("x"))
