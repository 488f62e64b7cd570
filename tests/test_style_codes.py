"""Style codes (paper Eq. 1): patch coverage, fall-backs, seeding, arrangement, mixing (the
sampler itself: tests/test_patches.py; the cached provider: tests/test_code_cache.py; the
--region spec: tests/test_cli.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from hypernst_cli.configs import StyleCodeConfig
from hypernst_cli.faces.regions import BACKGROUND, FACE, HAIR
from hypernst_cli.pipeline.style_codes import (
    GLOBAL_ROW,
    arrange,
    blend,
    compute_style_codes,
    mix_regions,
)


class CountingEncoder:
    """A deterministic stand-in for ALADIN: a fixed random projection of pooled colours."""

    def __init__(self, dim: int = 8) -> None:
        g = torch.Generator().manual_seed(0)
        self.proj = torch.randn(3 * 4 * 4, dim, generator=g)
        self.calls = 0
        self.images = 0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        self.images += x.shape[0]
        pooled = torch.nn.functional.adaptive_avg_pool2d(x, 4).flatten(1)
        return torch.nn.functional.normalize(pooled @ self.proj, dim=1)


def synthetic_portrait(size: int = 96) -> tuple[np.ndarray, np.ndarray]:
    """A 3-region mask (hair band on top, face disc, background) and an image coloured by it."""
    yy, xx = np.mgrid[:size, :size]
    mask = np.full((size, size), BACKGROUND, np.uint8)
    mask[((yy - size * 0.55) ** 2 + (xx - size / 2) ** 2) < (size * 0.28) ** 2] = FACE
    mask[(yy < size * 0.3) & (np.abs(xx - size / 2) < size * 0.35)] = HAIR
    colours = np.array([[30, 60, 200], [230, 180, 140], [90, 50, 20]], np.uint8)
    image = colours[mask]
    rng = np.random.default_rng(1)
    image = np.clip(image + rng.integers(-10, 10, image.shape), 0, 255).astype(np.uint8)
    return image, mask


CFG = StyleCodeConfig(patches_per_region=6, patch_min=0.1, patch_max=0.25, coverage=0.8,
                      max_tries=200, seed=3)


def _coverage(mask: np.ndarray, region: int, box) -> float:
    return float((mask[box.top:box.top + box.size, box.left:box.left + box.size] == region).mean())


def test_every_kept_patch_meets_the_coverage_threshold():
    image, mask = synthetic_portrait()
    codes = compute_style_codes(image, mask, CountingEncoder(), CFG, encode_size=32)
    short = min(mask.shape)
    for region in (BACKGROUND, FACE, HAIR):
        boxes = codes.patches[region]
        assert 0 < len(boxes) <= CFG.patches_per_region
        for b in boxes:
            assert b.top >= 0 and b.left >= 0
            assert b.top + b.size <= mask.shape[0] and b.left + b.size <= mask.shape[1]
            assert round(CFG.patch_min * short) <= b.size <= round(CFG.patch_max * short)
            assert _coverage(mask, region, b) >= CFG.coverage


def test_threshold_is_respected_when_raised():
    image, mask = synthetic_portrait()
    strict = StyleCodeConfig(patches_per_region=20, patch_min=0.1, patch_max=0.3, coverage=1.0,
                             max_tries=300, seed=5)
    codes = compute_style_codes(image, mask, CountingEncoder(), strict, encode_size=32)
    assert codes.patches[FACE]
    for b in codes.patches[FACE]:
        assert _coverage(mask, FACE, b) == 1.0


def test_region_codes_differ_and_missing_region_falls_back_to_global():
    image, mask = synthetic_portrait()
    enc = CountingEncoder()
    codes = compute_style_codes(image, mask, enc, CFG, encode_size=32)
    assert codes.sources == ("patches", "patches", "patches")
    sim = codes.region_similarity()
    assert sim[FACE, HAIR] < 0.99  # different colours give different codes
    no_hair = mask.copy()
    no_hair[no_hair == HAIR] = BACKGROUND
    codes = compute_style_codes(image, no_hair, enc, CFG, encode_size=32)
    assert codes.sources[HAIR] == "global"
    assert torch.equal(codes.region_codes[HAIR], codes.global_code)
    assert codes.fallbacks() == ["hair"]


def test_no_face_uses_the_global_code_everywhere():
    image, _ = synthetic_portrait()
    codes = compute_style_codes(image, None, CountingEncoder(), CFG, encode_size=32)
    assert not codes.face_found and codes.sources == ("global",) * 3
    for r in range(3):
        assert torch.equal(codes.region_codes[r], codes.global_code)


def test_region_code_is_the_mean_of_its_patch_codes():
    image, mask = synthetic_portrait()
    enc = CountingEncoder()
    codes = compute_style_codes(image, mask, enc, CFG, encode_size=32)
    full = torch.from_numpy(image).permute(2, 0, 1).float() / 255
    crops = [
        torch.nn.functional.interpolate(
            full[None, :, b.top : b.top + b.size, b.left : b.left + b.size], size=(32, 32),
            mode="bilinear", antialias=True, align_corners=False)
        for b in codes.patches[FACE]
    ]
    expected = enc(torch.cat(crops)).mean(0)
    assert torch.allclose(codes.region_codes[FACE], expected, atol=1e-5)


def test_same_seed_same_codes_other_seed_other_patches():
    image, mask = synthetic_portrait()
    a = compute_style_codes(image, mask, CountingEncoder(), CFG, encode_size=32)
    b = compute_style_codes(image, mask, CountingEncoder(), CFG, encode_size=32)
    assert torch.equal(a.region_codes, b.region_codes) and a.patches == b.patches
    c = compute_style_codes(image, mask, CountingEncoder(), CFG, encode_size=32, seed=99)
    assert c.patches != a.patches


def test_arrange_puts_each_code_exactly_on_its_region():
    _, mask = synthetic_portrait(40)
    codes = torch.randn(3, 5)
    cmap = arrange(codes, torch.from_numpy(mask))
    assert cmap.shape == (1, 5, 40, 40)
    for r in range(3):
        sel = torch.from_numpy(mask == r)
        assert torch.equal(cmap[0][:, sel], codes[r][:, None].expand(-1, int(sel.sum())))
    # batched, with per-sample codes
    masks = torch.stack([torch.from_numpy(mask), torch.from_numpy(mask.T.copy())])
    per = torch.randn(2, 3, 5)
    cmap = arrange(per, masks)
    assert torch.equal(cmap[1][:, 0, 0], per[1][int(mask.T[0, 0])])


def test_blend_and_mix():
    a, b = torch.zeros(3, 4), torch.ones(3, 4)
    assert torch.equal(blend(a, b, 0.0), a) and torch.equal(blend(a, b, 1.0), b)
    assert torch.allclose(blend(a, b, 0.25), torch.full((3, 4), 0.25))
    with pytest.raises(ValueError, match="between 0 and 1"):
        blend(a, b, 1.5)
    image, mask = synthetic_portrait()
    enc = CountingEncoder()
    s1 = compute_style_codes(image, mask, enc, CFG, encode_size=32)
    s2 = compute_style_codes(255 - image, mask, enc, CFG, encode_size=32)
    mixed = mix_regions({"hair": s2}, s1)
    assert torch.equal(mixed[HAIR], s2.region_codes[HAIR])
    assert torch.equal(mixed[FACE], s1.region_codes[FACE])
    # A(s) (Eq. 2) comes from the default style; a table's global row is not arranged
    assert mixed.shape == (4, s1.dim) and torch.equal(mixed[GLOBAL_ROW], s1.global_code)
    assert torch.equal(arrange(mixed, torch.from_numpy(mask)), arrange(mixed[:GLOBAL_ROW], torch.from_numpy(mask)))
    with pytest.raises(ValueError, match="unknown region"):
        mix_regions({"beard": s2}, s1)


def test_the_maths_module_does_no_io():
    """Eq. 1's maths reads no files and hashes nothing: that is pipeline/code_cache.py's job."""
    import ast

    import hypernst_cli.pipeline.style_codes as style_codes

    tree = ast.parse(Path(style_codes.__file__).read_text())
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    io_modules = {"hashlib", "json", "pathlib", "os", "safetensors", "safetensors.torch",
                  "hypernst_cli.io", "hypernst_cli.io.inputs", "hypernst_cli.io.atomic",
                  "hypernst_cli.errors"}
    assert not imported & io_modules
