"""Append a benchmark result block to benchmarks/RESULTS.md with machine, versions and date.

``HYPERNST_BENCH_NO_WRITE=1`` in the environment: every script prints its results but appends
nothing (smoke runs, tests/test_benchmarks_smoke.py).
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import subprocess
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
NO_WRITE_ENV = "HYPERNST_BENCH_NO_WRITE"


def writing_disabled() -> bool:
    """True when $HYPERNST_BENCH_NO_WRITE is set to anything but "", "0" or "false"."""
    return os.environ.get(NO_WRITE_ENV, "").strip().lower() not in ("", "0", "false", "no")


def shared_data_dir() -> Path:
    """The shared data folder the benchmarks read: $HYPERNST_SHARED_DATA, else ../shared/data."""
    env = os.environ.get("HYPERNST_SHARED_DATA")
    return Path(env) if env else RESULTS.parent.parent.parent / "shared" / "data"


def machine_line() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count()
    return f"{cpu}, {cores} cores, Python {platform.python_version()}, {platform.system()}"


def versions_line(commit: bool = True) -> str:
    """torch (and GPU) versions, and with ``commit`` the repository's short commit (git)."""
    parts = []
    try:
        import torch

        parts.append(f"torch {torch.__version__}")
        if torch.cuda.is_available():
            parts.append(f"GPU {torch.cuda.get_device_name(0)}")
    except ImportError:
        pass
    if not commit:
        return ", ".join(parts)
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, cwd=RESULTS.parent).stdout.strip()
        if rev:
            parts.append(f"commit {rev}")
    except OSError:
        pass
    return ", ".join(parts)


def append_results(title: str, rows: list[tuple[str, str]], notes: str = "") -> str:
    """Append a titled table of (measure, value) rows; returns the markdown written (or, with
    $HYPERNST_BENCH_NO_WRITE set, the markdown that would have been written: nothing is)."""
    now = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    dry = writing_disabled()
    lines = [f"## {title} ({now})", "", f"- machine: {machine_line()}",
             f"- versions: {versions_line(commit=not dry)}", "", "| measure | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in rows]
    if notes:
        lines += ["", notes]
    block = "\n".join(lines) + "\n\n"
    if dry:  # a smoke run: nothing appended (and no git call for the commit)
        return block
    if not RESULTS.exists():
        RESULTS.write_text("# Benchmark results\n\nAppended by the scripts in this folder "
                           "(run by hand). Newest at the bottom.\n\n")
    with RESULTS.open("a") as fh:
        fh.write(block)
    return block
