"""The one patch sampler (models/patches.py): coverage, sizes, seeding, cropping."""

from __future__ import annotations

import pytest
import torch

from hypernst_cli.faces.regions import BACKGROUND, FACE, HAIR
from hypernst_cli.models.patches import (
    crop_boxes,
    crop_patches,
    random_boxes,
    region_boxes,
    region_square_boxes,
    window_coverage,
)


def _mask(h: int = 48, w: int = 40) -> torch.Tensor:
    m = torch.full((h, w), BACKGROUND, dtype=torch.long)
    m[8:40, 10:34] = FACE
    m[4:14, 6:36] = HAIR
    return m


def _portrait_mask(size: int = 96) -> torch.Tensor:
    """Hair band on top, a face disc, background: thin and round regions."""
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    m = torch.full((size, size), BACKGROUND, dtype=torch.uint8)
    m[((yy - size * 0.55) ** 2 + (xx - size / 2) ** 2) < (size * 0.28) ** 2] = FACE
    m[(yy < size * 0.3) & ((xx - size / 2).abs() < size * 0.35)] = HAIR
    return m


def _coverage(mask: torch.Tensor, region: int, top: int, left: int, size: int) -> float:
    return (mask[top:top + size, left:left + size] == region).float().mean().item()


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_window_coverage_matches_brute_force():
    torch.manual_seed(0)
    region = torch.rand(13, 11) > 0.4
    cover = window_coverage(region, 4)
    assert cover.shape == (10, 8)
    for i in range(10):
        for j in range(8):
            assert cover[i, j] == pytest.approx(region[i:i + 4, j:j + 4].float().mean().item())


# --- region-constrained windows of random size (style codes) ------------------------------------


@pytest.mark.parametrize("coverage", [0.8, 1.0])
def test_region_square_boxes_respect_coverage_and_sizes(coverage):
    mask = _portrait_mask()
    for region in (BACKGROUND, FACE, HAIR):
        boxes = region_square_boxes(mask, region, 6, 10, 24, coverage, 200, _gen(region))
        assert boxes.dtype == torch.long and 0 < boxes.shape[0] <= 6 and boxes.shape[1] == 3
        for top, left, size in boxes.tolist():
            assert 10 <= size <= 24
            assert top >= 0 and left >= 0 and top + size <= 96 and left + size <= 96
            assert _coverage(mask, region, top, left, size) >= coverage


def test_region_square_boxes_are_deterministic_for_a_seed():
    mask = _portrait_mask()
    a = region_square_boxes(mask, FACE, 8, 8, 30, 0.8, 100, _gen(3))
    b = region_square_boxes(mask, FACE, 8, 8, 30, 0.8, 100, _gen(3))
    c = region_square_boxes(mask, FACE, 8, 8, 30, 0.8, 100, _gen(4))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert len({tuple(x) for x in a.tolist()}) > 1  # positions and sizes vary


def test_region_square_boxes_thin_missing_or_small_images():
    mask = torch.zeros(32, 32, dtype=torch.long)
    mask[10:12, :] = HAIR  # a 2 px line: no 8 px window is 80 % hair
    assert region_square_boxes(mask, HAIR, 4, 8, 8, 0.8, 50, _gen(0)).shape == (0, 3)
    assert region_square_boxes(mask, FACE, 4, 4, 8, 0.5, 50, _gen(0)).shape == (0, 3)
    # sides larger than the image are clipped to it; the tries bound the draws
    full = torch.full((12, 20), FACE)
    boxes = region_square_boxes(full, FACE, 3, 16, 40, 1.0, 10, _gen(0))
    assert boxes.shape == (3, 3) and (boxes[:, 2] == 12).all()
    assert region_square_boxes(full, FACE, 3, 4, 4, 1.0, 0, _gen(0)).shape == (0, 3)
    with pytest.raises(ValueError):
        region_square_boxes(full, FACE, 3, 8, 4, 1.0, 10)


# --- fixed-size region windows (patch discriminator) --------------------------------------------


def test_region_boxes_respect_coverage_and_seed():
    mask = _mask()
    size, cov = 8, 0.8
    boxes = region_boxes(mask, FACE, 5, size, cov, _gen(0))
    assert boxes.shape == (5, 2)
    assert len({tuple(b.tolist()) for b in boxes}) == 5  # distinct while enough windows qualify
    for top, left in boxes.tolist():
        window = mask[top:top + size, left:left + size]
        assert window.shape == (size, size) and (window == FACE).float().mean() >= cov
    again = region_boxes(mask, FACE, 5, size, cov, _gen(0))
    other = region_boxes(mask, FACE, 5, size, cov, _gen(1))
    assert torch.equal(boxes, again) and not torch.equal(boxes, other)


def test_region_boxes_few_or_no_windows():
    mask = torch.zeros(20, 20, dtype=torch.long)
    mask[0:8, 0:8] = HAIR  # exactly one 8x8 window is all hair
    boxes = region_boxes(mask, HAIR, 3, 8, 1.0, _gen(0))
    assert boxes.tolist() == [[0, 0]] * 3  # repeats when fewer windows qualify than asked
    assert region_boxes(mask, FACE, 3, 8, 0.5).shape == (0, 2)
    with pytest.raises(ValueError):
        region_boxes(mask, HAIR, 3, 32)


# --- unconstrained windows (autoencoder) and cropping -------------------------------------------


def test_random_boxes_stay_inside_and_follow_the_seed():
    boxes = random_boxes(4, 50, 8, 20, 12, _gen(0))
    assert boxes.shape == (4, 50, 2)
    assert boxes[..., 0].min() >= 0 and boxes[..., 0].max() <= 12
    assert boxes[..., 1].min() >= 0 and boxes[..., 1].max() <= 4
    assert boxes[..., 0].max() > 4  # rows use the taller side
    assert torch.equal(boxes, random_boxes(4, 50, 8, 20, 12, _gen(0)))
    assert not torch.equal(boxes, random_boxes(4, 50, 8, 20, 12, _gen(1)))
    with pytest.raises(ValueError):
        random_boxes(1, 1, 16, 20, 12)


def test_crop_patches_match_slicing():
    image = torch.randn(3, 48, 40)
    boxes = torch.tensor([[0, 0], [10, 5], [40, 32]])
    patches = crop_patches(image, boxes, 8)
    assert patches.shape == (3, 3, 8, 8)
    for p, (t, l) in zip(patches, boxes.tolist()):
        assert torch.equal(p, image[:, t:t + 8, l:l + 8])
    batch = crop_patches(image[None].repeat(2, 1, 1, 1), boxes[None].repeat(2, 1, 1), 8)
    assert batch.shape == (2, 3, 3, 8, 8) and torch.equal(batch[1], patches)


def test_crop_boxes_cut_windows_of_any_size():
    image = torch.randn(3, 48, 40)
    crops = crop_boxes(image, torch.tensor([[0, 0, 5], [10, 7, 12]]))
    assert [tuple(c.shape) for c in crops] == [(3, 5, 5), (3, 12, 12)]
    assert torch.equal(crops[1], image[:, 10:22, 7:19])
    assert crop_boxes(image, torch.zeros(0, 3, dtype=torch.long)) == []
