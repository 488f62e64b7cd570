"""Patch co-occurrence discriminator (its patches: tests/test_patches.py)."""

from __future__ import annotations

import pytest
import torch

from hypernst_cli.configs import get_config
from hypernst_cli.models.patch_disc import PatchCooccurrenceDiscriminator, build_patch_disc


def test_discriminator_pairs_queries_with_aggregated_references():
    torch.manual_seed(0)
    d = build_patch_disc(get_config("tiny").patch_disc)
    s = d.patch_size
    query = torch.randn(2, 3, 3, s, s, requires_grad=True)
    ref = torch.randn(2, 4, 3, s, s)
    logits = d(query, ref)
    assert logits.shape == (2, 3)
    # the reference is a set (mean of its features); queries are scored one by one
    assert torch.allclose(d(query, ref.flip(1)), logits, atol=1e-5)
    assert torch.allclose(d(query.flip(1), ref), logits.flip(1), atol=1e-5)
    # a different reference changes the verdict
    assert (d(query, torch.randn_like(ref)) - logits).abs().max() > 1e-6
    logits.sum().backward()
    assert query.grad is not None and query.grad.abs().sum() > 0
    with pytest.raises(ValueError):
        d.extract_features(torch.randn(1, 3, s + 1, s + 1))


@pytest.mark.parametrize("name", ["compact", "paper"])
def test_configs_build_with_swapping_autoencoder_shapes(name):
    cfg = get_config(name).patch_disc
    with torch.device("meta"):
        d = build_patch_disc(cfg)
        feats = d.extract_features(torch.empty(2, 3, 3, cfg.patch_size, cfg.patch_size))
    assert feats.shape == (2, 3, cfg.max_channels * 4)  # 2x2 spatial features
    assert isinstance(d, PatchCooccurrenceDiscriminator)
