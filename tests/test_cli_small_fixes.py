"""Small CLI fixes: each test names what once went wrong (found by trying the tool as a user)."""

from __future__ import annotations

import hashlib
import json

import pytest
from hub_stub import hub, write_registry  # noqa: F401 - `hub` is a fixture


def _one_line_error(r, code: int, text: str) -> str:
    lines = r.stderr.strip().splitlines()
    assert r.exit_code == code, r.stderr
    assert len(lines) == 1 and lines[0].startswith("error:") and text in lines[0], r.stderr
    assert "Traceback" not in r.stderr
    return lines[0]


# --- download --config: manual-download entries ---------------------------------------------------


@pytest.fixture
def manual_registry(hub, tmp_path, monkeypatch):  # noqa: F811 - pytest fixture injection
    data = b"downloadable bytes"
    hub.add_file("someone/repo", "auto.bin", data)
    write_registry(tmp_path / "weights.toml", [
        dict(name="auto", kind="generator", configs=["paper"], repo_id="someone/repo",
             filename="auto.bin", sha256=hashlib.sha256(data).hexdigest()),
        dict(name="aladin-by-hand", kind="aladin", configs=["paper"], filename="aladin.pt",
             homepage="https://example.org/releases", converter="aladin"),
    ], monkeypatch)


def test_download_config_says_which_weights_it_did_not_fetch(manual_registry, run_cli):
    """``download --config paper`` skipped the manual ``aladin-vit`` without a word."""
    r = run_cli("--quiet", "download", "--config", "paper")
    assert r.exit_code == 0, r.stderr
    assert "auto" in r.stdout
    warnings = [line for line in r.stderr.splitlines() if "aladin-by-hand" in line]
    assert len(warnings) == 1, r.stderr
    line = warnings[0]
    assert line.startswith("warning: skipped aladin-by-hand")
    assert "https://example.org/releases" in line and "hypernst convert aladin" in line

    r = run_cli("--quiet", "download", "--config", "paper", "--json")
    assert r.exit_code == 0, r.stderr
    rows = {row["name"]: row for row in map(json.loads, r.stdout.splitlines())}
    assert rows["auto"]["ok"]
    skipped = rows["aladin-by-hand"]
    assert skipped["skipped"] is True and not skipped["ok"]
    assert "manual download" in skipped["reason"]
    assert "https://example.org/releases" in skipped["reason"]


# --- edit -d NAME: an unknown name is a usage error ---------------------------------------------


@pytest.fixture
def photo(portraits):
    return sorted((portraits / "photos").glob("*.jpg"))[0]


def test_an_unknown_direction_name_is_a_usage_error(run_cli, photo, tiny_model_dir, tmp_path):
    """``edit -d grin`` exited 3 ("no 'grin' edit direction"), as if weights were missing."""
    r = run_cli("-q", "--device", "cpu", "edit", photo, "-d", "grin", "-o", tmp_path / "e",
                "-w", tiny_model_dir)
    line = _one_line_error(r, 2, "unknown edit direction 'grin'")
    assert "age, pose, smile" in line and ".safetensors" in line
    assert not (tmp_path / "e").exists()
    # a known direction this model does not ship is still a weights problem
    r = run_cli("-q", "--device", "cpu", "edit", photo, "-d", "age", "-o", tmp_path / "e",
                "-w", tiny_model_dir)
    _one_line_error(r, 3, "no 'age' edit direction")


def test_edit_says_a_palette_without_a_style_does_nothing(run_cli, photo, tiny_model_dir,
                                                           tmp_path):
    """``edit --palette 1`` (or ``--style-strength``) without ``--style`` changed nothing,
    without a word: the palette is the style's."""
    for option in (("--palette", "1"), ("--style-strength", "0.5")):
        r = run_cli("--device", "cpu", "edit", photo, "-d", "age", "-o", tmp_path / "e",
                    "-w", tiny_model_dir, *option)
        assert f"{option[0]} applies only with --style; ignored" in r.stderr, r.stderr
    r = run_cli("--device", "cpu", "edit", photo, "-d", "age", "-o", tmp_path / "e",
                "-w", tiny_model_dir)
    assert "applies only with --style" not in r.stderr


# --- HYPERNST_COMPILE / HYPERNST_PRECISION: garbage is refused, naming the variable ------------


@pytest.mark.parametrize("value, expected", [
    ("1", True), ("TRUE", True), (" yes ", True), ("on", True),
    ("0", False), ("false", False), ("No", False), ("off", False), ("", False), ("  ", False),
])
def test_compile_variable_takes_yes_and_no(monkeypatch, value, expected):
    from hypernst_cli.pipeline.stylize import compile_from_env

    monkeypatch.setenv("HYPERNST_COMPILE", value)
    assert compile_from_env() is expected
    assert compile_from_env(not expected) is (not expected)  # --compile/--no-compile win


@pytest.mark.parametrize("variable, value, text", [
    ("HYPERNST_COMPILE", "maybe", "HYPERNST_COMPILE='maybe'"),
    ("HYPERNST_COMPILE", "2", "HYPERNST_COMPILE='2'"),
    ("HYPERNST_PRECISION", "fp8", "unknown precision 'fp8' in HYPERNST_PRECISION"),
])
def test_garbage_speed_variables_are_refused(run_cli, photo, monkeypatch, tiny_model_dir,
                                             tmp_path, variable, value, text):
    """``HYPERNST_COMPILE=maybe`` was silently read as off; a bad HYPERNST_PRECISION's error did
    not say it came from the environment."""
    monkeypatch.setenv(variable, value)
    r = run_cli("-q", "--device", "cpu", "invert", photo, "-o", tmp_path / "inv",
                "-w", tiny_model_dir)
    line = _one_line_error(r, 2, text)
    if variable == "HYPERNST_COMPILE":
        assert "1, true, yes or on" in line and "0, false, no, off or empty" in line
    else:
        assert "fp32, bf16, fp16" in line
    assert not (tmp_path / "inv").exists()


# --- convert: pickles the weights-only loader refuses get our own one-line answer -----------------


class _ListState:
    """Pickles as argparse.Namespace (on the allow-list) built from a list: the weights-only
    loader accepts the global, then the state makes Namespace raise TypeError."""

    def __reduce__(self):
        import argparse

        return (argparse.Namespace, (), [1, 2])


def test_a_pickle_the_safe_loader_refuses_gets_our_own_line_not_torchs_advice(run_cli, tmp_path):
    """The refusal echoed torch's hint to re-run with ``weights_only=False`` (unsafe)."""
    src = tmp_path / "old.pt"
    src.write_bytes(b"(i__main__\nThing\n(dp0\nb.")  # protocol 0 INST: builds an object
    r = run_cli("convert", "directions", src, "-o", tmp_path / "out.safetensors")
    line = _one_line_error(r, 3, "cannot read this pickle safely")
    assert "INST" in line and "never executes" in line and "torch.save(state_dict)" in line
    assert "weights_only" not in line and "Re-running" not in line and "trusted source" not in line
    assert not (tmp_path / "out.safetensors").exists()

    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"\x00junk" * 10)  # not a pickle at all: damaged, not unsafe
    r = run_cli("convert", "stylegan2", junk, "-o", tmp_path / "out")
    line = _one_line_error(r, 3, "not a PyTorch checkpoint (neither a zip")
    assert "weights_only" not in line and "pickle safely" not in line

    import torch

    odd = tmp_path / "odd.pt"
    torch.save({"opts": _ListState()}, odd)
    r = run_cli("convert", "e4e", odd, "-o", tmp_path / "out")  # was an internal error (exit 70)
    _one_line_error(r, 3, "not a readable PyTorch checkpoint")


def test_convert_prints_no_torch_warning_above_its_refusal(python_exe, tmp_path):
    """``convert directions`` printed torch's two-line UserWarning ("Detected pickle protocol 4")
    above its error. (A real process: pytest would swallow the warning in-process.)"""
    import pickle
    import subprocess

    src = tmp_path / "plain.pt"
    src.write_bytes(pickle.dumps({"age": [0.1, 0.2]}, protocol=4))  # pickle.dump, not torch.save
    r = subprocess.run([python_exe, "-m", "hypernst_cli", "convert", "directions", src,
                        "-o", tmp_path / "age.safetensors"], capture_output=True, text=True,
                       timeout=120)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 3, r.stderr
    assert len(lines) == 1 and lines[0].startswith("error:"), r.stderr
    assert "cannot read this pickle safely" in lines[0] and "FRAME" in lines[0]
    assert "UserWarning" not in r.stderr and "weights_only" not in r.stderr


# --- stylize -o FILE --format: a conflict is refused -----------------------------------------------


@pytest.fixture
def style(portraits):
    return portraits / "styles" / "poster-portrait.png"


def test_format_that_disagrees_with_the_output_file_is_refused(run_cli, photo, style,
                                                               tiny_model_dir, isolated_cache,
                                                               tmp_path):
    """``--format jpg -o out.png`` wrote a PNG and ignored --format without a word."""
    r = run_cli("-q", "--device", "cpu", "stylize", photo, style, "-o", tmp_path / "out.png",
                "--format", "jpg", "-w", tiny_model_dir)
    line = _one_line_error(r, 2, "is a .png file but --format is jpg")
    assert "out.jpg" in line and "drop --format" in line
    assert not (tmp_path / "out.png").exists()
    # agreeing (.jpeg is jpg) is fine, and so is a folder
    r = run_cli("-q", "--device", "cpu", "stylize", photo, style, "-o", tmp_path / "out.jpeg",
                "--format", "jpg", "-w", tiny_model_dir)
    assert r.exit_code == 0, r.stderr
    assert (tmp_path / "out.jpeg").read_bytes()[:3] == b"\xff\xd8\xff"


# --- evaluate --analogies --draws: the default stays 2, and the help says why ----------------------


def test_draws_help_says_how_draws_and_limit_set_the_items(run_cli):
    """The help said only "Draws per family." (default 2) while the README's figures use 8 draws;
    8 by default would measure 4x the items (every draw x every face pair) unless --limit."""
    from hypernst_cli.eval.analogies import plan_items

    assert len(plan_items(7, ["pastel"], draws=8)) == 4 * len(plan_items(7, ["pastel"], draws=2))
    assert len(plan_items(7, ["pastel"], draws=8, limit=24)) == 24
    r = run_cli("evaluate", "--help")
    assert r.exit_code == 0, r.stderr
    text = " ".join(r.stdout.split())
    assert "--draws 8 --limit 24" in text and "unless --limit samples them" in text


# --- fp16 on a CPU: a warning, not silence ----------------------------------------------------------


@pytest.mark.parametrize("source", ["option", "environment"])
def test_fp16_on_a_cpu_warns_that_it_is_slow(run_cli, photo, monkeypatch, tiny_model_dir, tmp_path,
                                             source):
    """``--precision fp16`` (or HYPERNST_PRECISION=fp16) on a CPU ran ~50x slower than fp32
    without a word."""
    monkeypatch.delenv("HYPERNST_PRECISION", raising=False)
    if source == "environment":
        monkeypatch.setenv("HYPERNST_PRECISION", "fp16")
    option = ["--precision", "fp16"] if source == "option" else []

    def warnings_of(*extra: str) -> list[str]:
        # edit with an unknown direction stops right after the models load: the warning is said
        # there, before any slow work, and the test needs no fp16 forward pass
        r = run_cli("-q", "--device", "cpu", "edit", photo, "-d", "grin", "-o", tmp_path / "e",
                    "-w", tiny_model_dir, *extra)
        assert r.exit_code == 2, r.stderr
        return [line for line in r.stderr.splitlines() if line.startswith("warning:")]

    found = warnings_of(*option)
    assert len(found) == 1, found
    where = "--precision fp16" if source == "option" else "HYPERNST_PRECISION=fp16"
    assert found[0].startswith(f"warning: {where}: fp16 is meant for GPUs")
    assert "bf16 or fp32" in found[0]
    assert warnings_of("--precision", "bf16") == []  # bf16 is as fast as fp32 on a CPU


# --- stylize --size with --paste-back ------------------------------------------------------------


def test_size_does_not_shrink_the_pasted_face(run_cli, photo, style, tiny_model_dir, isolated_cache,
                                              tmp_path):
    """``--size 32 --paste-back`` (below the model's 64 px) shrank the stylized crop to 32 px and
    warped that back up to the face's size: a blurred face, without a word."""
    import numpy as np

    from hypernst_cli.io import load_image

    common = ["--device", "cpu", "stylize", photo, style, "--paste-back", "-w", tiny_model_dir]
    r = run_cli("-q", *common, "-o", tmp_path / "plain.png")
    assert r.exit_code == 0, r.stderr
    r = run_cli("-q", *common, "-o", tmp_path / "sized.png", "--size", "32")
    assert r.exit_code == 0, r.stderr
    warnings = [line for line in r.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "--size 32 does not apply with --paste-back" in warnings[0]
    plain = load_image(tmp_path / "plain.png").astype(int)
    sized = load_image(tmp_path / "sized.png").astype(int)
    assert plain.shape == sized.shape == load_image(photo).shape
    assert (np.abs(plain - sized) > 1).sum() == 0  # the same paste (rounding aside)
