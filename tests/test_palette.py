"""The palette post-process (pipeline/palette.py): the Lab conversions, the histogram match,
the palettes of interpolation, the pipeline's and the command line's use of it (tiny model)."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace

import numpy as np
import pytest
import torch

from hypernst_cli.pipeline.palette import (
    INKS,
    MAX_SCALE,
    QUANTILES,
    Palette,
    apply_palettes,
    between,
    ink_colours,
    lab_to_rgb,
    region_inks,
    region_quantiles,
    rgb_to_lab,
)


def _quantiles(images: torch.Tensor) -> torch.Tensor:
    """[B, 3, H, W] -> [B, QUANTILES, 3]: each image's whole-image Lab / 100 quantiles."""
    return region_quantiles(images, None)[:, -1]


def _mean_lab(images: torch.Tensor) -> torch.Tensor:
    return rgb_to_lab(images).flatten(2).mean(2)


def _whole(table: torch.Tensor, amount: float) -> Palette:
    """A palette of one image's quantiles [Q, 3] for every region (and the whole image)."""
    return Palette(table.expand(4, QUANTILES, 3).clone(), amount)


def _images(seed: int, batch: int = 2, size: int = 24) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 3, size, size, generator=g) * 1.6 - 0.8


def test_lab_round_trip_and_the_numpy_reference():
    from hypernst_cli.eval.colour import rgb_to_lab as lab_numpy

    x = _images(0)
    torch.testing.assert_close(lab_to_rgb(rgb_to_lab(x)), x, atol=2e-4, rtol=0)
    rgb = ((x[0] + 1) * 127.5).round().clamp(0, 255)
    ours = rgb_to_lab(rgb[None] / 127.5 - 1)[0].permute(1, 2, 0).numpy() * 100
    np.testing.assert_allclose(ours, lab_numpy(rgb.permute(1, 2, 0).numpy().astype(np.uint8)),
                               atol=1e-2)


def test_apply_palettes_moves_each_image_to_its_palettes_distribution_by_its_amount():
    x, style = _images(1, size=32), _images(2, batch=1, size=32)
    # a target well inside sRGB (so clipping does not bend the distribution)
    target = _quantiles(style * 0.5)[0]
    full = apply_palettes(x, [_whole(target, 1.0), None])
    torch.testing.assert_close(_quantiles(full[:1])[0], target, atol=3e-3, rtol=0)
    torch.testing.assert_close(full[1], x[1])  # no palette: untouched
    # a monotone map keeps every pixel's rank: half-way moves each quantile half-way
    half = apply_palettes(x, [_whole(target, 0.5), _whole(target, 0.0)])
    own = _quantiles(x[:1])[0]
    torch.testing.assert_close(_quantiles(half[:1])[0], (own + target) / 2, atol=3e-3, rtol=0)
    torch.testing.assert_close(half[1], x[1])  # amount 0: untouched
    assert apply_palettes(x, [None, None]) is x
    with pytest.raises(ValueError, match="palettes for"):
        apply_palettes(x, [None])
    with pytest.raises(ValueError, match="quantiles"):  # a table of the earlier mean and spread
        apply_palettes(x, [Palette(torch.zeros(4, 2, 3), 1.0), None])
    # a flat image stays flat (its map's slope is bounded), and finite
    flat = torch.zeros(1, 3, 8, 8)
    moved = apply_palettes(flat, [_whole(target, 1.0)])
    assert torch.isfinite(moved).all() and float(moved.std((2, 3)).max()) < 1e-4


def test_the_exemplars_histogram_shape_is_carried_where_a_mean_and_spread_cannot():
    """A grey ramp matched to a skewed exemplar (most of it dark, a tail of light tones) takes the
    exemplar's whole distribution; a mean-and-spread match (Reinhard) keeps the ramp's shape."""
    from hypernst_cli.eval.colour import colour_transfer

    def grey(values: torch.Tensor) -> torch.Tensor:
        return values.view(1, 1, 64, 64).expand(1, 3, 64, 64).contiguous()

    u = torch.linspace(0, 1, 64 * 64)
    ramp = grey(u * 1.2 - 0.6)
    skewed = grey(u**2 - 0.5)[..., torch.randperm(64, generator=torch.Generator().manual_seed(0))]
    out = apply_palettes(ramp, [_whole(_quantiles(skewed)[0], 1.0)])
    torch.testing.assert_close(_quantiles(out)[0], _quantiles(skewed)[0], atol=5e-3, rtol=0)
    assert bool((out[0, 0].flatten().diff() >= -1e-4).all())  # the ramp's order is kept

    def u8(t: torch.Tensor) -> np.ndarray:
        return ((t[0].permute(1, 2, 0) + 1) * 127.5).round().clamp(0, 255).byte().numpy()

    reinhard = torch.from_numpy(colour_transfer(u8(ramp), u8(skewed))).permute(2, 0, 1)[None]
    miss = (_quantiles(reinhard.float() / 127.5 - 1)[0] - _quantiles(skewed)[0]).abs().max()
    assert float(miss) > 0.03


def test_the_maps_slope_is_bounded_so_a_near_flat_region_is_not_blown_up():
    g = torch.Generator().manual_seed(3)
    near_flat = 0.01 * torch.randn(1, 3, 32, 32, generator=g)
    spread = _images(4, batch=1, size=32)
    out = apply_palettes(near_flat, [_whole(_quantiles(spread)[0], 1.0)])
    grow = rgb_to_lab(out).std((2, 3)) / rgb_to_lab(near_flat).std((2, 3))
    assert float(grow.max()) <= MAX_SCALE * 1.05


def _three_regions(size: int = 48) -> torch.Tensor:
    """Region labels [1, S, S]: background left third, face middle, hair right third."""
    mask = torch.zeros(1, size, size, dtype=torch.long)
    mask[..., size // 3: 2 * size // 3] = 1
    mask[..., 2 * size // 3:] = 2
    return mask


def test_region_quantiles_per_region_and_the_whole_image_for_a_missing_region():
    x = _images(3, batch=1, size=48)
    mask = _three_regions()
    table = region_quantiles(x, mask)[0]
    assert table.shape == (4, QUANTILES, 3)
    torch.testing.assert_close(table[3], _quantiles(x)[0])
    torch.testing.assert_close(table[2], _quantiles(x[..., 32:])[0], atol=1e-5, rtol=0)
    mask[..., 32:] = 1  # no hair: its row is the whole image's
    table = region_quantiles(x, mask)[0]
    torch.testing.assert_close(table[2], table[3])
    torch.testing.assert_close(region_quantiles(x, None)[0, 0], table[3])


def test_each_region_takes_its_own_palette_by_its_weight_and_weight_0_moves_the_image_as_one():
    x = _images(4, batch=1, size=48) * 0.4
    mask = _three_regions()
    # a style whose three regions have three different palettes
    style = torch.cat([_images(5, batch=1, size=48)[..., :16] * 0.3 + 0.5,
                       _images(6, batch=1, size=48)[..., 16:32] * 0.3 - 0.4,
                       _images(7, batch=1, size=48)[..., 32:] * 0.2], dim=-1)
    table = region_quantiles(style, mask)[0]
    means = table.mean(1)  # [4, 3]: each region's (and the whole image's) mean, about
    cols = (slice(0, 12), slice(20, 28), slice(36, 48))  # inside each region, off its borders
    out = apply_palettes(x, [Palette(table, 1.0, torch.ones(3))], mask)
    for region, c in enumerate(cols):  # each region's own mean, not the others'
        got = _mean_lab(out[..., c])[0]
        errors = (means[:3] - got).abs().sum(1)
        assert int(errors.argmin()) == region, (region, errors)
        assert errors[region] < 0.03
    whole = apply_palettes(x, [Palette(table, 1.0)], mask)  # no weights: as one
    # (the style's L has gaps between its regions, which the bounded slope does not jump)
    torch.testing.assert_close(_quantiles(whole)[0][:, 1:], table[3][:, 1:], atol=3e-3, rtol=0)
    assert abs(float(_mean_lab(whole)[0, 0] - means[3, 0])) < 0.02
    torch.testing.assert_close(apply_palettes(x, [Palette(table, 1.0, torch.zeros(3))], mask),
                               whole)
    # without masks every palette moves the image as one
    torch.testing.assert_close(apply_palettes(x, [Palette(table, 1.0, torch.ones(3))]), whole)
    # only the hair weighted: the hair half-way between the two maps, the rest as one
    half = apply_palettes(x, [Palette(table, 1.0, torch.tensor([0.0, 0.0, 0.5]))], mask)
    torch.testing.assert_close(half[..., :28], whole[..., :28], atol=1e-5, rtol=0)
    hair = [_mean_lab(im[..., cols[2]])[0] for im in (whole, half, out)]
    torch.testing.assert_close(hair[1], (hair[0] + hair[2]) / 2, atol=5e-3, rtol=0)


def test_palettes_between_two_ends():
    shape = (4, QUANTILES, 3)
    a, b = Palette(torch.zeros(shape), 1.0), Palette(torch.ones(shape), 0.5)
    assert between(None, None, 0.5) is None
    assert between(None, b, 0.0).amount == 0.0 and between(None, b, 1.0).amount == 0.5
    assert between(a, None, 1.0).amount == 0.0
    mid = between(a, b, 0.5)
    torch.testing.assert_close(mid.stats, torch.full(shape, 0.5))
    assert mid.amount == pytest.approx(0.75)
    weighted = Palette(torch.ones(shape), 1.0, torch.ones(3))
    assert between(a, weighted, 0.25).region_weights().tolist() == [0.25] * 3
    # the inks move from one style's to the other's (darker to darker), and so does the pull
    ink_shape = (4, INKS, 3)
    c = Palette(torch.zeros(shape), 1.0, None, torch.zeros(ink_shape), 0.4)
    d = Palette(torch.ones(shape), 1.0, None, torch.ones(ink_shape), 0.2)
    torch.testing.assert_close(between(c, d, 0.25).inks, torch.full(ink_shape, 0.25))
    assert between(c, d, 0.25).pull == pytest.approx(0.35)
    assert between(None, d, 0.5).pull == pytest.approx(0.1)
    assert between(c, None, 0.5).pull == pytest.approx(0.2)
    assert between(a, d, 0.5).pull == pytest.approx(0.1)  # a palette without inks pulls nowhere
    # the pull's own region weights move too (a side without them takes its map's)
    e = replace(d, regions=torch.full((3,), 0.5), ink_regions=torch.ones(3))
    torch.testing.assert_close(between(c, e, 0.25).ink_region_weights(), torch.full((3,), 0.25))
    torch.testing.assert_close(between(e, c, 0.0).ink_region_weights(), torch.ones(3))


def _two_ink_style(size: int = 32) -> torch.Tensor:
    """A print: dark blue ink on warm paper, a little noise on both, ink on 30 % of it."""
    g = torch.Generator().manual_seed(11)
    ink = torch.tensor([-0.7, -0.6, -0.1]).view(3, 1, 1)
    paper = torch.tensor([0.9, 0.8, 0.55]).view(3, 1, 1)
    on = (torch.rand(1, size, size, generator=g) < 0.3).float()
    image = on * ink + (1 - on) * paper + 0.03 * torch.randn(3, size, size, generator=g)
    return image.clamp(-1, 1)[None]


def test_a_styles_inks_are_its_two_main_colours_darker_first_and_always_the_same():
    style = _two_ink_style()
    lab = rgb_to_lab(style)[0].flatten(1).T
    inks = ink_colours(lab.clone())
    assert inks.shape == (INKS, 3) and inks[0, 0] < inks[1, 0]
    dark = lab[:, 0] < lab[:, 0].median() * 0.8  # the ink pixels (30 %)
    torch.testing.assert_close(inks[0], lab[dark].mean(0), atol=2e-3, rtol=0)
    torch.testing.assert_close(inks[1], lab[~dark].mean(0), atol=2e-3, rtol=0)
    torch.testing.assert_close(ink_colours(lab.flip(0).clone()), inks)  # order-free
    table = region_inks(style, None)
    assert table.shape == (1, 4, INKS, 3)
    torch.testing.assert_close(table[0, 0], table[0, 3])  # no regions: the whole image's


def test_the_inks_pull_each_pixel_to_the_nearer_ink_by_the_pull_and_0_changes_nothing():
    style = _two_ink_style()
    x = _images(12, batch=1, size=32) * 0.6
    table = region_quantiles(style, None)[0]
    inks = region_inks(style, None)[0]
    plain = apply_palettes(x, [Palette(table, 1.0)])
    torch.testing.assert_close(apply_palettes(x, [Palette(table, 1.0, None, inks, 0.0)]), plain)
    assert torch.equal(apply_palettes(x, [Palette(table, 0.0, None, inks, 0.5)]), x)  # no palette
    lab = rgb_to_lab(plain)[0].flatten(1).T
    nearest = inks[3][torch.cdist(lab, inks[3]).argmin(1)]
    for pull in (0.25, 1.0):
        got = rgb_to_lab(apply_palettes(x, [Palette(table, 1.0, None, inks, pull)]))[0]
        expected = lab + pull * (nearest - lab)
        # (colours pushed out of sRGB come back clipped, so compare where they stay inside)
        close = (got.flatten(1).T - expected).abs().amax(1) < 2e-3
        assert close.float().mean() > 0.9, (pull, close.float().mean())
    # the distance to the nearer ink shrinks by the pull
    quarter = rgb_to_lab(apply_palettes(x, [Palette(table, 1.0, None, inks, 0.25)]))[0].flatten(1).T
    before = (lab - nearest).norm(dim=1).mean()
    after = (quarter - inks[3][torch.cdist(quarter, inks[3]).argmin(1)]).norm(dim=1).mean()
    assert after < 0.8 * before


def test_a_regions_own_inks_by_its_weight():
    mask = _three_regions()
    x = _images(13, batch=1, size=48) * 0.5
    style = torch.cat([_two_ink_style(48)[..., :32], -_two_ink_style(48)[..., 32:]], dim=-1)
    table, inks = region_quantiles(style, mask)[0], region_inks(style, mask)[0]
    assert not torch.allclose(inks[2], inks[3], atol=0.05)  # the hair's inks are its own
    as_one = apply_palettes(x, [Palette(table, 1.0, torch.zeros(3), inks, 1.0)], mask)
    own = apply_palettes(x, [Palette(table, 1.0, torch.tensor([0.0, 0.0, 1.0]), inks, 1.0)], mask)
    hair = rgb_to_lab(own)[0][:, :, 40:].flatten(1).T  # inside the hair, off its border
    dist = lambda px, ink: torch.cdist(px, ink).amin(1).mean()  # noqa: E731
    assert dist(hair, inks[2]) < 0.01 < dist(hair, inks[3])
    torch.testing.assert_close(own[..., :20], as_one[..., :20], atol=1e-5, rtol=0)
    # the pull's region weights apart from the map's (palette.ink_regions): the map as one,
    # the hair pulled to its own inks
    ink_only = apply_palettes(x, [Palette(table, 1.0, torch.zeros(3), inks, 1.0,
                                          torch.tensor([0.0, 0.0, 1.0]))], mask)
    hair = rgb_to_lab(ink_only)[0][:, :, 40:].flatten(1).T
    assert dist(hair, inks[2]) < 0.01 < dist(hair, inks[3])
    torch.testing.assert_close(ink_only[..., :20], as_one[..., :20], atol=1e-5, rtol=0)
    unpulled = apply_palettes(x, [Palette(table, 1.0, torch.zeros(3), inks, 0.0,
                                          torch.tensor([0.0, 0.0, 1.0]))], mask)
    torch.testing.assert_close(unpulled, apply_palettes(x, [Palette(table, 1.0)], mask))


@pytest.fixture
def palette_model_dir(tiny_model_dir, tmp_path):
    """The tiny test model with the palette on in its config (as the embedded one has)."""
    folder = tmp_path / "tiny-palette"
    shutil.copytree(tiny_model_dir, folder)
    cfg = json.loads((folder / "config.json").read_text())
    cfg["palette"] = {"amount": 1.0}
    (folder / "config.json").write_text(json.dumps(cfg))
    return folder


def _lab_mean(image: np.ndarray) -> np.ndarray:
    from hypernst_cli.eval.colour import rgb_to_lab as lab_numpy

    return lab_numpy(image).reshape(-1, 3).mean(0)


def test_stylize_takes_the_styles_palette_and_strength_0_stays_the_reconstruction(
        run_cli, palette_model_dir, portraits, isolated_cache, tmp_path):
    from hypernst_cli.io import load_image

    face = portraits / "faces" / "astronaut.png"
    style = portraits / "styles" / "poster-portrait.png"
    common = ["--device", "cpu", "stylize", face, style, "-w", palette_model_dir, "--seed", "0"]
    r = run_cli(*common, "-o", tmp_path / "default.png")
    assert r.exit_code == 0, r.stderr
    assert "palette 1" in r.stderr
    run_cli(*common, "-o", tmp_path / "off.png", "--palette", "0")
    run_cli(*common, "-o", tmp_path / "zero.png", "--strength", "0")
    run_cli(*common, "-o", tmp_path / "zero-off.png", "--strength", "0", "--palette", "0")
    on, off, zero, zero_off = (load_image(tmp_path / f"{n}.png")
                               for n in ("default", "off", "zero", "zero-off"))
    goal = _lab_mean(load_image(style))
    assert np.abs(_lab_mean(on) - goal).sum() < 0.5 * np.abs(_lab_mean(off) - goal).sum()
    assert np.array_equal(zero, zero_off)  # strength 0: no palette either
    r = run_cli(*common, "-o", tmp_path / "bad.png", "--palette", "1.5")
    assert r.exit_code == 2 and not (tmp_path / "bad.png").exists()


def test_edits_and_interpolation_keep_the_palette(palette_model_dir, portraits):
    from hypernst_cli.pipeline.stylize import HyperNSTPipeline

    pipe = HyperNSTPipeline.load(weights=str(palette_model_dir), config="tiny", device="cpu",
                                 backend="dlib", seed=0)
    face = pipe.prepare(portraits / "faces" / "astronaut.png")[0]
    style = portraits / "styles" / "poster-portrait.png"
    palette = pipe.palette_for(style)
    assert palette is not None and palette.amount == 1.0
    assert pipe.palette_for(style, strength=0.0) is None and pipe.palette_for(None) is None
    base = pipe.generate([face], pipe.code_table(face, style), palettes=[palette])
    direction = torch.randn(pipe.models.generator.style_dim)
    torch.testing.assert_close(pipe.render_edit(face, direction, 0.0, base), base.images)
    plain = pipe.generate([face], pipe.code_table(face, style))
    assert (plain.images - base.images).abs().mean() > 1e-3
    # --region hair=OTHER: the hair takes OTHER's hair palette, the rest the main style's
    other = portraits / "styles" / "halftone.png"
    mixed = pipe.palette_for(style, regions={"hair": other})
    torch.testing.assert_close(mixed.stats[2], pipe.palette_for(other).stats[2])
    torch.testing.assert_close(mixed.stats[[0, 1, 3]], palette.stats[[0, 1, 3]])
    assert not torch.equal(mixed.stats[2], palette.stats[2])
    assert mixed.region_weights().tolist() == [0.0, 0.0, 1.0]  # the config's 0, hair in full
    hair_mixed = pipe.generate([face], pipe.code_table(face, style, regions={"hair": other}),
                               palettes=[mixed])
    only_codes = pipe.generate([face], pipe.code_table(face, style, regions={"hair": other}),
                               palettes=[palette])
    hair = face.mask == 2
    assert (hair_mixed.images - only_codes.images).abs()[0][:, hair].mean() > \
        5 * (hair_mixed.images - only_codes.images).abs()[0][:, ~hair].mean()


def test_a_config_with_an_invalid_palette_is_refused():
    from hypernst_cli.configs import PaletteConfig
    from hypernst_cli.errors import UsageError

    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(UsageError, match="palette: amount must be between 0 and 1"):
            PaletteConfig(amount=bad)
        with pytest.raises(UsageError, match="palette: regions must be between 0 and 1"):
            PaletteConfig(amount=0.5, regions=bad)
        with pytest.raises(UsageError, match="palette: inks must be between 0 and 1"):
            PaletteConfig(amount=0.5, inks=bad)
        with pytest.raises(UsageError, match="palette: ink_regions must be between 0 and 1"):
            PaletteConfig(amount=0.5, ink_regions=bad)


def test_the_pipeline_pulls_to_the_styles_inks_by_the_models_setting_x_the_strength(
        palette_model_dir, portraits, isolated_cache):
    from hypernst_cli.pipeline.stylize import HyperNSTPipeline

    cfg = json.loads((palette_model_dir / "config.json").read_text())
    cfg["palette"] = {"amount": 1.0, "inks": 0.5}
    (palette_model_dir / "config.json").write_text(json.dumps(cfg))
    pipe = HyperNSTPipeline.load(weights=str(palette_model_dir), config="tiny", device="cpu",
                                 backend="dlib", seed=0)
    style, other = (portraits / "styles" / n for n in ("poster-portrait.png", "halftone.png"))
    palette = pipe.palette_for(style, strength=0.5)
    assert palette.pull == pytest.approx(0.25) and palette.inks.shape == (4, INKS, 3)
    # without palette.ink_regions the pull takes the map's region weights
    torch.testing.assert_close(palette.ink_region_weights(), palette.region_weights())
    torch.testing.assert_close(palette.inks, pipe.style_codes(style).inks)
    mixed = pipe.palette_for(style, regions={"hair": other})
    torch.testing.assert_close(mixed.inks[2], pipe.palette_for(other).inks[2])
    torch.testing.assert_close(mixed.inks[[0, 1, 3]], palette.inks[[0, 1, 3]])
    assert pipe.palette_for(style, strength=0.0) is None
    face = pipe.prepare(portraits / "faces" / "astronaut.png")[0]
    codes = pipe.code_table(face, style)
    pulled = pipe.generate([face], codes, palettes=[pipe.palette_for(style)]).images
    unpulled = pipe.generate([face], codes, palettes=[replace(pipe.palette_for(style), pull=0.0)]).images
    lab = [rgb_to_lab(im)[0].flatten(1).T for im in (pulled, unpulled)]
    whole = palette.inks[3]
    assert torch.cdist(lab[0], whole).amin(1).mean() < 0.8 * torch.cdist(lab[1], whole).amin(1).mean()
    cfg["palette"] = {"amount": 1.0, "inks": 0.5, "regions": 0.25, "ink_regions": 0.75}
    (palette_model_dir / "config.json").write_text(json.dumps(cfg))
    pipe = HyperNSTPipeline.load(weights=str(palette_model_dir), config="tiny", device="cpu",
                                 backend="dlib", seed=0)
    own = pipe.palette_for(style, regions={"hair": other})
    torch.testing.assert_close(own.region_weights(), torch.tensor([0.25, 0.25, 1.0]))
    torch.testing.assert_close(own.ink_region_weights(), torch.tensor([0.75, 0.75, 1.0]))


def test_the_status_line_names_the_palette_only_where_one_is_applied(
        run_cli, palette_model_dir, portraits, isolated_cache, tmp_path):
    """`invert`, `directions check` and `edit` without `--style` said "palette 1" at model load,
    though none of them applies a palette."""
    from hypernst_cli.weights.checkpoint import save_model_file

    face = portraits / "faces" / "astronaut.png"
    style = portraits / "styles" / "poster-portrait.png"
    smile = save_model_file(tmp_path / "smile.safetensors",  # the tiny model ships no directions
                            {"directions": {"smile": torch.nn.functional.normalize(
                                torch.randn(1, 64, generator=torch.Generator().manual_seed(0)))}},
                            {}, {})
    common = ["--device", "cpu"]
    model = ["-w", palette_model_dir]
    runs = {
        "invert": run_cli(*common, "invert", face, "-o", tmp_path / "inv", *model),
        "directions check": run_cli(*common, "directions", "check", "--content", face, "-d", smile,
                                    "--steps", "2", *model),
        "edit": run_cli(*common, "edit", face, "-d", smile, "--steps", "2", "-o", tmp_path / "e",
                        *model),
    }
    for name, r in runs.items():
        assert r.exit_code == 0, (name, r.stderr)
        status = next(line for line in r.stderr.splitlines() if line.startswith("model: "))
        assert "; palette" not in status, (name, status)
    r = run_cli(*common, "edit", face, "-d", smile, "--steps", "2", "-o", tmp_path / "es",
                "--style", style, *model)
    assert r.exit_code == 0, r.stderr
    assert "; palette 1" in next(x for x in r.stderr.splitlines() if x.startswith("model: "))
