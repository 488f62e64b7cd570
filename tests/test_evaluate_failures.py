"""`hypernst evaluate` keeps finished work: an unreadable image fails its pairs only, and every
model given with -w gets its own row, even when the folders share a name (RUN/final/)."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest

from hypernst_cli.errors import UsageError
from hypernst_cli.eval import BASELINES, EvalRunner
from hypernst_cli.eval.colour import ColourMetric
from hypernst_cli.io import save_image


def _image(path: Path, seed: int, size: int = 32) -> Path:
    rng = np.random.default_rng(seed)
    return save_image(rng.integers(0, 256, (size, size, 3), dtype=np.uint8), path)


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_runner_reports_an_unreadable_image_and_measures_the_rest(tmp_path):
    empty = tmp_path / "c" / "empty.png"
    empty.parent.mkdir()
    empty.touch()
    # the bad file comes first: it is also the pair the warm-up used to load
    contents = [empty, _image(tmp_path / "c" / "good.png", 1)]
    styles = [_image(tmp_path / "s" / "style.png", 2)]
    out = tmp_path / "report"
    report = EvalRunner([ColourMetric()], "cpu", save_outputs=False).run(
        contents, styles, dict(BASELINES), out_dir=out)

    rows = _rows(out / "pairs.csv")
    assert len(rows) == 2 * len(BASELINES)  # every method on both pairs, the failed ones too
    failed = [r for r in rows if r["error"]]
    assert {r["content"] for r in failed} == {"empty"} and len(failed) == len(BASELINES)
    assert all("empty.png: file is empty (0 bytes)" in r["error"] for r in failed)
    good = [r for r in rows if r["content"] == "good"]
    assert all(not r["error"] and float(r["colour"]) >= 0 for r in good)
    assert report.summary["identity"]["failed"] == 1 and report.summary["identity"]["pairs"] == 2
    assert f"## Failures ({len(BASELINES)})" in (out / "report.md").read_text()


def test_evaluate_cli_keeps_good_pairs_and_exits_1(run_cli, portraits, tiny_model_dir,
                                                 isolated_cache, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # no backbones: n/a columns
    empty = tmp_path / "x.png"
    empty.touch()
    out = tmp_path / "report"
    r = run_cli("--device", "cpu", "evaluate", "--content", portraits / "faces" / "astronaut.png",
                "--content", empty, "--style", portraits / "styles" / "watercolour.png",
                "-w", tiny_model_dir, "-o", out, "--no-baselines", "--no-region-colour")
    assert r.exit_code == 1, r.stderr
    assert "Traceback" not in r.stderr
    rows = _rows(out / "pairs.csv")
    assert [(row["content"], bool(row["error"])) for row in rows] == [("astronaut", False),
                                                                      ("x", True)]
    assert "file is empty" in rows[1]["error"]
    report = (out / "report.md").read_text()
    assert "## Failures (1)" in report and "x.png: file is empty (0 bytes)" in report


def test_evaluate_cli_gives_models_in_same_named_folders_a_row_each(
        run_cli, portraits, tiny_model_dir, isolated_cache, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    for run in ("A", "B"):  # the layout `hypernst train` writes: RUN/final/
        shutil.copytree(tiny_model_dir, tmp_path / run / "final")
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "report"
    r = run_cli("--device", "cpu", "evaluate", "--content", portraits / "faces" / "astronaut.png",
                "--style", portraits / "styles" / "watercolour.png", "-w", "A/final",
                "-w", "B/final", "-o", out, "--no-baselines", "--no-region-colour")
    assert r.exit_code == 0, r.stderr
    assert [row["method"] for row in _rows(out / "pairs.csv")] == ["HyperNST (A/final)",
                                                                   "HyperNST (B/final)"]
    report = (out / "report.md").read_text()
    assert "| HyperNST (A/final) |" in report and "| HyperNST (B/final) |" in report


def test_model_labels_are_the_shortest_distinct_path_suffixes(tmp_path, monkeypatch):
    from hypernst_cli.cli.evaluate import model_labels

    assert model_labels(["runs/A/final", "runs/B/final", "compact"]) == [
        "A/final", "B/final", "compact"]
    assert model_labels(["x/final", "y/x/final"]) == ["x/final", "y/x/final"]
    assert model_labels(["/abs/a/final/", "b/final"]) == ["a/final", "b/final"]
    (tmp_path / "A" / "final").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UsageError, match="same model"):
        model_labels(["A/final", f"{tmp_path}/A/final/"])
