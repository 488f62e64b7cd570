"""Record a multi-stage recipe's history in the model folder it produced.

``python -m hypernst_cli.train.history RUNS_DIR MODEL_DIR STAGE... [--continues INIT]``

Each stage's export only knows its own run: networks it took from ``init`` are marked "init".
A recipe's final model was trained across all its stages, so this rewrites MODEL_DIR's
``metrics.json`` with, per network, the stage that trained it ("trained" when one did) and, per
stage, its steps and last logged losses; and appends the same history to the model card. A
recipe that continues a trained model (``--continues INIT``) keeps INIT's stages first: the
history then runs from the first step of the whole lineage.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from hypernst_cli.io.atomic import atomic_write_text
from hypernst_cli.weights.checkpoint import CARD_FILE, METRICS_FILE


def stage_summaries(runs: Path, stages: list[str]) -> dict[str, dict[str, Any]]:
    """Per stage (in order): steps, last logged losses and the networks it trained."""
    out: dict[str, dict[str, Any]] = {}
    for stage in stages:
        path = runs / stage / "final" / METRICS_FILE
        if not path.is_file():
            raise SystemExit(f"error: {path}: missing (did the '{stage}' step finish?)")
        metrics = json.loads(path.read_text())
        trained = sorted(n for n, o in (metrics.get("networks") or {}).items() if o == "trained")
        out[stage] = {"steps": metrics.get("steps"), "final": metrics.get("final") or {},
                      "trained": trained}
    return out


def merged_metrics(model_metrics: dict[str, Any], stages: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The exported model's metrics with each network's origin resolved over all stages."""
    networks = dict(model_metrics.get("networks") or {})
    # the folder's own networks only (an export leaves the discriminators out; the stage
    # history below still says which stage trained them)
    trained_by = {net: stage for stage, s in stages.items() for net in s["trained"]
                  if net in networks}
    for net in networks:
        if net in trained_by:
            networks[net] = "trained"
    return {**model_metrics, "networks": networks, "trained_by": trained_by, "stages": stages}


def history_markdown(stages: dict[str, dict[str, Any]]) -> str:
    lines = ["", "## Training history (all stages of the recipe)", "",
             "| stage | steps | networks trained | last logged losses |", "| --- | --- | --- | --- |"]
    for stage, s in stages.items():
        losses = ", ".join(f"{k} {v:.4g}" for k, v in sorted(s["final"].items())
                           if isinstance(v, float) and k != "seconds")
        lines.append(f"| {stage} | {s['steps']} | {', '.join(s['trained']) or '-'} | {losses} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("runs", type=Path, help="the recipe's runs/ folder (one sub-folder per stage)")
    ap.add_argument("model", type=Path, help="the exported model folder to annotate")
    ap.add_argument("stages", nargs="+", help="the stages, in the order they ran")
    ap.add_argument("--continues", type=Path, default=None,
                    help="the model folder the recipe started from: its stages come first")
    args = ap.parse_args(argv)

    earlier: dict[str, dict[str, Any]] = {}
    if args.continues is not None and (args.continues / METRICS_FILE).is_file():
        earlier = json.loads((args.continues / METRICS_FILE).read_text()).get("stages") or {}
    stages = {**earlier, **stage_summaries(args.runs, args.stages)}
    metrics_path = args.model / METRICS_FILE
    model_metrics = json.loads(metrics_path.read_text()) if metrics_path.is_file() else {}
    atomic_write_text(metrics_path, json.dumps(merged_metrics(model_metrics, stages), indent=2) + "\n")
    card_path = args.model / CARD_FILE
    card = card_path.read_text() if card_path.is_file() else ""
    atomic_write_text(card_path, card.rstrip("\n") + "\n" + history_markdown(stages))
    print(f"recorded {len(stages)} stages in {metrics_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
