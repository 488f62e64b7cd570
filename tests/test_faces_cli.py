"""`hypernst align` and `hypernst segment`: outputs, batch rules, exit codes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


@pytest.fixture
def inputs(tmp_path, portraits):
    """Two photos (downscaled, to keep the tests fast), a face-less gradient, a two-face image."""
    folder = tmp_path / "in"
    folder.mkdir()
    a = Image.open(portraits / "photos" / "astronaut.jpg").convert("RGB")
    b = Image.open(portraits / "photos" / "face-1-scene.jpg").convert("RGB")
    a = a.resize((a.width // 2, a.height // 2))
    b = b.resize((b.width * a.height // b.height, a.height))
    a.save(folder / "one.jpg")
    b.save(folder / "two.png")
    gradient = np.repeat(np.linspace(0, 255, 160, dtype=np.uint8)[None, :, None], 3, axis=2)
    Image.fromarray(np.repeat(gradient, 120, axis=0)).save(tmp_path / "gradient.png")
    both = Image.new("RGB", (a.width + b.width, a.height))
    both.paste(a, (0, 0))
    both.paste(b, (a.width, 0))
    both.save(tmp_path / "pair.png")
    return tmp_path


def _lines(stdout):
    """The per-output JSON records (the batch runner's final summary line is checked apart)."""
    lines = [json.loads(line) for line in stdout.splitlines() if line.strip()]
    assert "summary" in lines[-1], lines[-1]
    return lines[:-1]


def _summary(stdout):
    return json.loads(stdout.splitlines()[-1])["summary"]


def test_align_writes_crops_and_records_then_skips(run_cli, inputs):
    out = inputs / "out"
    r = run_cli("--quiet", "align", inputs / "in", "-o", out, "--size", "64", "--json", "--contact-sheet")
    assert r.exit_code == 0, r.stderr
    recs = _lines(r.stdout)
    assert [rec["ok"] for rec in recs] == [True, True]
    crop = np.asarray(Image.open(out / "one.png"))
    assert crop.shape == (64, 64, 3)
    meta = json.loads((out / "one.json").read_text())
    assert meta["size"] == 64 and meta["backend"] == "dlib" and meta["source"].endswith("one.jpg")
    assert len(meta["landmarks"]) == 68 and len(meta["quad"]) == 4 and len(meta["transform"]) == 3
    assert (out / "contact_sheet.png").exists()
    # a second run keeps what is there; --overwrite redoes it
    before = (out / "one.png").stat().st_mtime_ns
    r = run_cli("--quiet", "align", inputs / "in", "-o", out, "--size", "64", "--json")
    assert r.exit_code == 0 and all(rec["skipped"] for rec in _lines(r.stdout))
    assert (out / "one.png").stat().st_mtime_ns == before
    r = run_cli("--quiet", "align", inputs / "in" / "one.jpg", "-o", out, "--size", "64", "--overwrite")
    assert r.exit_code == 0 and "wrote" in r.stdout


def test_align_size_defaults_to_the_config(run_cli, inputs):
    r = run_cli("--quiet", "align", inputs / "in" / "two.png", "-o", inputs / "o", "--config", "tiny")
    assert r.exit_code == 0, r.stderr
    assert Image.open(inputs / "o" / "two.png").size == (64, 64)


def test_no_face_single_input_is_exit_2_with_one_line(run_cli, inputs):
    r = run_cli("align", inputs / "gradient.png", "-o", inputs / "o")
    assert r.exit_code == 2
    assert "gradient.png" in r.stderr and "no face" in r.stderr
    assert r.stderr.strip().count("\n") == 0


def test_batch_with_a_bad_input_is_exit_1_and_all_bad_is_exit_2(run_cli, inputs):
    r = run_cli("--quiet", "align", inputs / "in" / "one.jpg", inputs / "gradient.png", "-o", inputs / "o",
                "--size", "32", "--json")
    assert r.exit_code == 1
    recs = _lines(r.stdout)
    assert sorted(rec["ok"] for rec in recs) == [False, True]
    assert "no face" in next(rec["error"] for rec in recs if not rec["ok"])
    assert "gradient.png" in next(rec["error"] for rec in recs if not rec["ok"])
    assert _summary(r.stdout)["ok"] == 1 and _summary(r.stdout)["failed"] == 1
    (inputs / "empty.png").write_bytes(b"")
    r = run_cli("--quiet", "segment", inputs / "gradient.png", inputs / "empty.png", "-o", inputs / "s")
    assert r.exit_code == 2 and r.stdout.count("FAILED") == 2


def test_all_faces_gives_indexed_outputs(run_cli, inputs):
    out = inputs / "o"
    r = run_cli("--quiet", "align", inputs / "pair.png", "-o", out, "--size", "32")
    assert r.exit_code == 0 and (out / "pair.png").exists() and not (out / "pair_1.png").exists()
    r = run_cli("--quiet", "align", inputs / "pair.png", "-o", out, "--size", "32", "--all-faces", "--json")
    assert r.exit_code == 0, r.stderr
    assert [rec["face"] for rec in _lines(r.stdout)] == [0, 1]
    first = json.loads((out / "pair_0.json").read_text())
    second = json.loads((out / "pair_1.json").read_text())
    assert first["index"] == 0 and second["index"] == 1
    area = lambda m: (m["box"][2] - m["box"][0]) * (m["box"][3] - m["box"][1])  # noqa: E731
    assert area(first) > area(second)
    # a finished photo is skipped, and its record still lists every face an earlier run wrote
    r = run_cli("--quiet", "align", inputs / "pair.png", "-o", out, "--size", "32", "--all-faces", "--json")
    assert [(rec["face"], rec["skipped"], rec["json"]) for rec in _lines(r.stdout)] == [
        (0, True, str(out / "pair_0.json")), (1, True, str(out / "pair_1.json"))]
    # ...and only those: an older run's extra face beside them is not this photo's any more
    for suffix in (".png", ".json"):
        shutil.copy(out / f"pair_1{suffix}", out / f"pair_7{suffix}")
    r = run_cli("--quiet", "align", inputs / "pair.png", "-o", out, "--size", "32", "--all-faces", "--json")
    assert [rec["face"] for rec in _lines(r.stdout)] == [0, 1]
    # a face file removed by hand makes the photo not done: it is redone, every face
    (out / "pair_1.png").unlink()
    r = run_cli("--quiet", "align", inputs / "pair.png", "-o", out, "--size", "32", "--all-faces", "--json")
    assert [(rec["face"], rec["skipped"]) for rec in _lines(r.stdout)] == [(0, False), (1, False)]
    assert (out / "pair_1.png").is_file()
    r = run_cli("--quiet", "segment", inputs / "pair.png", "-o", inputs / "s", "--all-faces", "--size", "64")
    assert r.exit_code == 0
    for i in (0, 1):
        assert Image.open(inputs / "s" / f"pair_{i}_mask.png").size == (64, 64)
        assert (inputs / "s" / f"pair_{i}_aligned.png").exists()
    (inputs / "s" / "pair_1_mask.png").unlink()  # segment's photos too: redone when a face's file is gone
    r = run_cli("--quiet", "segment", inputs / "pair.png", "-o", inputs / "s", "--all-faces",
                "--size", "64", "--json")
    assert [(rec["face"], rec["skipped"]) for rec in _lines(r.stdout)] == [(0, False), (1, False)]
    r = run_cli("--quiet", "segment", inputs / "pair.png", "-o", inputs / "s", "--all-faces",
                "--size", "64", "--json")
    assert [(rec["face"], rec["skipped"]) for rec in _lines(r.stdout)] == [(0, True), (1, True)]


def test_segment_writes_masks_overlays_and_a_sheet(run_cli, inputs, portraits):
    faces = sorted((portraits / "faces").glob("*.png"))[:3]
    out = inputs / "seg"
    r = run_cli("--quiet", "segment", *faces, "-o", out, "--contact-sheet", "--json")
    assert r.exit_code == 0, r.stderr
    recs = _lines(r.stdout)
    assert len(recs) == 3 and all(rec["fractions"]["face"] > 0.1 for rec in recs)
    for face in faces:
        mask = np.asarray(Image.open(out / f"{face.stem}_mask.png"))
        assert mask.shape == (256, 256) and set(np.unique(mask)) <= {0, 1, 2}
        assert np.asarray(Image.open(out / f"{face.stem}_overlay.png")).shape == (256, 256, 3)
    assert (out / "contact_sheet.png").exists()
    # skipped items still appear on the sheet
    (out / "contact_sheet.png").unlink()
    r = run_cli("--quiet", "segment", *faces, "-o", out, "--contact-sheet")
    assert r.exit_code == 0 and r.stdout.count("skipped") == 3 and (out / "contact_sheet.png").exists()


def test_grayscale_input_through_the_cli(run_cli, inputs):
    gray = inputs / "gray.png"
    Image.open(inputs / "in" / "one.jpg").convert("L").save(gray)
    r = run_cli("--quiet", "align", gray, "-o", inputs / "o", "--size", "48")
    assert r.exit_code == 0, r.stderr
    assert np.asarray(Image.open(inputs / "o" / "gray.png")).shape == (48, 48, 3)


def test_shards_split_the_inputs(run_cli, inputs):
    out = inputs / "o"
    names = []
    for k in (1, 2):
        r = run_cli("--quiet", "segment", inputs / "in", "-o", out, "--shard", f"{k}/2", "--json",
                    "--contact-sheet")
        assert r.exit_code == 0, r.stderr
        recs = _lines(r.stdout)
        assert len(recs) == 1 and not recs[0]["skipped"]
        names.append(recs[0]["input"])
        assert (out / f"contact_sheet_{k}of2.png").exists()
    assert sorted(names) == sorted(str(p) for p in (inputs / "in").iterdir())
    assert not (out / "contact_sheet.png").exists()
    r = run_cli("--quiet", "align", inputs / "in", "-o", out, "--shard", "3/2")
    assert r.exit_code == 2 and "--shard" in r.stderr


def test_the_photo_in_every_storage_form(run_cli, portraits, tmp_path, monkeypatch):
    """The real photo as CMYK JPEG, palette PNG, 16-bit grey PNG and 4000 px JPEG all align to the
    same face; a tiny copy and one over the pixel limit are one-line errors (exit 2)."""
    photo = Image.open(portraits / "photos" / "astronaut.jpg").convert("RGB")
    forms = tmp_path / "forms"
    forms.mkdir()
    photo.convert("CMYK").save(forms / "cmyk.jpg", quality=95)
    photo.convert("P", palette=Image.Palette.ADAPTIVE, colors=256).save(forms / "palette.png")
    grey16 = (np.asarray(photo.convert("L"), dtype=np.uint16) * 257).astype(np.uint16)
    Image.fromarray(grey16).save(forms / "grey16.png")
    photo.resize((4000, 4000), Image.Resampling.BICUBIC).save(forms / "huge.jpg", quality=90)
    assert Image.open(forms / "cmyk.jpg").mode == "CMYK" and Image.open(forms / "palette.png").mode == "P"
    assert Image.open(forms / "grey16.png").mode.startswith("I")
    out = tmp_path / "out"
    r = run_cli("--quiet", "align", forms, "-o", out, "--size", "64", "--json")
    assert r.exit_code == 0, r.stderr
    assert [rec["ok"] for rec in _lines(r.stdout)] == [True] * 4
    quads = {p.stem: np.array(json.loads(p.read_text())["quad"]) / (4000 / 640 if p.stem == "huge" else 1)
             for p in out.glob("*.json")}
    size = np.hypot(*(quads["cmyk"][3] - quads["cmyk"][0]))
    for name, quad in quads.items():
        assert np.abs(quad - quads["cmyk"]).max() < 0.05 * size, name

    photo.resize((24, 24)).save(tmp_path / "tiny.png")
    r = run_cli("align", tmp_path / "tiny.png", "-o", tmp_path / "t")
    assert r.exit_code == 2 and len(r.stderr.strip().splitlines()) == 1 and "tiny.png" in r.stderr
    monkeypatch.setenv("HYPERNST_MAX_PIXELS", "1000000")
    r = run_cli("align", forms / "huge.jpg", "-o", tmp_path / "h")
    assert r.exit_code == 2 and "over the limit" in r.stderr and "huge.jpg" in r.stderr


def test_stylize_all_faces_counts_a_photo_done_only_with_every_face(
        run_cli, inputs, portraits, tiny_model_dir, isolated_cache, monkeypatch):
    """`stylize --all-faces` writes one file per face. A run stopped between two faces of a photo
    once left face 0 behind, which marked the photo done: a rerun never wrote the other face. Now
    the photo is done only when every face it has was written (its manifest lists them), and
    --json lists every face's file, for photos skipped as done too."""
    import hypernst_cli.io as hio

    style = portraits / "styles" / "poster-portrait.png"
    out = inputs / "st"
    args = ("--device", "cpu", "--quiet", "stylize", inputs / "pair.png", style, "-o", out,
            "-w", tiny_model_dir, "--all-faces", "--json")
    faces = [str(out / f"pair__poster-portrait_face{i}.png") for i in (0, 1)]
    real = hio.save_image

    def interrupt_after_one_face():
        written = []

        def save(image, path, **kw):
            if Path(path).parent == out:
                if written:  # the second face is interrupted (as by Ctrl-C, or a kill)
                    raise KeyboardInterrupt
                written.append(path)
            return real(image, path, **kw)

        monkeypatch.setattr(hio, "save_image", save)
        r = run_cli(*args)
        monkeypatch.setattr(hio, "save_image", real)
        assert r.exit_code == 130 and len(written) == 1, r.stderr  # one face of two written

    def rows():
        r = run_cli(*args)
        assert r.exit_code == 0, r.stderr
        return [(rec["status"], rec["outputs"]) for rec in _lines(r.stdout)]

    interrupt_after_one_face()
    assert [p.name for p in out.glob("*.png")] == [Path(faces[0]).name]
    assert rows() == [("ok", faces)]  # redone: both faces, both listed
    assert rows() == [("skipped", faces)]  # done: skipped, and still both listed
    before = [Path(f).stat().st_mtime_ns for f in faces]
    # an interrupted --overwrite is not finished work either
    args = (*args, "--overwrite")
    interrupt_after_one_face()
    args = args[:-1]
    assert rows() == [("ok", faces)]
    assert all(Path(f).stat().st_mtime_ns != t for f, t in zip(faces, before))
    # a face's file removed by hand is redone, like a single output's
    Path(faces[1]).unlink()
    assert rows() == [("ok", faces)] and Path(faces[1]).is_file()
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == [
        Path(f).name for f in faces]


def test_quiet_batch_prints_only_its_errors(run_cli, inputs):
    """Under -q a batch with a failure printed its summary table too; now only the error."""
    r = run_cli("--quiet", "align", inputs / "in" / "one.jpg", inputs / "gradient.png", "-o",
                inputs / "o", "--size", "32")
    assert r.exit_code == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "gradient.png" in lines[0] and "no face" in lines[0], r.stderr
    assert "wrote" in r.stdout and "FAILED" in r.stdout  # the listing is the command's output
