"""Error messages say what is wrong and what to do, with options the failing command has:
the no-face hint (bug 8), a bad --latent file (bug 10), an unknown --config (bug 11)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def _error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr, stderr
    return lines[0]


def _options_of(command: str) -> set[str]:
    import typer

    from hypernst_cli.cli.app import app

    click_command = typer.main.get_command(app).commands[command]  # type: ignore[attr-defined]
    return {opt for param in click_command.params for opt in (*param.opts, *param.secondary_opts)}


@pytest.fixture
def one_pixel(tmp_path) -> Path:
    path = tmp_path / "one.png"
    Image.new("RGB", (1, 1)).save(path)
    return path


@pytest.fixture
def style_png(tmp_path) -> Path:
    path = tmp_path / "style.png"
    yy, xx = np.mgrid[:64, :64]
    Image.fromarray(np.stack([xx * 4, yy * 4, xx + yy], -1).astype(np.uint8)).save(path)
    return path


@pytest.fixture
def direction_file(tmp_path) -> Path:
    import torch

    from hypernst_cli.weights.checkpoint import save_model_file

    path = tmp_path / "smile.safetensors"
    save_model_file(path, {"directions": {"smile": torch.randn(1, 64)}}, {})
    return path


# --- bug 8: the no-face hint names only options of the failing command ---------------------------


@pytest.mark.parametrize("command", ["stylize", "invert", "edit"])
def test_no_face_hint_names_only_options_the_command_has(command, run_cli, one_pixel, style_png,
                                                         direction_file, tiny_model_dir,
                                                         isolated_cache, tmp_path):
    common = ["-w", tiny_model_dir, "--backend", "dlib"]
    args = {
        "stylize": ["stylize", one_pixel, style_png, "-o", tmp_path / "o" / "x.png"],
        "invert": ["invert", one_pixel, "-o", tmp_path / "inv"],
        "edit": ["edit", one_pixel, "-d", direction_file, "-o", tmp_path / "edit"],
    }[command]
    r = run_cli("--device", "cpu", *args, *common)
    assert r.exit_code in (1, 2), r.stderr  # invert is a batch: its one item failed
    line = _error_line(r.stderr)
    assert "no face found" in line
    suggested = set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", line))
    assert suggested, line  # a stronger detector is suggested...
    assert suggested <= _options_of(command), (line, suggested)  # ...through an option it has
    assert "--detector" not in line and "--backend facexlib" in line


def test_no_face_hint_keeps_detector_where_the_command_has_it(run_cli, one_pixel, tmp_path):
    assert "--detector" in _options_of("align")
    r = run_cli("--device", "cpu", "align", one_pixel, "-o", tmp_path / "a", "--backend", "dlib")
    line = _error_line(r.stderr)
    assert r.exit_code in (1, 2) and "no face found" in line and "try --detector cnn" in line


def test_pipeline_face_processor_hint(one_pixel):
    from hypernst_cli.errors import NoFaceError
    from hypernst_cli.pipeline.session import face_processor

    gradient = np.repeat(np.linspace(0, 255, 120, dtype=np.uint8)[None, :, None], 3, axis=2)
    gradient = np.repeat(gradient, 100, axis=0)
    with pytest.raises(NoFaceError) as exc:
        face_processor("dlib").align_largest(gradient, 64, source="g.png")
    assert "--detector" not in exc.value.one_line() and "--backend facexlib" in exc.value.one_line()


# --- bug 10: a bad --latent file is a usage error that says how to make one ----------------------


def _assert_latent_error(r, bad: Path) -> None:
    assert r.exit_code == 2, r.stderr
    line = _error_line(r.stderr)
    assert str(bad) in line and "not a latent written by `hypernst invert`" in line, line
    assert "make one with `hypernst invert" in line, line
    assert "valid safetensors" not in line and "download" not in line, line


def test_bad_latent_file_is_a_usage_error(run_cli, one_pixel, style_png, direction_file,
                                          tiny_model_dir, isolated_cache, tmp_path):
    import torch

    from hypernst_cli.weights.checkpoint import save_tensors

    # an image given as the latent (not safetensors at all)
    r = run_cli("--device", "cpu", "stylize", one_pixel, style_png, "-o", tmp_path / "l.png",
                "-w", tiny_model_dir, "--latent", one_pixel)
    _assert_latent_error(r, one_pixel)
    # safetensors, but not a latent (no W+)
    other = save_tensors(tmp_path / "other.safetensors", {"x": torch.zeros(2)})
    r = run_cli("--device", "cpu", "edit", one_pixel, "-d", direction_file, "-o", tmp_path / "e",
                "-w", tiny_model_dir, "--latent", other)
    _assert_latent_error(r, other)


# --- bug 11: an unknown --config is a usage error, the same everywhere -----------------------------


def test_unknown_config_is_a_usage_error(run_cli, one_pixel, style_png, isolated_cache, tmp_path):
    r = run_cli("--device", "cpu", "stylize", one_pixel, style_png, "-o", tmp_path / "x.png",
                "--config", "nonsense")
    assert r.exit_code == 2, r.stderr
    line = _error_line(r.stderr)
    assert line.startswith("error: unknown model config 'nonsense' (choose one of: ")
    r_align = run_cli("--device", "cpu", "align", one_pixel, "-o", tmp_path / "a", "--config", "nonsense")
    assert r_align.exit_code == 2 and _error_line(r_align.stderr) == line


def test_resolve_weights_checks_the_config_first():
    from hypernst_cli.errors import UsageError
    from hypernst_cli.weights.checkpoint import resolve_weights

    with pytest.raises(UsageError, match="unknown model config 'nonsense'"):
        resolve_weights(None, "nonsense", registry={})
