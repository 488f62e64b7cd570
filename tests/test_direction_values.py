"""Directions with unusable values or a layer count the model cannot take are refused (exit 2):
by `hypernst convert directions`, and when `hypernst edit` resolves one for the tiny model
(resolution 64: 10 W+ latents of 64 dimensions)."""

from __future__ import annotations

import numpy as np
import pytest
import torch


def _bad(kind: str, shape=(1, 64)) -> np.ndarray:
    d = np.random.default_rng(0).standard_normal(shape).astype("f4")
    if kind == "nan":
        d[0, 5] = np.nan
    elif kind == "inf":
        d[0, 5] = np.inf
    elif kind == "zeros":
        d[:] = 0
    return d


EXPECTED = {"nan": "has NaN or inf values", "inf": "has NaN or inf values",
            "zeros": "is all zeros: it would not edit anything"}


@pytest.mark.parametrize("kind", ["nan", "inf", "zeros"])
def test_convert_refuses_bad_values(kind, run_cli, tmp_path):
    src = tmp_path / f"d_{kind}.npy"
    np.save(src, _bad(kind))
    dst = tmp_path / "out.safetensors"
    r = run_cli("convert", "directions", src, "-o", dst)
    assert r.exit_code == 2, r.stderr
    assert f"direction 'd_{kind}' {EXPECTED[kind]}" in r.stderr and str(src) in r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not dst.exists()


def _direction_file(path, vector: np.ndarray):
    """A direction file written directly (as another tool or an older converter would)."""
    from hypernst_cli.weights.checkpoint import save_model_file

    return save_model_file(path, {"directions": {"x": torch.from_numpy(vector)}}, {}, {})


@pytest.mark.parametrize("kind,shape,message", [
    ("nan", (1, 64), EXPECTED["nan"]),
    ("zeros", (1, 64), EXPECTED["zeros"]),
    ("ok", (3, 64), "has 3 layers; this model takes 1 (one for every layer) or 10"),
])
def test_edit_refuses_unusable_directions(kind, shape, message, run_cli, portraits,
                                          tiny_model_dir, tmp_path):
    path = _direction_file(tmp_path / f"{kind}.safetensors", _bad(kind, shape))
    r = run_cli("--device", "cpu", "edit", portraits / "faces" / "astronaut.png", "-d", path,
                "-w", tiny_model_dir, "--steps", "2", "--strength", "-1..1", "-o", tmp_path / "e")
    assert r.exit_code == 2, r.stderr
    assert f"direction 'x' {message}" in r.stderr and str(path) in r.stderr
    assert "Traceback" not in r.stderr
    assert len([line for line in r.stderr.splitlines() if line.startswith("error:")]) == 1


def test_resolve_direction_takes_one_or_every_layer(tiny_model_dir):
    from hypernst_cli.pipeline.directions import resolve_direction
    from hypernst_cli.pipeline.models import load_models

    models = load_models(str(tiny_model_dir), None, torch.device("cpu"), ())
    for shape in ((64,), (1, 64), (10, 64), (1, 10, 64)):
        models.directions["d"] = torch.randn(shape)
        assert resolve_direction("d", models)[1].shape == shape
