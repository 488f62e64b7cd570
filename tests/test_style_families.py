"""Style families (styles/families.py): every family renders a valid, changed image; a draw is
deterministic, shares its palette and textures across images and sizes; the split holds out whole
families; region-mixed rendering composes by mask."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from hypernst_cli.styles.families import (
    FAMILIES, HELDOUT_FAMILIES, TRAIN_FAMILIES, StyleDraw, draw_style, get_family, random_draw,
    render_regions,
)

ALL = sorted(FAMILIES)


def _portrait(size: int, variant: int = 0) -> torch.Tensor:
    """A smooth synthetic head-and-shoulders picture [1, 3, size, size] (no files needed):
    a background gradient, a shaded face ellipse with eyes and mouth, hair, shoulders.
    ``variant`` moves and recolours everything."""
    t = torch.linspace(0, 1, size)
    y, x = torch.meshgrid(t, t, indexing="ij")
    edge = 40.0 / (1 + variant * 0.3)

    def ellipse(cy: float, cx: float, ry: float, rx: float) -> torch.Tensor:
        return torch.sigmoid((1 - ((y - cy) / ry) ** 2 - ((x - cx) / rx) ** 2) * edge)

    shift = 0.05 * variant
    bg = torch.stack([0.75 - 0.3 * y, 0.7 + 0.1 * x * (variant - 0.5), 0.6 + 0.3 * y * x])
    skin = torch.tensor([0.9, 0.7 - 0.1 * variant, 0.6]).view(3, 1, 1) * (1.1 - 0.4 * x)
    hair = torch.tensor([0.35 + 0.3 * variant, 0.25, 0.12 + 0.3 * variant]).view(3, 1, 1)
    coat = torch.tensor([0.2, 0.3 + 0.4 * variant, 0.8 - 0.5 * variant]).view(3, 1, 1)
    shoulders = ellipse(1.05, 0.5 + shift, 0.35, 0.5)
    img = bg * (1 - shoulders) + coat * shoulders
    head = ellipse(0.35, 0.5 + shift, 0.25, 0.24)
    img = img * (1 - head) + hair * head
    face = ellipse(0.48, 0.5 + shift, 0.24, 0.17)
    img = img * (1 - face) + skin * face
    for cx in (0.43, 0.57):
        eye = ellipse(0.44, cx + shift, 0.025, 0.035)
        img = img * (1 - eye) + 0.1 * eye
    mouth = ellipse(0.6, 0.5 + shift, 0.02, 0.07)
    img = img * (1 - mouth) + torch.tensor([0.6, 0.2, 0.2]).view(3, 1, 1) * mouth
    return img.clamp(0, 1).unsqueeze(0)


@pytest.fixture(scope="module")
def faces() -> torch.Tensor:
    return torch.cat([_portrait(96, 0), _portrait(96, 1)])


@pytest.mark.parametrize("name", ALL)
def test_a_family_renders_a_valid_changed_image(name, faces):
    out = draw_style(name, 1).render(faces)
    assert out.shape == faces.shape and out.dtype == torch.float32
    assert torch.isfinite(out).all() and out.min() >= 0 and out.max() <= 1
    assert (out - faces).abs().mean() > 0.03, "the style barely changes the image"
    json.dumps(draw_style(name, 1).params)  # parameters are plain data (logged with analogies)


def test_every_family_takes_small_non_square_black_and_white_images():
    wide = F.interpolate(_portrait(64, 1), size=(48, 80), mode="bilinear", align_corners=False)
    tiny = _portrait(24, 0)
    black, white = torch.zeros(1, 3, 32, 32), torch.ones(1, 3, 32, 32)
    for name in ALL:
        for img in (wide, tiny, black, white):
            out = draw_style(name, 2).render(img)
            assert out.shape == img.shape and torch.isfinite(out).all(), name


@pytest.mark.parametrize("name", ALL)
def test_a_draw_renders_the_same_every_time_and_seeds_differ(name, faces):
    first = draw_style(name, 7).render(faces)
    again = draw_style(name, 7).render(faces.clone())
    assert torch.equal(first, again)
    others = [draw_style(name, s).render(faces) for s in (8, 9)]
    for other in others:
        assert (other - first).abs().mean() > 0.01, "two seeds give nearly the same style"
    # the draw itself is plain data: rebuilt from its fields it renders the same
    d = draw_style(name, 7)
    assert torch.equal(StyleDraw(d.family, dict(d.params), d.seed).render(faces), first)


@pytest.mark.parametrize("name", ALL)
def test_one_draw_gives_two_images_the_same_texture_and_palette(name):
    """Two pictures identical on their left half and different on the right: with one draw the
    left parts must render identically (same paper, strokes, dots, cells, palette), whether the
    pictures are rendered in one batch or one by one."""
    a = _portrait(128, 0)
    b = a.clone()
    b[..., 64:] = _portrait(128, 2)[..., 64:]
    draw = draw_style(name, 3)
    both = draw.render(torch.cat([a, b]))
    left = slice(0, 40)  # 24 px (48 reference px) clear of the differing half
    assert (both[0, ..., left] - both[1, ..., left]).abs().max() < 1e-4
    assert (both[0, ..., 64:] - both[1, ..., 64:]).abs().mean() > 0.01
    alone = draw.render(b)
    assert (alone[0] - both[1]).abs().max() < 1e-3


def test_palette_families_output_only_their_colours():
    a, b = _portrait(96, 0), _portrait(96, 1)
    draw = draw_style("palette", 11)
    palette = torch.tensor(draw.params["colours"])
    for img in (a, b):
        colours = draw.render(img)[0].flatten(1).t().unique(dim=0)
        dist = torch.cdist(colours, palette).min(1).values
        assert dist.max() < 1e-5 and len(colours) >= 2
    post = draw_style("posterize", 11)
    levels = torch.linspace(0, 1, post.params["levels"])
    for img in (a, b):
        values = post.render(img).unique()
        assert (values[:, None] - levels[None]).abs().min(1).values.max() < 1e-5


def test_draws_with_the_first_versions_parameters_still_render(faces):
    """duotone and posterize draws recorded before their parameters grew keep rendering."""
    duo = StyleDraw("duotone", {"dark": [0.1, 0.0, 0.2], "light": [1.0, 0.9, 0.6], "contrast": 1.0})
    out = duo.render(faces)
    grey = 0.299 * faces[:, 0] + 0.587 * faces[:, 1] + 0.114 * faces[:, 2]
    expected = torch.tensor([0.1, 0.0, 0.2]).view(1, 3, 1, 1) \
        + torch.tensor([0.9, 0.9, 0.4]).view(1, 3, 1, 1) * grey.unsqueeze(1)
    assert (out - expected).abs().max() < 1e-4
    post = StyleDraw("posterize", {"levels": 3}).render(faces)
    assert torch.equal(post, torch.round(faces * 2) / 2)


def _consistency(name: str, seed: int) -> tuple[float, float]:
    big = _portrait(256, 0)
    small = F.interpolate(big, size=(128, 128), mode="bilinear", antialias=True,
                          align_corners=False)
    draw = draw_style(name, seed)

    def look(x: torch.Tensor) -> torch.Tensor:  # the layout of tones, colours and coarse texture
        return F.interpolate(x, size=(64, 64), mode="area")

    at_256 = look(draw.render(big))
    at_128 = look(draw.render(small))
    other = look(draw_style(name, seed + 100).render(small))
    return float((at_256 - at_128).abs().mean()), float((other - at_128).abs().mean())


@pytest.mark.parametrize("name", ALL)
def test_a_draw_looks_alike_at_128_and_256_px(name):
    same, other_seed = _consistency(name, 5)
    # textures laid out in pixels instead of reference units fail this for most families
    assert same < 0.04, f"{name}: the 256 px render, downscaled, is {same:.3f} off the 128 px one"
    assert same < 0.35 * other_seed, "the size changes the look almost as much as another draw"


def test_the_split_holds_out_whole_families():
    assert len(HELDOUT_FAMILIES) >= 3 and len(TRAIN_FAMILIES) >= 12
    assert not set(HELDOUT_FAMILIES) & set(TRAIN_FAMILIES)
    assert set(HELDOUT_FAMILIES) | set(TRAIN_FAMILIES) == set(FAMILIES)
    gen = torch.Generator().manual_seed(0)
    drawn = {random_draw(gen).family for _ in range(300)}
    assert drawn == set(TRAIN_FAMILIES)
    held = {random_draw(gen, HELDOUT_FAMILIES).family for _ in range(50)}
    assert held == set(HELDOUT_FAMILIES)
    with pytest.raises(KeyError, match="unknown style family"):
        get_family("fresco")


def test_render_regions_composes_by_mask(faces):
    masks = torch.zeros(2, 96, 96, dtype=torch.long)
    masks[:, 20:70, 25:70] = 1
    masks[:, :20] = 2
    draws = {0: draw_style("halftone", 1), 1: draw_style("watercolour", 2)}
    out = render_regions(faces, masks, draws)
    for region, d in draws.items():
        sel = (masks == region).unsqueeze(1).expand_as(faces)
        assert torch.equal(out[sel], d.render(faces)[sel])
    hair = (masks == 2).unsqueeze(1).expand_as(faces)
    assert torch.equal(out[hair], faces[hair])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_every_family_renders_alike_on_cuda(faces):
    for name in ALL:
        draw = draw_style(name, 4)
        on_gpu = draw.render(faces.cuda())
        assert on_gpu.is_cuda, name
        # thresholded textures may flip a few edge pixels; the picture must be the same
        assert (on_gpu.cpu() - draw.render(faces)).abs().mean() < 0.01, name


def test_training_draws_stay_below_the_benchmark_seeds():
    from hypernst_cli.styles.families import EVAL_SEED_BASE, random_draw

    gen = torch.Generator().manual_seed(0)
    seeds = [random_draw(gen).seed for _ in range(2000)]
    assert max(seeds) < EVAL_SEED_BASE
    assert max(seeds) > EVAL_SEED_BASE // 2  # the whole training range is used
