"""Report files: report.md (laid out like the paper's Table 1), pairs.csv, report.json and
contact sheets.

Every file is written atomically. A metric that could not run shows "n/a" (never a number) and the
notes under the table say why and what fixes it.
"""

from __future__ import annotations

import csv
import datetime as _dt
import io
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from hypernst_cli.eval.metrics import COLOUR_WIN, Column, Metric

if TYPE_CHECKING:
    from hypernst_cli.eval.runner import EvalReport

TIME_COLUMNS = [
    Column("model_s", "Time (s/img)", "{:.4f}"),
    Column("total_s", "End-to-end (s/img)", "{:.4f}"),
]

SheetGrid = tuple[list[list[np.ndarray | None]], list[str], list[str]]


def table_columns(metrics: list[Metric]) -> list[Column]:
    """The paper's columns first (LPIPS Alexnet, LPIPS VGG, SIFID, time), then the offline ones."""
    cols = [c for m in metrics if m.paper for c in m.columns()]
    cols += TIME_COLUMNS
    cols += [c for m in metrics if not m.paper for c in m.columns()]
    return cols


def unavailable_lines(metrics: list[Metric]) -> list[str]:
    """One line per metric that cannot run, with its fix (for the console and the notes)."""
    return [f"{m.title}: n/a, {m.missing_hint}" for m in metrics if not m.available]


def _marks(metrics: list[Metric]) -> dict[str, str]:
    """Column key -> footnote mark for columns whose numbers need a caveat."""
    marks = {}
    for m in metrics:
        if not m.available or m.note:
            for c in m.columns():
                marks[c.key] = "*" if not m.available else "†"
    return marks


#: shown when the runner could measure it (the identity baseline and the colour metric ran)
COLOUR_WIN_COLUMN = Column(COLOUR_WIN, "Colour closer than content (% pairs)", "{:.0f}%")


def settings_text(settings: dict[str, Any]) -> str:
    """``{"model": "compact from ...", "palette": 0.75}`` -> ``model compact from ...; palette 0.75``."""
    def show(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:g}"
        if isinstance(value, (list, tuple)):
            return ", ".join(map(str, value))
        return str(value)

    return "; ".join(f"{key.replace('_', ' ')} {show(value)}" for key, value in settings.items()
                     if value is not None)


def markdown(report: EvalReport) -> str:
    cols = table_columns(report.metrics)
    if any(COLOUR_WIN_COLUMN.key in s for s in report.summary.values()):
        cols.append(COLOUR_WIN_COLUMN)
    marks = _marks(report.metrics)
    n_pairs = len(report.pairs)
    grid = len(report.contents) * len(report.styles)
    how = f"a sample of {n_pairs} of {grid} (seed {report.seed})" if report.sampled else "all"
    lines = [
        "# Evaluation report",
        "",
        f"{len(report.contents)} content images x {len(report.styles)} styles: {how} pairs. "
        f"Device: {report.device}. {_now()}.",
        "",
        *[f"- {method}: {settings_text(report.settings[method])}." for method in report.methods
          if report.settings.get(method)],
        *([""] if report.settings else []),
        "| Method | " + " | ".join(c.header + marks.get(c.key, "") for c in cols) + " |",
        "|---|" + "---:|" * len(cols),
    ]
    for method in report.methods:
        s = report.summary[method]
        lines.append(f"| {method} | " + " | ".join(c.format(s.get(c.key)) for c in cols) + " |")
    lines += ["", "## Notes", ""]
    lines += [f"- \\* {line}." for line in unavailable_lines(report.metrics)]
    for m in report.metrics:
        if m.available and m.note:
            lines.append(f"- † {m.title}: {m.note}.")
    for m in report.metrics:
        source = getattr(m, "source", None)
        if m.available and source and not m.note:
            lines.append(f"- {m.title}: weights {source}.")
    lines += [
        "- LPIPS (content vs output; lower keeps more of the content), SIFID (style vs output, "
        "Inception features as in SinGAN; lower is closer to the style's statistics).",
        f"- Time: the method call only, after {report.warmup} untimed warm-up call(s) per method; "
        "end-to-end adds reading the two images and writing the output PNG. Both are means over "
        "pairs.",
        "- Identity dist.: dlib face-recognition descriptor distance between content and output "
        "(same person below 0.6); mean and share below 0.6 over the pairs where dlib found a face "
        "in both. Face det. rate: share of outputs in which dlib's HOG detector finds a face.",
        "- Colour dist.: sliced Wasserstein-2 distance between the CIE Lab colours of the style "
        "and the output (Lab units; lower is closer to the style's palette). Colour closer than "
        "content: share of pairs whose output is closer to the style's colours than the content "
        "itself (the identity baseline on the same pair).",
    ]
    failures = report.failures
    if failures:
        lines += ["", f"## Failures ({len(failures)})", ""]
        lines += [f"- {r['method']}: {r['content']} x {r['style']}: {r['error']}" for r in failures]
    lines += ["", "## Files", ""]
    lines += [f"- `{name}`" for name in sorted(_relative(report).values())]
    return "\n".join(lines) + "\n"


def _now() -> str:
    return _dt.datetime.now().astimezone().isoformat(timespec="seconds")


def _relative(report: EvalReport) -> dict[str, str]:
    out = {}
    root = report.files.get("report.md")
    base = root.parent if root else None
    for key, path in report.files.items():
        out[key] = str(path.relative_to(base)) if base and path.is_relative_to(base) else str(path)
    return out


def csv_text(report: EvalReport) -> str:
    """One row per (method, pair): every metric value ("n/a" where none), times, output, error.

    Times are empty for a failed pair, error is empty for a successful one."""
    metric_keys = [k for m in report.metrics for k in m.row_keys()]
    header = ["method", "content", "style", *metric_keys, "model_s", "total_s", "output", "error"]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    for row in report.rows:
        writer.writerow([_cell(row.get(k), k in metric_keys) for k in header])
    return buf.getvalue()


def _cell(value: Any, is_metric: bool) -> str:
    if value is None:
        return "n/a" if is_metric else ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def write_report(
    report: EvalReport, out_dir: Path, *, sheets: dict[str, SheetGrid | None], cell: int = 128
) -> dict[str, Path]:
    """Write the contact sheets, pairs.csv, report.json and report.md; returns their paths."""
    from hypernst_cli.eval.runner import slug
    from hypernst_cli.io import atomic_write_text, save_image
    from hypernst_cli.io.contact_sheet import contact_sheet

    out_dir = Path(out_dir)
    files: dict[str, Path] = {"report.md": out_dir / "report.md"}
    for method, grid in sheets.items():
        if grid is None:
            continue
        rows, row_labels, col_labels = grid
        path = out_dir / f"contact_{slug(method)}.png"
        save_image(
            contact_sheet(rows, cell=cell, row_labels=row_labels, col_labels=col_labels), path
        )
        files[f"contact sheet {method}"] = path
    files["pairs.csv"] = atomic_write_text(out_dir / "pairs.csv", csv_text(report))
    files["report.json"] = out_dir / "report.json"
    report.files = files
    atomic_write_text(files["report.json"], json.dumps(report.to_dict(), indent=2) + "\n")
    atomic_write_text(files["report.md"], markdown(report))
    return files
