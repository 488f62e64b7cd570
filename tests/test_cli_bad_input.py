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


def test_output_names_do_not_depend_on_the_order_of_the_inputs(tmp_path):
    """``segment dir/face.png dir/face.jpg`` then ``segment dir`` swapped the two faces' names
    (face, face-2 by order) and skipped both as done: every file was attributed to the other."""
    from pathlib import Path

    from hypernst_cli.io.inputs import unique_stems

    png, jpg = Path("d/face.png"), Path("d/face.jpg")
    assert unique_stems([png, jpg]) == unique_stems([jpg, png]) == {png: "d_face_png",
                                                                    jpg: "d_face_jpg"}
    a, b = Path("a/x/face.png"), Path("b/x/face.png")
    assert unique_stems([a, b]) == {a: "a_x_face_png", b: "b_x_face_png"}
    assert unique_stems([Path("a/face.jpg"), Path("b/face.jpg"), Path("c/other.png")]) == {
        Path("a/face.jpg"): "a_face", Path("b/face.jpg"): "b_face", Path("c/other.png"): "other"}


def test_a_missing_or_folder_style_is_an_input_error(run_cli, photo, tmp_path):
    """``interpolate FACE nonexist.png`` was an internal error (exit 70) after the models loaded."""
    for bad, text in ((tmp_path / "nonexist.png", "no such file"), (tmp_path, "a folder")):
        r = run_cli("--device", "cpu", "interpolate", photo, bad, "--steps", "2",
                    "-o", tmp_path / "i")
        _one_line_error(r, 2, text)
        assert "model:" not in r.stderr  # refused before the models load


def test_a_file_where_a_cache_folder_should_be_is_a_write_error(run_cli, tmp_path, monkeypatch):
    """``HF_HOME`` set to a file made `download` an internal error (NotADirectoryError, exit 70)."""
    blocker = tmp_path / "cachefile"
    blocker.write_text("x")
    monkeypatch.setenv("HF_HOME", str(blocker))
    r = run_cli("download", "interfacegan-age")
    _one_line_error(r, 74, "a file is in the way of a folder")
    assert blocker.read_text() == "x"


@pytest.mark.parametrize("value", ["abc", "-5", "0", "inf"])
def test_a_bad_pixel_limit_is_refused(value, monkeypatch):
    """``HYPERNST_MAX_PIXELS=abc`` was ignored and ``-5`` made every image "over the limit"."""
    from hypernst_cli.errors import UsageError
    from hypernst_cli.io.images import max_pixels_default

    monkeypatch.setenv("HYPERNST_MAX_PIXELS", value)
    with pytest.raises(UsageError, match="HYPERNST_MAX_PIXELS"):
        max_pixels_default()


def test_a_region_given_twice_or_as_a_folder_is_refused(run_cli, photo, style, tmp_path):
    r = run_cli("stylize", photo, style, "-o", tmp_path / "o.png",
                "--region", f"hair={style},hair={style}")
    _one_line_error(r, 2, "region 'hair' is given twice")
    r = run_cli("stylize", photo, style, "-o", tmp_path / "o.png", "--region", f"hair={tmp_path}")
    _one_line_error(r, 2, "a folder")


def test_listing_the_weights_of_an_unknown_config_is_refused(run_cli):
    """``weights list --config bogus`` printed an empty table with exit 0."""
    _one_line_error(run_cli("weights", "list", "--config", "bogus"), 2, "config 'bogus'")
    assert run_cli("weights", "list", "--config", "compact").exit_code == 0


def test_a_failed_download_still_prints_its_json_line(run_cli, tmp_path, monkeypatch):
    """``download NAME --json`` printed nothing on stdout when the one file failed."""
    import json

    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # no network here, and none wanted in a test
    r = run_cli("download", "interfacegan-age", "--json")
    assert r.exit_code == 3, r.stderr
    line = json.loads(r.stdout.strip().splitlines()[-1])
    assert line["name"] == "interfacegan-age" and line["ok"] is False and line["error"]


def test_outputs_that_would_be_inputs_or_odd_paths_are_refused(run_cli, photo, style, tmp_path):
    """`-o` an input folder made every rerun stylize the last run's outputs; `-o x.gif` made a
    folder named x.gif; `--name ../x` wrote outside -o and `--name x.png` wrote x.png.png;
    `-o` the content photo said "skipped" with exit 0."""
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / photo.name).write_bytes(photo.read_bytes())
    cases = [([folder, style, "-o", folder], "is also an input folder"),
             ([photo, style, "-o", tmp_path / "x.gif"], "GIF is not an output format"),
             ([photo, style, "-o", tmp_path / "o", "--name", "../x"], "a file name, not a path"),
             ([photo, style, "-o", tmp_path / "o", "--name", "x.png"], "no suffix"),
             ([folder / photo.name, style, "-o", folder / photo.name], "is an input file")]
    for args, text in cases:
        _one_line_error(run_cli("stylize", *args), 2, text)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]


def test_a_latent_of_another_photo_is_said(run_cli, portraits, style, tiny_model_dir,
                                           isolated_cache, tmp_path):
    """A latent inverted from another photo rendered that face over this one, without a word."""
    first, second = sorted((portraits / "photos").glob("*.jpg"))[:2]
    r = run_cli("--device", "cpu", "invert", first, "-o", tmp_path / "inv", "-w", tiny_model_dir)
    assert r.exit_code == 0, r.stderr
    latent = tmp_path / "inv" / f"{first.stem}.latent.safetensors"
    r = run_cli("--device", "cpu", "stylize", second, style, "--latent", latent,
                "-o", tmp_path / "o.png", "-w", tiny_model_dir)
    assert r.exit_code == 0 and f"was inverted from {first}" in r.stderr, r.stderr
    r = run_cli("--device", "cpu", "stylize", first, style, "--latent", latent,
                "-o", tmp_path / "o2.png", "-w", tiny_model_dir)
    assert r.exit_code == 0 and "was inverted from" not in r.stderr, r.stderr


def test_far_more_refinement_passes_than_trained_are_warned_of(run_cli, photo, style,
                                                               tiny_model_dir, isolated_cache,
                                                               tmp_path):
    """``--iterations 100`` rendered a false-colour face with no word (the model trained 3)."""
    r = run_cli("--device", "cpu", "stylize", photo, style, "-o", tmp_path / "a.png",
                "-w", tiny_model_dir, "--iterations", "7")
    assert r.exit_code == 0 and "far more than the 3 passes" in r.stderr, r.stderr
    r = run_cli("--device", "cpu", "stylize", photo, style, "-o", tmp_path / "b.png",
                "-w", tiny_model_dir, "--iterations", "4")
    assert r.exit_code == 0 and "far more" not in r.stderr, r.stderr


def test_check_json_prints_the_line_of_a_single_bad_file(run_cli, tmp_path):
    """``check bad.png --json`` printed its error on stderr only: stdout had no line for it."""
    import json

    bad = tmp_path / "bad.png"
    bad.write_bytes(b"")
    r = run_cli("check", bad, "--json")
    assert r.exit_code == 2
    line = json.loads(r.stdout.strip())
    assert line["input"] == str(bad) and line["ok"] is False and "empty" in line["error"]
