"""Adding an optional part to a trained model (train/extend.py): the spatial path, A(s)."""

from __future__ import annotations

import json

import pytest
import torch

from hypernst_cli.errors import UsageError
from hypernst_cli.pipeline.core import encode, render
from hypernst_cli.pipeline.models import INFERENCE_PARTS, load_models
from hypernst_cli.train.extend import extend_model, main


def test_the_new_model_renders_what_the_old_one_did(tiny_detail_model_dir, tmp_path):
    tiny_model_dir = tiny_detail_model_dir  # detail on: the spatial path must switch it off
    dst = extend_model(tiny_model_dir, tmp_path / "spatial", feature_resolution=16)
    config = json.loads((dst / "config.json").read_text())
    assert config["generator"]["feature_resolution"] == 16
    assert config["detail"]["strength"] == 0.0  # F carries the detail: no post-process
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
    dst = extend_model(tiny_model_dir, tmp_path / "spatial", feature_resolution=16)
    with pytest.raises(UsageError, match="already has the spatial path"):
        extend_model(dst, tmp_path / "again", feature_resolution=16)
    with pytest.raises(UsageError, match="feature_resolution"):
        extend_model(tiny_model_dir, tmp_path / "bad", feature_resolution=48)


def test_the_command_never_overwrites(tiny_model_dir, tmp_path, capsys):
    (tmp_path / "taken").mkdir()
    assert main([str(tiny_model_dir), str(tmp_path / "taken"), "--feature-resolution", "16"]) == 2
    assert "exists" in capsys.readouterr().err
    assert main([str(tiny_model_dir), str(tmp_path / "new"), "--feature-resolution", "16"]) == 0


def test_the_global_code_input_starts_at_zero_and_is_then_read(tiny_model_dir, tmp_path):
    """Eq. 2's A(s) added to a model saved without it: same offsets until trained, strict load."""
    from hypernst_cli.pipeline.core import stylize_tensors

    dst = extend_model(tiny_model_dir, tmp_path / "global", global_code=True)
    assert json.loads((dst / "config.json").read_text())["hypernet"]["global_code"] is True
    old = load_models(tiny_model_dir, None, "cpu", INFERENCE_PARTS)
    new = load_models(dst, None, "cpu", INFERENCE_PARTS)
    assert new.hypernet.uses_global_code and not old.hypernet.uses_global_code
    g = torch.Generator().manual_seed(3)
    x = torch.rand(2, 3, 64, 64, generator=g) * 2 - 1
    mask = torch.randint(0, 3, (2, 64, 64), generator=g)
    codes = torch.randn(2, 4, 32, generator=g)
    with torch.no_grad():
        a = stylize_tensors(old.generator, old.hypernet, old.encoder, x, mask, codes)
        b = stylize_tensors(new.generator, new.hypernet, new.encoder, x, mask, codes)
        torch.testing.assert_close(a.images, b.images)
        for head in new.hypernet.heads.values():
            head.global_proj.weight.normal_(0, 0.5)
        c = stylize_tensors(new.generator, new.hypernet, new.encoder, x, mask, codes)
        other = codes.clone()
        other[:, 3] = torch.randn(2, 32, generator=g)  # another A(s), same region codes
        d = stylize_tensors(new.generator, new.hypernet, new.encoder, x, mask, other)
    assert (c.images - a.images).abs().max() > 1e-4
    assert (d.images - c.images).abs().max() > 1e-4
    with pytest.raises(UsageError, match="already reads the global code"):
        extend_model(dst, tmp_path / "again", global_code=True)
    with pytest.raises(UsageError, match="nothing to add"):
        extend_model(tiny_model_dir, tmp_path / "none")
