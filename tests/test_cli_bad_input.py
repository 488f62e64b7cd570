"""Bad command lines a user can type: each gets one line, the right exit code, and loses no work.
(Found by trying the tool as a new user would; each test names what once went wrong.)"""

from __future__ import annotations

import pytest

from hypernst_cli.io import load_image


@pytest.fixture
def photo(portraits):
    return sorted((portraits / "photos").glob("*.jpg"))[0]


@pytest.fixture
def style(portraits):
    return portraits / "styles" / "poster-portrait.png"


def _one_line_error(r, code: int, text: str) -> None:
    lines = r.stderr.strip().splitlines()
    assert r.exit_code == code, r.stderr
    assert len(lines) == 1 and lines[0].startswith("error:") and text in lines[0], r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("args, text", [
    (["stylize", "a.png", "b.png", "-o", "x.png", "--strength", "2"], "--strength"),
    (["stylize", "a.png", "b.png", "-o", "x.png", "--detector", "cnn"], "No such option"),
    (["stylize", "-o", "x.png"], "Missing argument"),
    (["no-such-command"], "No such command"),
    # an option with a minimum and no maximum let inf (and nan) through
    (["stylize", "a.png", "b.png", "-o", "x.png", "--detail", "inf"], "not a finite number"),
])
def test_parser_errors_are_one_line_with_where_to_look(run_cli, args, text):
    """The command-line parser's errors were a multi-line usage box."""
    r = run_cli(*args)
    _one_line_error(r, 2, text)
    assert "--help" in r.stderr


def test_a_non_finite_edit_strength_is_refused(run_cli, photo, tiny_model_dir, tmp_path):
    """``--strength nan..nan`` rendered all-black frames with exit 0."""
    r = run_cli("--device", "cpu", "edit", photo, "-d", "smile", "--strength", "nan..nan",
                "-o", tmp_path / "e", "-w", tiny_model_dir)
    _one_line_error(r, 2, "finite")
    assert not (tmp_path / "e").exists()


def test_name_templates_take_plain_fields_only(run_cli, photo, style, tiny_model_dir, tmp_path):
    """``--name "{content.upper}"`` named a file after a bound method."""
    for template, text in (("{content.upper}", "unknown field '{content.upper}'"),
                           ("{nope}", "unknown field '{nope}'"), ("{content", "invalid --name")):
        r = run_cli("--device", "cpu", "stylize", photo, style, "-o", tmp_path / "o",
                    "--name", template, "-w", tiny_model_dir)
        _one_line_error(r, 2, text)
    assert not (tmp_path / "o").exists()


def test_two_results_with_the_same_name_are_refused_before_the_model_runs(
        run_cli, portraits, style, tiny_model_dir, isolated_cache, tmp_path):
    """``--name "{style}"`` with two photos wrote one file and counted the other skipped, exit 0."""
    photos = sorted((portraits / "photos").glob("*.jpg"))[:2]
    r = run_cli("--device", "cpu", "stylize", *photos, style, "-o", tmp_path / "o",
                "--name", "{style}", "-w", tiny_model_dir)
    _one_line_error(r, 2, "would both be written to")
    assert not (tmp_path / "o").exists()


def test_all_faces_needs_a_folder(run_cli, photo, style, tiny_model_dir, tmp_path):
    """``--all-faces -o out.png`` made a folder called out.png."""
    r = run_cli("--device", "cpu", "stylize", photo, style, "-o", tmp_path / "out.png",
                "--all-faces", "-w", tiny_model_dir)
    _one_line_error(r, 2, "--all-faces writes one file per face")
    assert not (tmp_path / "out.png").exists()


def test_a_bad_latent_file_is_a_usage_error_not_a_weights_one(run_cli, photo, style,
                                                               tiny_model_dir, tmp_path):
    """An image given as ``--latent`` said "download it again" (exit 3, a weights error)."""
    r = run_cli("--device", "cpu", "stylize", photo, style, "--latent", style,
                "-o", tmp_path / "l.png", "-w", tiny_model_dir)
    _one_line_error(r, 2, "not a latent written by `hypernst invert`")
    assert "download" not in r.stderr


def test_invert_keeps_both_faces_with_the_same_file_name(run_cli, photo, tiny_model_dir,
                                                         isolated_cache, tmp_path):
    """``invert a/face.jpg b/face.jpg`` wrote one latent and counted the other skipped, exit 0."""
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        (tmp_path / sub / "face.jpg").write_bytes(photo.read_bytes())
    r = run_cli("--device", "cpu", "invert", tmp_path / "a" / "face.jpg",
                tmp_path / "b" / "face.jpg", "-o", tmp_path / "inv", "-w", tiny_model_dir)
    assert r.exit_code == 0, r.stderr
    names = sorted(p.name for p in (tmp_path / "inv").glob("*.latent.safetensors"))
    assert names == ["a_face.latent.safetensors", "b_face.latent.safetensors"]


def test_align_makes_crops_the_size_of_the_model_it_feeds(run_cli, photo, tmp_path):
    """The embedded compact model is 256 px (grown from the 128 px config); align's default
    size was the config's, so its crops were half the model's size."""
    from hypernst_cli.cli.faces_batch import resolve_size

    assert resolve_size(None, "compact", of_weights=True) == 256
    assert resolve_size(None, "compact") == 128  # `train prepare`: data for the config itself
    assert resolve_size(None, "tiny", of_weights=True) == 64  # no weights: the config's
    r = run_cli("--device", "cpu", "align", photo, "-o", tmp_path / "al", "--backend", "dlib")
    assert r.exit_code == 0, r.stderr
    assert load_image(tmp_path / "al" / f"{photo.stem}.png").shape == (256, 256, 3)
