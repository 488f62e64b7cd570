"""Patch co-occurrence discriminator and region-matched patch sampling."""

from __future__ import annotations

import pytest
import torch

from hypernst_cli.configs import get_config
from hypernst_cli.faces.regions import BACKGROUND, FACE, HAIR
from hypernst_cli.models.patch_disc import (
    PatchCooccurrenceDiscriminator,
    build_patch_disc,
    crop_patches,
    region_patch_boxes,
    window_coverage,
)


def _mask(h: int = 48, w: int = 40) -> torch.Tensor:
    m = torch.full((h, w), BACKGROUND, dtype=torch.long)
    m[8:40, 10:34] = FACE
    m[4:14, 6:36] = HAIR
    return m


def test_window_coverage_matches_brute_force():
    torch.manual_seed(0)
    region = torch.rand(13, 11) > 0.4
    cover = window_coverage(region, 4)
    assert cover.shape == (10, 8)
    for i in range(10):
        for j in range(8):
            assert cover[i, j] == pytest.approx(region[i:i + 4, j:j + 4].float().mean().item())


def test_region_patch_boxes_respect_coverage_and_seed():
    mask = _mask()
    size, cov = 8, 0.8
    boxes = region_patch_boxes(mask, FACE, 5, size, cov, torch.Generator().manual_seed(0))
    assert boxes.shape == (5, 2)
    assert len({tuple(b.tolist()) for b in boxes}) == 5  # distinct while enough windows qualify
    for top, left in boxes.tolist():
        window = mask[top:top + size, left:left + size]
        assert window.shape == (size, size) and (window == FACE).float().mean() >= cov
    again = region_patch_boxes(mask, FACE, 5, size, cov, torch.Generator().manual_seed(0))
    other = region_patch_boxes(mask, FACE, 5, size, cov, torch.Generator().manual_seed(1))
    assert torch.equal(boxes, again) and not torch.equal(boxes, other)


def test_region_patch_boxes_few_or_no_windows():
    mask = torch.zeros(20, 20, dtype=torch.long)
    mask[0:8, 0:8] = HAIR  # exactly one 8x8 window is all hair
    boxes = region_patch_boxes(mask, HAIR, 3, 8, 1.0, torch.Generator().manual_seed(0))
    assert boxes.tolist() == [[0, 0]] * 3  # repeats when fewer windows qualify than asked
    assert region_patch_boxes(mask, FACE, 3, 8, 0.5).shape == (0, 2)
    with pytest.raises(ValueError):
        region_patch_boxes(mask, HAIR, 3, 32)


def test_crop_patches_match_slicing():
    image = torch.randn(3, 48, 40)
    boxes = torch.tensor([[0, 0], [10, 5], [40, 32]])
    patches = crop_patches(image, boxes, 8)
    assert patches.shape == (3, 3, 8, 8)
    for p, (t, l) in zip(patches, boxes.tolist()):
        assert torch.equal(p, image[:, t:t + 8, l:l + 8])
    batch = crop_patches(image[None].repeat(2, 1, 1, 1), boxes[None].repeat(2, 1, 1), 8)
    assert batch.shape == (2, 3, 3, 8, 8) and torch.equal(batch[1], patches)


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
