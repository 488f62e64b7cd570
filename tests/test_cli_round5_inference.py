"""The inference commands with bad or unusual input and output paths: each test names what once
went wrong (found by trying stylize, interpolate, edit, invert, codes, align and segment as a
user)."""

from __future__ import annotations

import json
import shutil

import pytest


def _one_line_error(r, code: int, text: str) -> str:
    lines = r.stderr.strip().splitlines()
    assert r.exit_code == code, r.stderr
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1 and text in errors[0], r.stderr
    assert "Traceback" not in r.stderr
    return errors[0]


@pytest.fixture
def photo(portraits):
    return portraits / "faces" / "astronaut.png"


@pytest.fixture
def style(portraits):
    return portraits / "styles" / "ink.png"


def test_sizes_and_frame_counts_far_too_large_are_refused(run_cli, photo, style, tmp_path):
    """``stylize --size 100000`` (and interpolate's, invert's) ran the machine out of memory
    (killed, exit 137); ``interpolate --steps 100000`` held 100000 frames and a contact sheet of
    them all."""
    cases = [
        ("stylize", photo, style, "-o", tmp_path / "o", "--size", "100000"),
        ("interpolate", photo, style, "-o", tmp_path / "i", "--size", "100000"),
        ("invert", photo, "-o", tmp_path / "v", "--size", "100000"),
        ("interpolate", photo, style, "-o", tmp_path / "i", "--steps", "100000"),
        ("edit", photo, "-d", "smile", "-o", tmp_path / "e", "--steps", "100000"),
    ]
    missing_model = tmp_path / "no-model"  # refused before it is looked for
    for args in cases:
        r = run_cli("--device", "cpu", *args, "-w", missing_model)
        _one_line_error(r, 2, "less than or equal to")
    assert list(tmp_path.iterdir()) == []


def test_a_seed_torch_cannot_take_is_a_usage_error(run_cli, photo, style, tmp_path):
    """``--seed 99999999999999999999`` was an internal error (exit 70, "Overflow when unpacking
    long long") once the style codes were sampled."""
    huge = "99999999999999999999"
    r = run_cli("--device", "cpu", "stylize", photo, style, "-o", tmp_path / "o.png", "--seed", huge,
                "-w", tmp_path / "no-model")  # refused before the weights are looked for
    _one_line_error(r, 2, "out of range for a seed")
    r = run_cli("--device", "cpu", "codes", style, "--seed", huge, "--no-cache")
    _one_line_error(r, 2, "out of range for a seed")


def test_a_repeated_region_option_counts_every_region(run_cli, photo, style, tmp_path):
    """``--region hair=a.png --region face=b.png`` used face=b.png alone: the first option was
    dropped without a word."""
    from hypernst_cli.cli.options import parse_region_spec

    assert parse_region_spec(["hair=a.png", "face=b.png"]) == {"hair": "a.png", "face": "b.png"}
    assert parse_region_spec("hair=a.png,face=b.png") == {"hair": "a.png", "face": "b.png"}
    r = run_cli("stylize", photo, style, "-o", tmp_path / "o.png",
                "--region", f"hair={style}", "--region", f"hair={photo}")
    _one_line_error(r, 2, "region 'hair' is given twice")


def test_a_region_style_image_is_never_the_output(run_cli, photo, style, tmp_path):
    """``--region hair=r.png -o r.png`` said "skipped: r.png already exists" with exit 0 (and
    with --overwrite ran the whole model before refusing)."""
    region = tmp_path / "r.png"
    shutil.copy(style, region)
    before = region.read_bytes()
    for extra in ((), ("--overwrite",)):
        r = run_cli("stylize", photo, style, "--region", f"hair={region}", "-o", region, *extra,
                    "-w", tmp_path / "no-model")
        _one_line_error(r, 2, "is an input file")
        assert "model:" not in r.stderr
    assert region.read_bytes() == before


@pytest.mark.parametrize("template,text", [("", "it is empty"), ("  ", "it is empty"),
                                           ("{content!r}", "'!r'")])
def test_blank_or_converted_name_templates_are_refused(template, text, run_cli, photo, style,
                                                       tmp_path):
    """``--name ''`` failed after the model ran ("o/.png: cannot tell the image format"), ``--name
    ' '`` wrote a file named " .png", ``--name '{content!r}'`` one named "'astronaut'.png"."""
    r = run_cli("stylize", photo, style, "-o", tmp_path / "o", "--name", template,
                "-w", tmp_path / "no-model")
    _one_line_error(r, 2, text)
    assert "model:" not in r.stderr and not (tmp_path / "o").exists()


def test_a_file_in_the_way_of_the_output_folder_is_refused_before_any_work(
        run_cli, photo, style, tmp_path):
    """``-o FILE`` (a file without an image suffix) or ``-o FILE/x.png`` failed only after the
    models had loaded and every face had been stylized."""
    blocker = tmp_path / "afile"
    blocker.write_text("keep me")
    cases = [
        ("stylize", photo, style, "-o", blocker),
        ("stylize", photo, style, "-o", blocker / "x.png"),
        ("interpolate", photo, style, "--steps", "2", "-o", blocker),
        ("edit", photo, "-d", "smile", "-o", blocker / "e"),
        ("invert", photo, "-o", blocker),
        ("align", photo, "-o", blocker),
        ("segment", photo, "-o", blocker / "s"),
        ("codes", style, "-o", blocker / "c.safetensors"),
    ]
    for args in cases:
        # refused before the weights are looked for (they are missing here: exit 3 otherwise)
        model = ("-w", tmp_path / "no-model") if args[0] not in ("align", "segment") else ()
        r = run_cli("--device", "cpu", *args, *model)
        _one_line_error(r, 74, "a file is where a folder should be")
    assert blocker.read_text() == "keep me"


def test_pairs_keep_a_photo_given_twice(run_cli, photo, portraits, tmp_path):
    """``stylize face.png face.png -s a.png -s b.png --pairs`` said "--pairs needs as many
    contents as styles (1 vs 2)": the repeated photo was dropped before the zip."""
    from hypernst_cli.io.inputs import collect_images, unique_stems

    assert collect_images([photo, photo], unique=False) == [photo, photo]
    assert collect_images([photo, photo]) == [photo]
    assert unique_stems([photo, photo]) == {photo: "astronaut"}  # one input, one name
    styles = [portraits / "styles" / "ink.png", portraits / "styles" / "neon.png"]
    # past every check on the inputs, up to the weights (missing here: exit 3, nothing runs)
    r = run_cli("--device", "cpu", "stylize", photo, photo, "-s", styles[0], "-s", styles[1],
                "--pairs", "-o", tmp_path / "out", "-w", tmp_path / "no-model")
    assert r.exit_code == 3 and "--pairs" not in r.stderr, r.stderr


def test_invert_never_writes_over_an_input(run_cli, photo, portraits, tmp_path):
    """``invert x.png x_e4e.png -o .`` wrote x's e4e reconstruction over the photo x_e4e.png
    before it was read: the photo was lost."""
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(photo, folder / "x.png")
    shutil.copy(portraits / "styles" / "ink.png", folder / "x_e4e.png")
    before = (folder / "x_e4e.png").read_bytes()
    r = run_cli("--device", "cpu", "invert", folder / "x.png", folder / "x_e4e.png", "-o", folder,
                "-w", tmp_path / "no-model")
    _one_line_error(r, 2, "would be written over the input")
    assert "model:" not in r.stderr
    assert (folder / "x_e4e.png").read_bytes() == before
    assert sorted(p.name for p in folder.iterdir()) == ["x.png", "x_e4e.png"]


def test_segment_never_writes_a_mask_over_an_input(run_cli, photo, portraits, tmp_path):
    """``segment x.png x_mask.png -o .``: x's mask would replace the image x_mask.png."""
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(photo, folder / "x.png")
    shutil.copy(photo, folder / "x_mask.png")
    r = run_cli("segment", folder / "x.png", folder / "x_mask.png", "-o", folder)
    _one_line_error(r, 2, "would be written over the input")
    assert sorted(p.name for p in folder.iterdir()) == ["x.png", "x_mask.png"]


@pytest.mark.parametrize("command", ["invert", "align", "segment"])
def test_an_input_folder_is_not_an_output_folder(command, run_cli, photo, tmp_path):
    """``invert photos -o photos`` (and align's, segment's) put the outputs among the photos, so
    every rerun processed the last run's reconstructions, crops or masks as photos."""
    folder = tmp_path / "photos"
    folder.mkdir()
    shutil.copy(photo, folder / "a.png")
    model = ("-w", tmp_path / "no-model") if command == "invert" else ()
    r = run_cli("--device", "cpu", command, folder, "-o", folder, *model)
    _one_line_error(r, 2, "is also an input folder")
    assert [p.name for p in folder.iterdir()] == ["a.png"]


def test_align_recursive_refuses_an_output_folder_inside_its_input(run_cli, photo, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    shutil.copy(photo, folder / "a.png")
    r = run_cli("align", folder, "-r", "-o", folder / "aligned")
    _one_line_error(r, 2, "inside an input folder")
    assert [p.name for p in folder.iterdir()] == ["a.png"]


def test_interpolate_never_replaces_or_removes_an_input_frame(run_cli, photo, style, tmp_path):
    """``interpolate out/frame_005.png STYLE --steps 3 -o out`` removed the photo as a stale frame
    of an earlier, longer walk (and --steps 8 wrote frame_005.png over it)."""
    out = tmp_path / "out"
    out.mkdir()
    frame = out / "frame_005.png"
    shutil.copy(photo, frame)
    for steps in ("3", "8"):
        r = run_cli("--device", "cpu", "interpolate", frame, style, "--steps", steps, "-o", out,
                    "-w", tmp_path / "no-model")
        _one_line_error(r, 2, "would replace the input")
        assert "model:" not in r.stderr
    assert frame.read_bytes() == photo.read_bytes()


def test_interpolate_to_the_same_style_warns(run_cli, photo, style, tmp_path):
    """``interpolate FACE S.png --to ./S.png`` walked nowhere: every frame the same, no word."""
    # the warning comes before the models load (missing weights here: exit 3 after it)
    r = run_cli("--device", "cpu", "interpolate", photo, style, "--to", style.parent / "." /
                style.name, "--steps", "2", "-o", tmp_path / "w", "-w", tmp_path / "no-model")
    assert r.exit_code == 3, r.stderr
    warnings = [line for line in r.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "every frame is the same" in warnings[0], r.stderr
    r = run_cli("--device", "cpu", "interpolate", photo, style, "--steps", "2",
                "-o", tmp_path / "w", "-w", tmp_path / "no-model")
    assert "warning:" not in r.stderr, r.stderr


def test_edit_checks_its_style_and_latent_files_before_the_models_load(run_cli, photo, tmp_path):
    """``edit --style nope.png`` failed only after the models loaded; ``--latent nope`` (a
    missing file) was called "not a safetensors file"."""
    r = run_cli("--device", "cpu", "edit", photo, "-d", "smile", "--style", tmp_path / "nope.png",
                "-o", tmp_path / "e", "-w", tmp_path / "no-model")
    _one_line_error(r, 2, "no such file")
    assert "model:" not in r.stderr
    r = run_cli("--device", "cpu", "edit", photo, "-d", "smile", "--latent", tmp_path / "nope",
                "-o", tmp_path / "e", "-w", tmp_path / "no-model")
    line = _one_line_error(r, 2, "--latent")
    assert "no such file" in line and "safetensors" not in line.split("(")[0]
    assert not (tmp_path / "e").exists()


def test_codes_json_has_a_line_for_every_style_image(run_cli, style, tiny_model_dir,
                                                     isolated_cache, tmp_path):
    """``codes bad.png good.png --json`` printed the failure on stderr only: stdout had a line
    for good.png alone, and a script could not tell which input failed."""
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    r = run_cli("--device", "cpu", "codes", empty, style, "-w", tiny_model_dir, "--json")
    assert r.exit_code == 1, r.stderr
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert [(row["style"], row["status"], row["ok"]) for row in rows] == [
        (str(empty), "failed", False), (str(style), "ok", True)]
    assert "empty" in rows[0]["error"] and rows[1]["error"] is None


def test_edit_strengths_far_past_the_generators_range_are_refused(run_cli, photo, tmp_path):
    """``edit --strength 1e300..2`` rendered frames of noise without a word."""
    r = run_cli("--device", "cpu", "edit", photo, "-d", "smile", "-o", tmp_path / "e",
                "--strength", "1e300..2", "-w", tmp_path / "no-model")  # refused before the model
    _one_line_error(r, 2, "past +-20")
    assert not (tmp_path / "e").exists()


def test_a_mistyped_output_suffix_is_named_before_it_becomes_a_folder(
        run_cli, photo, style, tiny_model_dir, isolated_cache, tmp_path):
    """``stylize -o result.jgp`` quietly wrote a folder called result.jgp."""
    out = tmp_path / "result.jgp"
    r = run_cli("--device", "cpu", "stylize", photo, style, "-o", out, "-w", tiny_model_dir)
    assert r.exit_code == 0, r.stderr
    assert "'.jgp' is not an image format" in r.stderr and out.is_dir()
    r = run_cli("--device", "cpu", "stylize", photo, style, "-o", tmp_path / "plain",
                "-w", tiny_model_dir)
    assert r.exit_code == 0 and "not an image format" not in r.stderr


def test_an_edit_rerun_with_fewer_frames_removes_the_earlier_runs_extra_ones(
        run_cli, photo, tiny_model_dir, isolated_cache, tmp_path):
    """`edit --steps 3` then `--steps 2` into one folder left frame 02 of the first run, which
    passed for the second run's (interpolate already removed its stale frames)."""
    import torch

    from hypernst_cli.weights.checkpoint import save_model_file

    direction = tmp_path / "smile.safetensors"
    save_model_file(direction, {"directions": {"smile": torch.randn(1, 64)}}, {})
    out = tmp_path / "e"
    for steps in ("3", "2"):
        r = run_cli("--device", "cpu", "edit", photo, "-d", direction, "--steps", steps,
                    "-o", out, "-w", tiny_model_dir)
        assert r.exit_code == 0, r.stderr
    assert sorted(p.name for p in out.glob("*.png")) == [
        "astronaut_smile_00.png", "astronaut_smile_01.png", "astronaut_smile_strip.png"]


@pytest.mark.parametrize("option,value", [("--strength", "nan"), ("--strength", "2"),
                                          ("--palette", "nan")])
def test_a_fraction_that_is_not_a_number_from_0_to_1_says_so(option, value, run_cli, photo, style,
                                                             tmp_path):
    """``stylize --strength nan`` said "should be less than or equal to 1"."""
    r = run_cli("--device", "cpu", "stylize", photo, style, "-o", tmp_path / "o", option, value,
                "-w", tmp_path / "no-model")  # refused before the model is looked for
    _one_line_error(r, 2, "must be a number between 0 and 1")
    r = run_cli("--device", "cpu", "edit", photo, "-d", "smile", "--style", style,
                "--style-strength", "nan", "-o", tmp_path / "e", "-w", tmp_path / "no-model")
    _one_line_error(r, 2, "must be a number between 0 and 1")
    assert list(tmp_path.iterdir()) == []


def test_a_bad_max_pixels_variable_is_refused_before_the_models_load(
        run_cli, photo, style, tmp_path, monkeypatch):
    """``HYPERNST_MAX_PIXELS=abc stylize`` was reported only after the models had loaded."""
    monkeypatch.setenv("HYPERNST_MAX_PIXELS", "abc")
    r = run_cli("--device", "cpu", "stylize", photo, style, "-o", tmp_path / "o",
                "-w", tmp_path / "no-model")  # missing weights: exit 3 had it been read later
    line = _one_line_error(r, 2, "HYPERNST_MAX_PIXELS=abc")
    assert "HYPERNST_MAX_PIXELS=100000000" in line
    assert "model:" not in r.stderr and not (tmp_path / "o").exists()
    # ...but a command's help still prints (the check must not hide how to use the tool); a
    # process of its own, as the check reads the command line a user typed
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "hypernst_cli", "stylize", "--help"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "Usage:" in done.stdout, done.stderr


def test_a_missing_weights_registry_named_by_the_environment_names_the_variable(
        run_cli, photo, style, tmp_path, monkeypatch):
    """``HYPERNST_WEIGHTS_TOML=/nonexistent stylize`` said "reinstall hypernst"."""
    monkeypatch.setenv("HYPERNST_WEIGHTS_TOML", str(tmp_path / "nonexistent.toml"))
    for args in (("weights", "list"), ("--device", "cpu", "stylize", photo, style,
                                       "-o", tmp_path / "o")):
        r = run_cli(*args)
        line = _one_line_error(r, 3, "HYPERNST_WEIGHTS_TOML=")
        assert "existing weights TOML" in line and "unset it" in line
        assert "reinstall" not in line


def test_a_latent_given_as_an_edit_direction_is_named_as_a_latent(run_cli, photo, tmp_path):
    """``edit PHOTO -d x.latent.safetensors`` (invert's output) said "no model config", exit 3."""
    import torch

    from hypernst_cli.weights.checkpoint import save_tensors

    latent = tmp_path / "astronaut.latent.safetensors"
    save_tensors(latent, {"wplus": torch.zeros(1, 8, 64)}, {"format": "hypernst-latent"})
    r = run_cli("--device", "cpu", "edit", photo, "-d", latent, "-o", tmp_path / "e",
                "-w", tmp_path / "no-model")  # refused before the model is looked for
    line = _one_line_error(r, 2, "a latent written by `hypernst invert`, not an edit direction")
    assert "hypernst convert directions" in line and "hypernst directions fit" in line
    assert not (tmp_path / "e").exists()


def test_iterations_far_past_any_trained_count_are_refused(run_cli, photo, style, tmp_path):
    """``--iterations 100000`` only warned, then ran for hours."""
    r = run_cli("--device", "cpu", "stylize", photo, style, "-o", tmp_path / "o",
                "--iterations", "100000", "-w", tmp_path / "no-model")  # refused before the model
    _one_line_error(r, 2, "use at most 64")
    r = run_cli("--device", "cpu", "stylize", photo, style, "-o", tmp_path / "o",
                "--iterations", "64", "-w", tmp_path / "no-model")
    assert r.exit_code == 3 and "--iterations" not in r.stderr, r.stderr  # past the check
