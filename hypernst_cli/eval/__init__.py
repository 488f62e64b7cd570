"""Evaluation: the paper's Table 1 metrics (LPIPS, SIFID, time), offline metrics, baselines, report.

Usage::

    from hypernst_cli.eval import EvalRunner, BASELINES, default_metrics
    report = EvalRunner(default_metrics(), device="auto").run(
        contents, styles, {**BASELINES, "hypernst": stylize}, pairs=None, seed=0, out_dir=out)

Names are imported on first use, so importing this package stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "BASELINES": "baselines",
    "identity_method": "baselines",
    "colour_transfer": "colour",
    "histogram_transfer": "colour",
    "colour_distance": "colour",
    "sliced_wasserstein": "colour",
    "rgb_to_lab": "colour",
    "lab_to_rgb": "colour",
    "ColourMetric": "colour",
    "FaceAnalyser": "identity",
    "IdentityMetric": "identity",
    "FaceDetectionMetric": "identity",
    "LPIPSMetric": "lpips_metric",
    "SIFIDMetric": "sifid",
    "frechet_distance": "sifid",
    "Metric": "metrics",
    "Column": "metrics",
    "default_metrics": "metrics",
    "EvalRunner": "runner",
    "EvalReport": "runner",
    "select_pairs": "runner",
    "write_report": "report",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"hypernst_cli.eval.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'hypernst_cli.eval' has no attribute {name!r}")
