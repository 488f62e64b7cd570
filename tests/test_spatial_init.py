"""Adding the spatial path to a trained W+-only model (train/spatial_init.py)."""

from __future__ import annotations

import json

import pytest
import torch

from hypernst_cli.errors import UsageError
from hypernst_cli.pipeline.core import encode, render
from hypernst_cli.pipeline.models import INFERENCE_PARTS, load_models
from hypernst_cli.train.spatial_init import add_spatial_path, main


def test_the_new_model_renders_what_the_old_one_did(tiny_model_dir, tmp_path):
    dst = add_spatial_path(tiny_model_dir, tmp_path / "spatial", 16)
    assert json.loads((dst / "config.json").read_text())["generator"]["feature_resolution"] == 16
    old = load_models(tiny_model_dir, None, "cpu", INFERENCE_PARTS)
    new = load_models(dst, None, "cpu", INFERENCE_PARTS)  # strict: every tensor accounted for
    assert new.encoder.feature_head is not None and new.generator.spatial
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        latent = encode(new.encoder, new.generator, x)
        assert latent.features is not None and latent.features.shape[-1] == 16
        torch.testing.assert_close(render(new.generator, latent),
                                   render(old.generator, encode(old.encoder, old.generator, x)))
    # the hyper-network keeps the heads of the layers that still run, and only those
    old_keys = set(old.hypernet.state_dict())
    new_keys = set(new.hypernet.state_dict())
    assert new_keys < old_keys
    for key in new_keys:
        torch.testing.assert_close(new.hypernet.state_dict()[key], old.hypernet.state_dict()[key])


def test_a_model_that_has_the_path_or_a_bad_resolution_is_refused(tiny_model_dir, tmp_path):
    dst = add_spatial_path(tiny_model_dir, tmp_path / "spatial", 16)
    with pytest.raises(UsageError, match="already has the spatial path"):
        add_spatial_path(dst, tmp_path / "again", 16)
    with pytest.raises(UsageError, match="feature_resolution"):
        add_spatial_path(tiny_model_dir, tmp_path / "bad", 48)


def test_the_command_never_overwrites(tiny_model_dir, tmp_path, capsys):
    (tmp_path / "taken").mkdir()
    assert main([str(tiny_model_dir), str(tmp_path / "taken"), "--feature-resolution", "16"]) == 2
    assert "exists" in capsys.readouterr().err
    assert main([str(tiny_model_dir), str(tmp_path / "new"), "--feature-resolution", "16"]) == 0
