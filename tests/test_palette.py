"""The palette post-process (pipeline/palette.py): the Lab conversions, the moment match, the
palettes of interpolation, the pipeline's and the command line's use of it (tiny model)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from hypernst_cli.pipeline.palette import (
    Palette,
    apply_palettes,
    between,
    colour_statistics,
    lab_to_rgb,
    region_statistics,
    rgb_to_lab,
)


def _whole(stats: torch.Tensor, amount: float) -> Palette:
    """A palette of one image's statistics [2, 3] for every region (and the whole image)."""
    return Palette(stats.expand(4, 2, 3).clone(), amount)


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


def test_apply_palettes_moves_each_image_to_its_palettes_statistics_by_its_amount():
    x, style = _images(1), _images(2, batch=1)
    # a target well inside sRGB (so clipping does not bend the statistics)
    target = colour_statistics(style * 0.5)[0]
    full = apply_palettes(x, [_whole(target, 1.0), None])
    torch.testing.assert_close(colour_statistics(full[:1])[0], target, atol=2e-3, rtol=0)
    torch.testing.assert_close(full[1], x[1])  # no palette: untouched
    half = apply_palettes(x, [_whole(target, 0.5), _whole(target, 0.0)])
    own = colour_statistics(x[:1])[0]
    torch.testing.assert_close(colour_statistics(half[:1])[0], (own + target) / 2, atol=5e-3,
                               rtol=0)
    torch.testing.assert_close(half[1], x[1])  # amount 0: untouched
    assert apply_palettes(x, [None, None]) is x
    with pytest.raises(ValueError, match="palettes for"):
        apply_palettes(x, [None])
    # a flat channel is only shifted (no division by its zero spread)
    flat = torch.zeros(1, 3, 8, 8)
    assert torch.isfinite(apply_palettes(flat, [_whole(target, 1.0)])).all()


def _three_regions(size: int = 48) -> torch.Tensor:
    """Region labels [1, S, S]: background left third, face middle, hair right third."""
    mask = torch.zeros(1, size, size, dtype=torch.long)
    mask[..., size // 3: 2 * size // 3] = 1
    mask[..., 2 * size // 3:] = 2
    return mask


def test_region_statistics_per_region_and_the_whole_image_for_a_missing_region():
    x = _images(3, batch=1, size=48)
    mask = _three_regions()
    table = region_statistics(x, mask)[0]
    assert table.shape == (4, 2, 3)
    torch.testing.assert_close(table[3], colour_statistics(x)[0])
    torch.testing.assert_close(table[2], colour_statistics(x[..., 32:])[0], atol=1e-5, rtol=0)
    mask[..., 32:] = 1  # no hair: its row is the whole image's
    table = region_statistics(x, mask)[0]
    torch.testing.assert_close(table[2], table[3])
    torch.testing.assert_close(region_statistics(x, None)[0, 0], table[3])


def test_each_region_takes_its_own_palette_by_its_weight_and_weight_0_moves_the_image_as_one():
    x = _images(4, batch=1, size=48) * 0.4
    mask = _three_regions()
    # a style whose three regions have three different palettes
    style = torch.cat([_images(5, batch=1, size=48)[..., :16] * 0.3 + 0.5,
                       _images(6, batch=1, size=48)[..., 16:32] * 0.3 - 0.4,
                       _images(7, batch=1, size=48)[..., 32:] * 0.2], dim=-1)
    table = region_statistics(style, mask)[0]
    cols = (slice(0, 12), slice(20, 28), slice(36, 48))  # inside each region, off its borders
    out = apply_palettes(x, [Palette(table, 1.0, torch.ones(3))], mask)
    for region, c in enumerate(cols):  # each region's own mean, not the others'
        got = colour_statistics(out[..., c])[0, 0]
        errors = (table[:3, 0] - got).abs().sum(1)
        assert int(errors.argmin()) == region, (region, errors)
        assert errors[region] < 0.02
    whole = apply_palettes(x, [Palette(table, 1.0)], mask)  # no weights: as one
    torch.testing.assert_close(colour_statistics(whole)[0], table[3], atol=2e-3, rtol=0)
    torch.testing.assert_close(apply_palettes(x, [Palette(table, 1.0, torch.zeros(3))], mask),
                               whole)
    # without masks every palette moves the image as one
    torch.testing.assert_close(apply_palettes(x, [Palette(table, 1.0, torch.ones(3))]), whole)
    # only the hair weighted: the hair half-way between the two matches, the rest as one
    half = apply_palettes(x, [Palette(table, 1.0, torch.tensor([0.0, 0.0, 0.5]))], mask)
    torch.testing.assert_close(half[..., :28], whole[..., :28], atol=1e-5, rtol=0)
    hair = [colour_statistics(im[..., cols[2]])[0, 0] for im in (whole, half, out)]
    torch.testing.assert_close(hair[1], (hair[0] + hair[2]) / 2, atol=5e-3, rtol=0)


def test_palettes_between_two_ends():
    a, b = Palette(torch.zeros(4, 2, 3), 1.0), Palette(torch.ones(4, 2, 3), 0.5)
    assert between(None, None, 0.5) is None
    assert between(None, b, 0.0).amount == 0.0 and between(None, b, 1.0).amount == 0.5
    assert between(a, None, 1.0).amount == 0.0
    mid = between(a, b, 0.5)
    torch.testing.assert_close(mid.stats, torch.full((4, 2, 3), 0.5))
    assert mid.amount == pytest.approx(0.75)
    weighted = Palette(torch.ones(4, 2, 3), 1.0, torch.ones(3))
    assert between(a, weighted, 0.25).region_weights().tolist() == [0.25] * 3


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
