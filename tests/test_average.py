"""train/average.py: a model between two fine-tunes of one model (tiny config)."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from hypernst_cli.errors import UsageError
from hypernst_cli.train.average import average_models, main
from hypernst_cli.weights.checkpoint import load_model_folder, save_model_folder


def _fine_tune(src, dst, seed):
    """``src`` with its hyper-network moved by seeded noise (a stand-in for another fine-tune)."""
    folder = load_model_folder(src)
    g = torch.Generator().manual_seed(seed)
    networks = {n: dict(t) for n, t in folder.networks.items()}
    networks["hypernet"] = {k: v + 0.1 * torch.randn(v.shape, generator=g).to(v.dtype)
                            for k, v in networks["hypernet"].items()}
    return save_model_folder(dst, networks, folder.config, folder.extra, metrics=folder.metrics,
                             card=folder.card)


def test_the_average_is_the_weighted_mean_of_the_named_networks_only(tiny_model_dir, tmp_path):
    a = _fine_tune(tiny_model_dir, tmp_path / "a", 1)
    b = _fine_tune(tiny_model_dir, tmp_path / "b", 2)
    fa, fb = load_model_folder(a), load_model_folder(b)
    for weight in (0.0, 0.3, 1.0):
        out = load_model_folder(average_models(a, b, tmp_path / f"avg{weight}", weight=weight))
        for k, v in out.networks["hypernet"].items():
            expected = (1 - weight) * fa.networks["hypernet"][k] + weight * fb.networks["hypernet"][k]
            torch.testing.assert_close(v, expected)
        for k, v in out.networks["generator"].items():  # not named: B's
            assert torch.equal(v, fb.networks["generator"][k])
        assert out.config == fb.config
        assert out.metrics["averaged"]["weight_b"] == weight and "## Averaged" in out.card
    # the averaged model loads and runs like any other
    from hypernst_cli.pipeline.stylize import HyperNSTPipeline

    HyperNSTPipeline.load(weights=str(tmp_path / "avg0.3"), config="tiny", device="cpu",
                          backend="dlib", seed=0)


def test_models_that_are_not_fine_tunes_of_one_model_are_refused(tiny_model_dir, tmp_path):
    a = _fine_tune(tiny_model_dir, tmp_path / "a", 1)
    other = tmp_path / "other"
    shutil.copytree(a, other)
    cfg = json.loads((other / "config.json").read_text())
    cfg["palette"] = {"amount": 0.5}
    (other / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(UsageError, match="different configs"):
        average_models(a, other, tmp_path / "x")
    with pytest.raises(UsageError, match="between 0 and 1"):
        average_models(a, a, tmp_path / "y", weight=1.5)
    with pytest.raises(UsageError, match="missing"):
        average_models(a, a, tmp_path / "z", networks=("nothing",))
    # the script never writes over an existing folder: one line and exit code 2
    assert main([str(a), str(a), str(other)]) == 2
    assert main([str(a), str(a), str(tmp_path / "fresh"), "--weight", "0.5"]) == 0
