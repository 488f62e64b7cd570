"""`hypernst codes` on real style images with the tiny model (random weights)."""

from __future__ import annotations

import json
from pathlib import Path

from hypernst_cli.weights.checkpoint import load_tensors


def test_codes_on_real_styles(run_cli, portraits, tiny_model_dir, isolated_cache, tmp_path):
    from portraits import FACE_STYLES

    styles = sorted((portraits / "styles").glob("*.png"))  # 17: 8 art portraits, 9 other pictures
    out = tmp_path / "codes.safetensors"
    r = run_cli("--device", "cpu", "codes", *styles, "--weights", tiny_model_dir, "--json",
                "-o", out)
    assert r.exit_code == 0, r.stderr
    rows = [json.loads(x) for x in r.stdout.splitlines()]
    assert len(rows) == len(styles)
    for row in rows:
        if row["face_found"]:
            assert set(row["patches_kept"]) == {"background", "face", "hair"}
            assert row["patches_kept"]["face"] > 0
        else:
            assert row["fallback_to_global"] == ["background", "face", "hair"]
        assert row["cache"] and row["cache"].startswith(str(isolated_cache))
    portraits = [r for r in rows if r["face_found"]]
    # the art portraits are parsed; landscapes, a cat and pattern styles fall back to global codes
    assert {Path(r["style"]).stem for r in portraits} == {*FACE_STYLES, "poster-portrait"}
    # portraits get their own code for each region they show; anything else is a reported fall-back
    three = [r for r in portraits if all(v > 0 for v in r["patches_kept"].values())]
    assert len(three) >= len(portraits) // 2
    for r in portraits:
        missing = {k for k, v in r["patches_kept"].items() if v == 0}
        assert set(r["fallback_to_global"]) == missing
    tensors, meta = load_tensors(out)
    assert tensors[f"{styles[0].stem}.regions"].shape[0] == 3
    # a second run reads the cache: the same codes
    r2 = run_cli("--device", "cpu", "codes", styles[0], "--weights", tiny_model_dir, "--json")
    assert json.loads(r2.stdout)["cosine"] == rows[0]["cosine"]


def test_codes_without_weights_is_exit_3(run_cli, tmp_path, monkeypatch):
    from PIL import Image

    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    p = tmp_path / "s.png"
    Image.new("RGB", (32, 32)).save(p)
    r = run_cli("codes", p, "--config", "paper")
    assert r.exit_code == 3 and "no weights found" in r.stderr


def test_codes_takes_the_short_weights_flag(run_cli, portraits, tiny_model_dir, isolated_cache):
    """`codes STYLES -w X` said "No such option: -w" (every other model command takes it)."""
    style = portraits / "styles" / "poster-portrait.png"
    r = run_cli("--device", "cpu", "codes", style, "-w", tiny_model_dir, "--json")
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["style"] == str(style)
