"""`hypernst directions fit|check` with the tiny model (random weights) on UTKFace-like photos
(the `portraits` fixture: crops of the astronaut photograph and the example faces).

The model is random, so only the plumbing is checked: files, shapes, metadata, skip counts, and
that `hypernst edit` takes the result.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image

#: the ages the eight photos are labelled with (in UTKFace's file-name scheme)
AGES = (1, 6, 18, 26, 35, 50, 65, 80)


@pytest.fixture(scope="module")
def utk_folder(tmp_path_factory, portraits):
    """Eight UTKFace-like photos of different ages, an unreadable file and a photo with no face."""
    folder = tmp_path_factory.mktemp("utk")
    for age, src in zip(AGES, sorted((portraits / "utkface").iterdir()), strict=False):
        shutil.copyfile(src, folder / f"{age}_0_0_2017010{age:03d}.jpg.chip.jpg")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    yy, xx = np.mgrid[:200, :200]
    Image.fromarray(np.stack([xx, yy, xx + yy], -1).astype(np.uint8)).save(folder / "noface.png")
    return folder


@pytest.fixture(scope="module")
def fitted(utk_folder, tiny_model_dir, tmp_path_factory):
    """One `directions fit` run (age, smile, pose) with --into a copy of the tiny model."""
    from hypernst_cli.cli.app import main

    root = tmp_path_factory.mktemp("fit")
    model = root / "model"
    shutil.copytree(tiny_model_dir, model)
    out = root / "dirs"
    with pytest.raises(SystemExit) as exc:
        main(["--device", "cpu", "-q", "directions", "fit", "--data", str(utk_folder),
              "-w", str(tiny_model_dir), "--age-from-filename", "-o", str(out),
              "--into", str(model), "--test-fraction", "0.25",
              "--min-photos", "2"])  # eight photos: the plumbing, not a usable direction
    assert exc.value.code == 0
    return out, model


def test_fit_writes_directions_with_metadata(fitted):
    from hypernst_cli.weights.checkpoint import load_model_folder

    out, _ = fitted
    report = json.loads((out / "directions.json").read_text())
    assert report["photos"] == 10 and report["encoded"] == 8
    assert report["skipped"] == {"no_face": 1, "unreadable": 1}
    assert any("broken.jpg" in s for s in report["skipped_photos"]["unreadable"])
    assert report["failed"] == {}
    for name, label, source in (("age", "age", "utkface-filename"),
                                ("smile", "smile", "dlib68-smile-measure"),
                                ("pose", "yaw", "dlib68-yaw-measure")):
        meta = report["directions"][name]
        assert meta["label"] == label and meta["label_source"] == source
        assert meta["n"] == 8 and meta["n_test"] == 2 and meta["shape"] == [1, 64]
        assert meta["heldout_accuracy"] is None or 0.0 <= meta["heldout_accuracy"] <= 1.0
        folder = load_model_folder(out / f"{name}.safetensors")
        vector = folder.networks["directions"][name]
        assert tuple(vector.shape) == (1, 64)
        assert float(vector.norm()) == pytest.approx(1.0, abs=1e-5)
        assert folder.extra["directions"][name]["label_source"] == source
        assert folder.extra["source_model"]["config"] == "tiny"
    assert report["directions"]["age"]["label_range"] == [1.0, 80.0]


def test_edit_takes_the_fitted_directions(fitted, run_cli, portraits, tiny_model_dir, tmp_path,
                                          isolated_cache):
    from hypernst_cli.pipeline.models import INFERENCE_PARTS, load_models

    out, model = fitted
    face = portraits / "faces" / "astronaut.png"
    r = run_cli("--device", "cpu", "edit", face, "-d", out / "smile.safetensors", "-w",
                tiny_model_dir, "--steps", "2", "--strength", "-1..1", "-o", tmp_path / "a")
    assert r.exit_code == 0, r.stderr
    assert (tmp_path / "a" / "astronaut_smile_strip.png").exists()
    # --into added the directions to the model folder, which still loads as a whole model
    models = load_models(str(model), None, __import__("torch").device("cpu"), INFERENCE_PARTS)
    assert set(models.directions) == {"age", "smile", "pose"}
    r = run_cli("--device", "cpu", "edit", face, "-d", "age", "-w", model, "--steps", "2",
                "--strength", "-1..1", "-o", tmp_path / "b")
    assert r.exit_code == 0, r.stderr
    assert (tmp_path / "b" / "astronaut_age_strip.png").exists()


def test_fit_refuses_bad_requests(run_cli, utk_folder, tiny_model_dir, tmp_path):
    base = ("--device", "cpu", "directions", "fit", "-w", tiny_model_dir)
    r = run_cli(*base, "--data", utk_folder, "-a", "age", "-o", tmp_path / "o")
    assert r.exit_code == 2 and "--age-from-filename" in r.stderr
    r = run_cli(*base, "--data", utk_folder, "-a", "beauty", "-o", tmp_path / "o")
    assert r.exit_code == 2 and "beauty" in r.stderr
    r = run_cli(*base, "--data", utk_folder / "noface.png", "--data", utk_folder / "broken.jpg",
                "-o", tmp_path / "o")
    assert r.exit_code == 2 and "none of the 2 photos" in r.stderr
    r = run_cli(*base, "--data", utk_folder, "--condition", "smile:beauty", "-o", tmp_path / "o")
    assert r.exit_code == 2 and "--condition" in r.stderr


def test_into_refuses_another_generator(fitted, run_cli, utk_folder, tiny_model_dir, tmp_path):
    import torch

    from hypernst_cli.weights.checkpoint import load_model_folder, save_model_folder

    _, model = fitted
    other = load_model_folder(model)
    with torch.no_grad():
        for t in other.networks["generator"].values():
            t.add_(0.01)
    save_model_folder(tmp_path / "other", other.networks, other.config, other.extra)
    r = run_cli("--device", "cpu", "directions", "fit", "--data", utk_folder, "-w", tiny_model_dir,
                "-a", "smile", "--max-images", "6", "--min-photos", "2", "-o", tmp_path / "o", "--into",
                tmp_path / "other")
    assert r.exit_code == 2 and "generator differs" in r.stderr


def test_fit_sample_ridge_flat(run_cli, utk_folder, tiny_model_dir, tmp_path):
    r = run_cli("--device", "cpu", "directions", "fit", "--data", utk_folder, "-w", tiny_model_dir,
                "--max-images", "6", "--min-photos", "2", "--method", "ridge", "--layers", "flat",
                "-a", "smile,pose",
                "--condition", "smile:pose", "-o", tmp_path / "o", "--json")
    assert r.exit_code == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["photos"] == 6 and report["encoded"] + sum(report["skipped"].values()) == 6
    assert set(report["directions"]) == {"smile", "pose"} and report["into"] is None
    smile = report["directions"]["smile"]
    assert smile["kind"] == "regression" and smile["shape"] == [10, 64] and smile["space"] == "w+"
    assert smile["orthogonal_to"] == ["pose"]
    assert report["directions"]["pose"]["orthogonal_to"] == []


def test_check_reports_measures(fitted, run_cli, portraits, isolated_cache, tmp_path):
    out, model = fitted
    faces = [portraits / "faces" / "astronaut.png", portraits / "faces" / "face-1.png"]
    args = ["--device", "cpu", "directions", "check", "-w", model, "-d", "pose",
            "--strength", "-2..2", "--steps", "5", "--json"]
    for f in faces:
        args += ["-c", f]
    r = run_cli(*args, "--landmarks", "aligned", "--sheet", tmp_path / "sheet.png")
    assert r.exit_code == 0, r.stderr
    lines = [json.loads(line) for line in r.stdout.splitlines()]
    records, summary = lines[:-1], lines[-1]["summary"]
    assert len(records) == 2 and summary["faces"] == 2 and summary["measure"] == "yaw"
    for rec in records:
        assert rec["strengths"] == [-2.0, -1.0, 0.0, 1.0, 2.0]
        assert all(np.isfinite(v) for v in rec["values"]["yaw"] + rec["values"]["smile"])
        trend = rec["trends"]["yaw"]
        assert trend["measured"] == 5 and -1.0 <= trend["spearman"] <= 1.0
        assert rec["passed"] == trend["monotonic"]  # pose: either direction passes
    assert (tmp_path / "sheet.png").exists()
    # the random model renders no detectable face: nothing measured, nothing passes
    r = run_cli("--device", "cpu", "directions", "check", "-w", model, "-d", out /
                "smile.safetensors", "-c", faces[0], "--steps", "3", "--require-monotonic")
    assert r.exit_code == 1
    assert "FAIL" in r.stdout and "0 of 1 faces change smile" in r.stdout
    r = run_cli("--device", "cpu", "directions", "check", "-w", model, "-d", "age", "-c",
                faces[0], "--steps", "3", "--strength", "1..1")
    assert r.exit_code == 2 and "A != B" in r.stderr
