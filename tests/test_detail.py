"""Detail restoration (the model config's ``detail``): what it adds, and where it is not applied."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from hypernst_cli.models.filters import gaussian_blur, luminance
from hypernst_cli.pipeline.core import restore_detail


def test_restore_detail_adds_only_the_contents_fine_luminance_detail():
    gen = torch.Generator().manual_seed(0)
    output = torch.rand(2, 3, 32, 32, generator=gen) * 0.5 - 0.25
    content = torch.rand(2, 3, 32, 32, generator=gen) * 0.6 - 0.3  # no clamping below
    assert torch.equal(restore_detail(output, content, 0.0, 2.0), output)

    added = restore_detail(output, content, 1.0, 2.0) - output
    # the same amount on R, G and B (the output's colours stay its own) ...
    assert torch.allclose(added[:, 0], added[:, 1], atol=1e-6)
    assert torch.allclose(added[:, 0], added[:, 2], atol=1e-6)
    # ... and it is the content's luma minus its blur, scaled by the strength
    luma = luminance(content)
    assert torch.allclose(added[:, :1], luma - gaussian_blur(luma, 2.0), atol=1e-5)
    half = restore_detail(output, content, 0.5, 2.0) - output
    assert torch.allclose(half, added / 2, atol=1e-5)

    smooth = gaussian_blur(content, 6.0)  # nothing finer than 2 px left: almost nothing added
    assert (restore_detail(output, smooth, 1.0, 2.0) - output).abs().mean() < 0.1 * added.abs().mean()
    assert restore_detail(output * 4, content, 1.0, 2.0).abs().max() <= 1.0  # stays in range


@pytest.fixture
def detailed_model_dir(tiny_model_dir, tmp_path):
    """The tiny test model with detail restoration on in its config (as the compact one has)."""
    folder = tmp_path / "tiny-detail"
    shutil.copytree(tiny_model_dir, folder)
    cfg = json.loads((folder / "config.json").read_text())
    cfg["detail"] = {"strength": 1.0, "sigma": 2.0}
    (folder / "config.json").write_text(json.dumps(cfg))
    return folder


def test_pipeline_restores_detail_on_stylized_outputs_but_not_on_edits(detailed_model_dir,
                                                                      portraits, isolated_cache):
    from hypernst_cli.pipeline.core import edit_wplus
    from hypernst_cli.pipeline.stylize import HyperNSTPipeline

    photo = sorted((portraits / "photos").glob("*.jpg"))[0]

    def loaded(detail):
        return HyperNSTPipeline.load(weights=str(detailed_model_dir), config="tiny", device="cpu",
                                     backend="dlib", seed=0, detail=detail)

    pipe = loaded(None)
    assert pipe.detail == 1.0  # the model's setting
    face = pipe.prepare(photo)[0]
    result = pipe.generate([face], face.own_codes.table)
    raw = result.iterations[-1]
    expected = restore_detail(raw, face.image[None], 1.0, 2.0)
    assert torch.allclose(result.images, expected, atol=1e-5)
    assert (result.images - raw).abs().mean() > 1e-3

    plain = loaded(0.0)
    assert plain.detail == 0.0
    face0 = plain.prepare(photo)[0]
    assert torch.allclose(plain.generate([face0], face0.own_codes.table).images, raw, atol=1e-5)

    # an edited latent renders another geometry: the content's detail would not line up
    edited = edit_wplus(face.wplus[None], torch.ones(face.wplus.shape[-1]), 1.0)
    out = pipe.generate([face], face.own_codes.table, latent=edited)
    assert torch.equal(out.images, out.iterations[-1])
    # a latent given from a file need not be this image's: no detail either
    given = pipe.prepare_image(face.photo, latent=face.wplus)[0]
    out = pipe.generate([given], given.own_codes.table)
    assert torch.equal(out.images, out.iterations[-1])


def test_detail_option_on_the_command_line(run_cli, detailed_model_dir, portraits,
                                           isolated_cache, tmp_path):
    import numpy as np

    from hypernst_cli.io import load_image

    photo = sorted((portraits / "photos").glob("*.jpg"))[0]
    style = portraits / "styles" / "poster-portrait.png"
    common = ["--device", "cpu", "stylize", photo, style, "-w", detailed_model_dir, "--seed", "0"]
    r = run_cli(*common, "-o", tmp_path / "default.png")
    assert r.exit_code == 0, r.stderr
    assert "detail 1" in r.stderr
    run_cli(*common, "-o", tmp_path / "off.png", "--detail", "0")
    run_cli(*common, "-o", tmp_path / "one.png", "--detail", "1")
    a, b, c = (load_image(tmp_path / f"{n}.png").astype(int) for n in ("default", "off", "one"))
    assert np.array_equal(a, c) and np.abs(a - b).mean() > 0.5
    r = run_cli(*common, "-o", tmp_path / "bad.png", "--detail", "-1")
    assert r.exit_code == 2 and not (tmp_path / "bad.png").exists()


def test_a_config_with_an_invalid_detail_section_is_refused(run_cli, detailed_model_dir, tmp_path,
                                                            portraits):
    """A negative strength (or a sigma <= 0) in config.json is a one-line error, not an image
    with the detail subtracted."""
    from hypernst_cli.configs import DetailConfig
    from hypernst_cli.errors import UsageError

    for bad in ({"strength": -1.0}, {"sigma": 0.0}, {"strength": float("nan")}):
        with pytest.raises(UsageError, match="detail: strength must be >= 0 and sigma > 0"):
            DetailConfig(**bad)
    broken = tmp_path / "broken"
    shutil.copytree(detailed_model_dir, broken)
    config = json.loads((broken / "config.json").read_text())
    config["detail"]["strength"] = -0.5
    (broken / "config.json").write_text(json.dumps(config))
    face = portraits / "faces" / "astronaut.png"
    style = portraits / "styles" / "poster-portrait.png"
    r = run_cli("--device", "cpu", "stylize", face, style, "-w", broken, "-o", tmp_path / "x.png")
    assert r.exit_code != 0 and not (tmp_path / "x.png").exists()
    assert "detail: strength must be >= 0" in r.stderr and "Traceback" not in r.stderr
