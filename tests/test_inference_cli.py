"""stylize / interpolate / invert / edit with the tiny model (random weights) on real photos."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hypernst_cli.io import load_image


@pytest.fixture
def photos(portraits):
    return sorted((portraits / "photos").glob("*.jpg"))


@pytest.fixture
def style(portraits):
    return portraits / "styles" / "poster-portrait.png"


def _diff(a, b) -> float:
    return float(np.abs(load_image(a).astype(int) - load_image(b).astype(int)).mean())


def test_stylize_one_photo_sizes_and_paste_back(run_cli, photos, style, tiny_model_dir,
                                                 isolated_cache, tmp_path):
    out = tmp_path / "out.png"
    r = run_cli("--device", "cpu", "stylize", photos[0], style, "-o", out, "-w", tiny_model_dir)
    assert r.exit_code == 0, r.stderr
    assert load_image(out).shape == (64, 64, 3)  # the tiny model's resolution
    r = run_cli("--device", "cpu", "stylize", photos[0], style, "-o", tmp_path / "big.png",
                "-w", tiny_model_dir, "--size", "96")
    assert load_image(tmp_path / "big.png").shape == (96, 96, 3)
    r = run_cli("--device", "cpu", "stylize", photos[0], style, "-o", tmp_path / "full.jpg",
                "-w", tiny_model_dir, "--paste-back")
    assert r.exit_code == 0, r.stderr
    assert load_image(tmp_path / "full.jpg").shape == load_image(photos[0]).shape
    # the head goes back, not the crop's square: inside the bounding box of what changed, much
    # of the photo (its own background beside the head) is untouched
    r = run_cli("--device", "cpu", "stylize", photos[0], style, "-o", tmp_path / "full.png",
                "-w", tiny_model_dir, "--paste-back")
    from hypernst_cli.faces import FaceProcessor
    from hypernst_cli.faces.paste import paste_back

    photo = load_image(photos[0])
    changed = np.abs(load_image(tmp_path / "full.png").astype(int) - photo.astype(int)).max(axis=2) > 0
    aligned = FaceProcessor(backend="dlib").align_largest(photo, 64)
    black = np.zeros_like(photo)
    square = paste_back(black, np.full((64, 64, 3), 255, np.uint8), aligned).max(axis=2) > 0
    assert 0 < changed.sum() < 0.95 * square.sum(), (changed.sum(), square.sum())  # square: 0.995


def test_batch_with_bad_files_reports_and_continues(run_cli, photos, style, tiny_model_dir,
                                                     isolated_cache, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for p in photos[:2]:
        (folder / p.name).write_bytes(p.read_bytes())
    (folder / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 definitely not a jpeg")
    yy, xx = np.mgrid[:120, :160]
    Image.fromarray(np.stack([xx, yy, xx + yy], -1).astype(np.uint8)).save(folder / "noface.png")
    out = tmp_path / "out"
    r = run_cli("--device", "cpu", "stylize", folder, style, "-o", out, "-w", tiny_model_dir,
                "--json")
    assert r.exit_code == 1, r.stderr
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    rows, summary = lines[:-1], lines[-1]["summary"]
    assert summary["ok"] == 2 and summary["failed"] == 2
    failed = {os.path.basename(x["input"]): x["error"] for x in rows if x["status"] == "failed"}
    assert set(failed) == {"corrupt.jpg", "noface.png"}
    assert "not a readable image" in failed["corrupt.jpg"]
    assert "no face" in failed["noface.png"]
    assert sorted(p.name for p in out.iterdir()) == sorted(
        f"{p.stem}__{style.stem}.png" for p in photos[:2])
    # the human summary names both failures too
    r = run_cli("--device", "cpu", "stylize", folder, style, "-o", out, "-w", tiny_model_dir)
    assert r.exit_code == 1 and "corrupt.jpg" in r.stderr and "noface.png" in r.stderr


def test_style_codes_are_computed_once_per_style(run_cli, photos, portraits, tiny_model_dir,
                                                 isolated_cache, tmp_path, monkeypatch):
    from hypernst_cli.models.aladin import AladinViT

    calls = []
    original = AladinViT.encode

    def counting(self, images):
        calls.append(images.shape[0])
        return original(self, images)

    monkeypatch.setattr(AladinViT, "encode", counting)
    styles = [portraits / "styles" / f"{n}.png" for n in ("poster-portrait", "painted-face-3")]
    r = run_cli("--device", "cpu", "stylize", *photos, "-s", styles[0], "-s", styles[1],
                "-o", tmp_path / "o", "-w", tiny_model_dir, "--json")
    assert r.exit_code == 0, r.stderr
    # one ALADIN batch per content (its own codes) + one per style, for 3 x 2 outputs
    assert len(calls) == len(photos) + len(styles)


def finished_outputs(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if p.suffix == ".png" and not p.name.startswith(".")]


def test_interrupted_batch_resumes_without_redoing(photos, style, tiny_model_dir, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(4):
        for p in photos:
            (folder / f"{i}_{p.name}").write_bytes(p.read_bytes())
    out = tmp_path / "out"
    env = {**os.environ, "HYPERNST_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "hypernst_cli", "--device", "cpu", "--quiet", "stylize", str(folder),
           str(style), "-o", str(out), "-w", str(tiny_model_dir), "--batch-size", "1", "--json"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while time.time() < deadline:
        if out.is_dir() and len(finished_outputs(out)) >= 3:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    # a kill can land mid-write: its hidden temp file is not finished work (the rerun sweeps it)
    done_before = {p.name: p.stat().st_mtime_ns for p in finished_outputs(out)}
    assert 3 <= len(done_before) < 12
    rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    rows = [json.loads(x) for x in rerun.stdout.splitlines()][:-1]
    assert sum(r["status"] == "skipped" for r in rows) == len(done_before)
    assert sum(r["status"] == "ok" for r in rows) == 12 - len(done_before)
    after = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    assert len(after) == 12  # every output, and nothing else (no temp files)
    for name, mtime in done_before.items():
        assert after[name] == mtime  # finished work was not redone


def test_interpolate_ends_match_reconstruction_and_stylize(run_cli, photos, style, tiny_model_dir,
                                                           isolated_cache, tmp_path):
    common = ["-w", tiny_model_dir, "--seed", "5"]
    r = run_cli("--device", "cpu", "interpolate", photos[1], style, "--steps", "3",
                "-o", tmp_path / "walk", "--gif", *common)
    assert r.exit_code == 0, r.stderr
    frames = sorted((tmp_path / "walk").glob("frame_*.png"))
    assert len(frames) == 3 and (tmp_path / "walk" / "interpolation.gif").exists()
    assert (tmp_path / "walk" / "contact_sheet.png").exists()
    run_cli("--device", "cpu", "stylize", photos[1], style, "-o", tmp_path / "s1.png", *common)
    run_cli("--device", "cpu", "stylize", photos[1], style, "-o", tmp_path / "s0.png",
            "--strength", "0", *common)
    assert _diff(frames[-1], tmp_path / "s1.png") < 0.5
    assert _diff(frames[0], tmp_path / "s0.png") < 0.5
    assert _diff(frames[0], frames[-1]) > _diff(frames[-1], tmp_path / "s1.png")


def test_a_shorter_walk_into_the_same_folder_leaves_no_old_frames(run_cli, photos, style,
                                                                   tiny_model_dir, isolated_cache,
                                                                   tmp_path):
    """A second, shorter walk into one folder left the first walk's last frames beside its own."""
    for steps, gif in (("3", ["--gif"]), ("2", [])):
        r = run_cli("--device", "cpu", "interpolate", photos[1], style, "--steps", steps,
                    "-o", tmp_path / "walk", "-w", tiny_model_dir, *gif)
        assert r.exit_code == 0, r.stderr
    assert [p.name for p in sorted((tmp_path / "walk").glob("frame_*.png"))] == [
        "frame_000.png", "frame_001.png"]
    assert not (tmp_path / "walk" / "interpolation.gif").exists()  # nor the first walk's GIF


def test_invert_and_edit(run_cli, photos, style, tiny_model_dir, isolated_cache, tmp_path):
    import torch

    from hypernst_cli.weights.checkpoint import save_model_file

    r = run_cli("--device", "cpu", "invert", photos[2], "-o", tmp_path / "inv", "-w", tiny_model_dir)
    assert r.exit_code == 0, r.stderr
    stem = photos[2].stem
    latent = tmp_path / "inv" / f"{stem}.latent.safetensors"
    recon = tmp_path / "inv" / f"{stem}_reconstruction.png"
    assert latent.exists() and load_image(recon).shape == (64, 64, 3)
    direction = tmp_path / "smile.safetensors"
    save_model_file(direction, {"directions": {"smile": torch.randn(1, 64) * 3}}, {})
    r = run_cli("--device", "cpu", "edit", photos[2], "-d", direction, "--strength", "-2..2",
                "--steps", "3", "-o", tmp_path / "edit", "-w", tiny_model_dir,
                "--latent", latent)
    assert r.exit_code == 0, r.stderr
    frames = [tmp_path / "edit" / f"{stem}_smile_{i:02d}.png" for i in range(3)]
    assert (tmp_path / "edit" / f"{stem}_smile_strip.png").exists()
    assert _diff(frames[1], recon) < 0.5  # strength 0 is no edit
    # by default the range `directions check` measures: -2..2 in 5 frames, strength 0 the middle
    r = run_cli("--device", "cpu", "edit", photos[2], "-d", direction, "-o", tmp_path / "e5",
                "-w", tiny_model_dir, "--latent", latent)
    assert r.exit_code == 0, r.stderr
    five = [tmp_path / "e5" / f"{stem}_smile_{i:02d}.png" for i in range(5)]
    assert all(f.exists() for f in five) and not (tmp_path / "e5" / f"{stem}_smile_05.png").exists()
    assert _diff(five[2], frames[1]) < 0.5 and _diff(five[0], frames[0]) < 0.5
    assert _diff(frames[0], frames[1]) > 1.0  # a real edit changes the image
    r = run_cli("--device", "cpu", "edit", photos[2], "-d", "age", "-o", tmp_path / "e2",
                "-w", tiny_model_dir)
    assert r.exit_code == 3 and "no 'age' edit direction" in r.stderr


def test_same_file_names_in_different_folders_do_not_collide(run_cli, photos, style, tiny_model_dir,
                                                             isolated_cache, tmp_path):
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        (tmp_path / sub / "face.jpg").write_bytes(photos[0].read_bytes())
    out = tmp_path / "out"
    r = run_cli("--device", "cpu", "stylize", tmp_path / "a", tmp_path / "b", style, "-o", out,
                "-w", tiny_model_dir)
    assert r.exit_code == 0, r.stderr
    assert sorted(p.name for p in out.iterdir()) == [f"a_face__{style.stem}.png",
                                                     f"b_face__{style.stem}.png"]
