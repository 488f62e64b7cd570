"""`hypernst evaluate` with the tiny model on real faces and styles."""

from __future__ import annotations

import csv
import json


def test_evaluate_writes_report_csv_and_sheets(run_cli, portraits, tiny_model_dir,
                                              isolated_cache, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # no backbones: n/a columns
    faces = [portraits / "faces" / n for n in ("astronaut.png", "face-2.png")]
    styles = [portraits / "styles" / f"{n}.png" for n in ("poster-portrait", "painted-face-3",
                                                          "watercolour")]
    out = tmp_path / "report"
    r = run_cli("--device", "cpu", "evaluate", "--content", *[str(f) for f in faces][:1],
                "--content", str(faces[1]), "--style", *[str(s) for s in styles][:1],
                "--style", str(styles[1]), "--style", str(styles[2]),
                "-w", tiny_model_dir, "-o", out, "--no-region-colour", "--palette", "0.5")
    assert r.exit_code == 0, r.stderr
    report = (out / "report.md").read_text()
    # how the model ran is part of the report: a figure without its settings cannot be compared
    assert "- HyperNST: model tiny from " in report and "palette 0.5; " in report
    assert json.loads((out / "report.json").read_text())["settings"]["HyperNST"]["palette"] == 0.5
    assert "| HyperNST |" in report and "| colour transfer |" in report and "| identity |" in report
    assert "| histogram transfer |" in report
    assert "hypernst download lpips-alexnet-backbone" in report  # n/a, with the fix named
    assert (out / "contact_HyperNST.png").exists()
    rows = list(csv.DictReader((out / "pairs.csv").open()))
    assert len(rows) == 4 * 2 * 3  # methods x contents x styles
    colour = {m: [float(r["colour"]) for r in rows if r["method"] == m]
              for m in ("identity", "colour transfer")}
    assert sum(colour["colour transfer"]) < sum(colour["identity"])
    assert all(r["lpips_alex"] == "n/a" for r in rows)


def test_baselines_help_names_every_baseline_the_report_shows():
    """``--baselines`` help named the identity and colour-transfer baselines only, while the
    report also shows the histogram transfer."""
    import typer.main

    from hypernst_cli.cli.app import app
    from hypernst_cli.eval.baselines import BASELINES

    command = typer.main.get_command(app).commands["evaluate"]
    (param,) = [p for p in command.params if p.name == "baselines"]
    for name in BASELINES:
        assert name in param.help.lower(), (name, param.help)
