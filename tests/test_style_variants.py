"""Stage 2's colour-graded copies of the style images (train/style_variants.py)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from hypernst_cli.train.data import ImageSet
from hypernst_cli.train.style_variants import StyleVariants


def _style_folder(tmp_path: Path, n: int = 2, with_mask: bool = True) -> ImageSet:
    rng = np.random.default_rng(0)
    for i in range(n):
        # a colourful gradient with texture: every grade changes it visibly
        y, x = np.mgrid[0:32, 0:32] / 31.0
        rgb = np.stack([x, y, 1 - x * y], -1) * 200 + rng.integers(0, 50, (32, 32, 3))
        Image.fromarray(rgb.astype(np.uint8)).save(tmp_path / f"s{i}.png")
        if with_mask and i == 0:
            mask = np.zeros((32, 32), np.uint8)
            mask[8:24, 8:24] = 1
            Image.fromarray(mask).save(tmp_path / f"s{i}.mask.png")
    return ImageSet(tmp_path, 32)


def test_copies_follow_their_original_and_are_fixed_by_the_seed(tmp_path):
    base = _style_folder(tmp_path)
    variants = StyleVariants(base, 3, seed=7)
    assert len(variants) == 8
    assert [s.name for s in variants.samples[:4]] == ["s0", "s0~grade1", "s0~grade2", "s0~grade3"]
    original, mask = variants.load(0)
    assert np.array_equal(original, base.load(0)[0])
    again = StyleVariants(base, 3, seed=7)
    other_seed = StyleVariants(base, 3, seed=8)
    for j in (1, 2, 3):
        copy, copy_mask = variants.load(j)
        assert copy.shape == original.shape and copy.dtype == np.uint8
        assert np.array_equal(copy_mask, mask)  # a colour grade moves no region
        assert np.abs(copy.astype(int) - original).mean() > 3
        assert np.array_equal(copy, again.load(j)[0])
    assert any(not np.array_equal(variants.load(j)[0], other_seed.load(j)[0]) for j in (1, 2, 3))
    assert np.array_equal(variants.load(4)[0], base.load(1)[0])


def test_about_a_third_of_the_copies_are_monochrome(tmp_path):
    variants = StyleVariants(_style_folder(tmp_path, n=1), 60, seed=0)
    grey = 0
    for j in range(1, 61):
        copy = variants.load(j)[0].astype(int)
        spread = np.abs(copy - copy.mean(-1, keepdims=True)).max()
        grey += spread <= 1
    assert 10 <= grey <= 32, grey


class _RecordingProvider:
    """Codes = the image's mean colour, so a copy's codes show which pixels they came from."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, object]] = []

    @staticmethod
    def _codes(image: np.ndarray) -> SimpleNamespace:
        mean = torch.from_numpy(image.reshape(-1, 3).mean(0)).float()
        return SimpleNamespace(table=mean.expand(4, 3).clone())  # 3 region rows + A(s)

    def for_file(self, path: Path) -> SimpleNamespace:
        self.calls.append(("file", Path(path).name))
        return self._codes(np.asarray(Image.open(path).convert("RGB")))

    def for_image(self, image: np.ndarray, *, sha: str, mask: np.ndarray | None) -> SimpleNamespace:
        self.calls.append(("image", (sha, mask is not None)))
        return self._codes(image)


def test_every_copy_gets_codes_of_its_own_pixels_on_its_originals_mask(tmp_path):
    variants = StyleVariants(_style_folder(tmp_path), 2, seed=0)
    provider = _RecordingProvider()
    table = variants.code_table(provider)
    assert table.shape == (6, 4, 3)
    for index in range(6):
        expected = torch.from_numpy(variants.load(index)[0].reshape(-1, 3).mean(0)).float()
        assert torch.allclose(table[index, 0], expected)
    files = [c[1] for c in provider.calls if c[0] == "file"]
    copies = [c[1] for c in provider.calls if c[0] == "image"]
    assert files == ["s0.png", "s1.png"]  # originals: the cached file codes
    assert [has_mask for _, has_mask in copies] == [True, True, False, False]
    assert len({sha for sha, _ in copies}) == 4  # each copy cached under its own key


def test_negative_copy_count_is_refused(tmp_path):
    with pytest.raises(ValueError):
        StyleVariants(_style_folder(tmp_path), -1, seed=0)
