"""The evaluation runner and its report: pairs, timing, failures, report.md, CSV, JSON, sheets."""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path

import numpy as np
import pytest

from hypernst_cli.errors import NoFaceError, UsageError
from hypernst_cli.eval import BASELINES, EvalRunner, default_metrics
from hypernst_cli.eval.colour import ColourMetric
from hypernst_cli.eval.lpips_metric import LPIPSMetric
from hypernst_cli.eval.runner import select_pairs, slug, unique_names
from hypernst_cli.eval.sifid import SIFIDMetric
from hypernst_cli.io import load_image, save_image
from hypernst_cli.weights import registry


def _write_images(folder: Path, n: int, seed: int, size: int = 64) -> list[Path]:
    rng = np.random.default_rng(seed)
    paths = []
    y, x = np.mgrid[0:size, 0:size] / size
    for i in range(n):
        tint = rng.uniform(40, 200, 3)
        img = tint + 50 * np.stack([x, y, x * y], axis=-1) + rng.normal(0, 6, (size, size, 3))
        paths.append(save_image(np.clip(img, 0, 255).astype(np.uint8), folder / f"img{i}.png"))
    return paths


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_select_pairs_names_and_slugs():
    assert select_pairs(2, 3, None, 0) == [(c, s) for c in range(2) for s in range(3)]
    assert select_pairs(2, 3, 10, 0) == select_pairs(2, 3, None, 0)
    sample = select_pairs(4, 5, 6, seed=7)
    assert len(sample) == 6 == len(set(sample)) and sample == sorted(sample)
    assert sample == select_pairs(4, 5, 6, seed=7) != select_pairs(4, 5, 6, seed=8)
    assert unique_names([Path("a/x.png"), Path("b/x.jpg"), Path("y.png")]) == ["x", "x-2", "y"]
    assert slug("colour transfer/v2") == "colour-transfer-v2"


def test_runner_with_random_backbones_failures_and_timing(tmp_path):
    contents = _write_images(tmp_path / "c", 2, seed=1)
    styles = _write_images(tmp_path / "s", 2, seed=2)
    calls = {"slow": 0}

    def slow(content, style):
        calls["slow"] += 1
        time.sleep(0.02)
        return content

    def picky(content, style):
        if content[0, 0, 0] == load_image(contents[0])[0, 0, 0]:
            raise NoFaceError("c0", "no face found")
        return content

    def broken(content, style):
        return content.astype(np.float32)

    metrics = [
        LPIPSMetric("alex", weights="random"),
        SIFIDMetric(weights="random"),
        ColourMetric(),
    ]
    out = tmp_path / "report"
    report = EvalRunner(metrics, "cpu").run(
        contents,
        styles,
        {**BASELINES, "style copy": lambda c, s: s, "slow": slow, "picky": picky, "broken": broken},
        out_dir=out,
    )
    assert calls["slow"] == 4 + 1  # every pair plus one warm-up call
    s = report.summary
    assert s["identity"]["lpips_alex"] == pytest.approx(0.0, abs=1e-6)
    assert s["identity"]["sifid"] > 0.01
    assert s["style copy"]["sifid"] == pytest.approx(0.0, abs=1e-6)
    assert s["style copy"]["colour"] == pytest.approx(0.0, abs=1e-9)
    assert s["colour transfer"]["lpips_alex"] > 1e-4
    assert s["slow"]["model_s"] >= 0.02 and s["slow"]["total_s"] > s["slow"]["model_s"]
    assert s["picky"]["failed"] == 2 and s["picky"]["pairs"] == 4
    assert s["broken"]["failed"] == 4 and s["broken"]["lpips_alex"] is None

    rows = _read_csv(out / "pairs.csv")
    assert len(rows) == 4 * (len(BASELINES) + 4)
    failed = [r for r in rows if r["method"] == "picky" and r["error"]]
    assert len(failed) == 2 and "no face found" in failed[0]["error"]
    assert failed[0]["lpips_alex"] == "n/a" and failed[0]["model_s"] == ""
    broken_row = next(r for r in rows if r["method"] == "broken")
    assert "RGB uint8" in broken_row["error"]
    ok = next(r for r in rows if r["method"] == "colour transfer")
    assert float(ok["lpips_alex"]) > 0 and float(ok["colour"]) > 0 and float(ok["total_s"]) > 0
    assert (out / ok["output"]).is_file()

    md = (out / "report.md").read_text()
    header = next(line for line in md.splitlines() if line.startswith("| Method"))
    assert header.index("LPIPS (Alexnet)†") < header.index("SIFID†") < header.index("Time (s/img)")
    assert "random backbone weights" in md and "random Inception weights" in md
    assert "## Failures (6)" in md
    for m in ("identity", "colour transfer", "style copy", "slow", "picky", "broken"):
        assert f"| {m} |" in md
    data = json.loads((out / "report.json").read_text())
    assert data["summary"]["identity"]["lpips_alex"] == pytest.approx(0.0, abs=1e-6)
    assert len(data["failures"]) == 6
    sheet = load_image(out / "contact_colour-transfer.png")
    assert sheet.shape[0] > 3 * 128 and sheet.shape[1] > 3 * 128  # header row + 2 contents
    assert not (out / "contact_broken.png").exists()  # nothing to show
    assert not list(out.rglob(".*.tmp-*"))  # atomic writes leave no temp files


def test_runner_samples_pairs_and_rejects_bad_calls(tmp_path):
    contents = _write_images(tmp_path / "c", 3, seed=3, size=32)
    styles = _write_images(tmp_path / "s", 3, seed=4, size=32)
    runner = EvalRunner([ColourMetric()], "cpu", save_outputs=False, warmup=0)
    report = runner.run(contents, styles, dict(BASELINES), pairs=4, seed=1, out_dir=tmp_path / "r")
    assert report.sampled and len(report.pairs) == 4
    assert len(_read_csv(tmp_path / "r" / "pairs.csv")) == 4 * len(BASELINES)
    assert "a sample of 4 of 9 (seed 1)" in (tmp_path / "r" / "report.md").read_text()
    assert not (tmp_path / "r" / "outputs").exists()
    with pytest.raises(UsageError):
        runner.run([], styles, dict(BASELINES), out_dir=tmp_path / "x")
    with pytest.raises(UsageError):
        runner.run(contents, styles, {}, out_dir=tmp_path / "x")
    with pytest.raises(UsageError):
        runner.run(contents, styles, dict(BASELINES), pairs=0, out_dir=tmp_path / "x")


@pytest.fixture
def no_backbones(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(registry, "load_registry", lambda *a, **k: {})


def test_baselines_on_real_faces_and_styles_without_backbones(portraits, tmp_path, no_backbones):
    contents = [portraits / "faces" / n for n in ("astronaut.png", "face-1.png", "face-2.png")]
    styles = [portraits / "styles" / f"{n}.png" for n in ("poster-portrait", "painted-face-3",
                                                          "watercolour", "coffee")]
    out = tmp_path / "eval"
    logged: list[str] = []
    report = EvalRunner(default_metrics(), "cpu", log=logged.append).run(
        contents, styles, dict(BASELINES), out_dir=out
    )
    missing = [line for line in logged if "n/a" in line]
    assert len(missing) == 3 and "hypernst download sifid-inception" in missing[2]
    s = report.summary
    for key in ("lpips_alex", "lpips_vgg", "sifid"):
        assert s["identity"][key] is None and s["colour transfer"][key] is None
    assert s["identity"]["identity"] == pytest.approx(0.0, abs=1e-9)
    assert s["identity"]["face_detected"] == 100.0
    assert s["colour transfer"]["colour"] < s["identity"]["colour"]
    assert s["histogram transfer"]["colour"] < s["identity"]["colour"]

    rows = _read_csv(out / "pairs.csv")
    assert len(rows) == len(BASELINES) * 12 and not any(r["error"] for r in rows)
    assert all(r["lpips_alex"] == "n/a" and r["sifid"] == "n/a" for r in rows)
    by_pair: dict[tuple[str, str], dict[str, float]] = {}
    for r in rows:
        by_pair.setdefault((r["content"], r["style"]), {})[r["method"]] = float(r["colour"])
    lower = sum(d["colour transfer"] < d["identity"] for d in by_pair.values())
    assert lower > len(by_pair) / 2, by_pair
    ct = [r for r in rows if r["method"] == "colour transfer"]
    assert all(float(r["identity"]) < 0.6 for r in ct if r["identity"] != "n/a")  # still the person

    md = (out / "report.md").read_text()
    line = next(x for x in md.splitlines() if x.startswith("| colour transfer |"))
    assert line.split("|")[2:5] == [" n/a ", " n/a ", " n/a "]
    for entry in ("lpips-alexnet-backbone", "lpips-vgg16-backbone", "sifid-inception"):
        assert f"hypernst download {entry}" in md
    for name in ("contact_identity.png", "contact_colour-transfer.png", "pairs.csv", "report.json"):
        assert (out / name).is_file()
    sheet = load_image(out / "contact_identity.png")
    assert sheet.shape[0] > 4 * 128 and sheet.shape[1] > 5 * 128  # styles row + 3 contents


def test_colour_win_rate_compares_each_pair_with_the_unchanged_content():
    from hypernst_cli.eval.runner import add_colour_win_rate

    def row(method, content, colour, error=None):
        return {"method": method, "content": content, "style": "s", "colour": colour, "error": error}

    rows = [row("identity", "a", 10.0), row("identity", "b", 10.0), row("identity", "c", 10.0),
            row("model", "a", 4.0), row("model", "b", 12.0), row("model", "c", None, "no face")]
    summary = {"identity": {}, "model": {}}
    add_colour_win_rate(summary, rows)
    assert summary["model"]["colour_win_pct"] == 50.0  # a wins, b loses, c failed (not counted)
    assert summary["identity"]["colour_win_pct"] == 0.0  # never strictly closer than itself

    without_baseline = {"model": {}}
    add_colour_win_rate(without_baseline, [r for r in rows if r["method"] == "model"])
    assert without_baseline == {"model": {}}
