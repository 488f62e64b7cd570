"""CLI start-up: wall time of `hypernst --help` and `hypernst <cmd> --help` (target <= 0.3 s).

Run: python benchmarks/cli_startup.py [--runs 20]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import append_results  # noqa: E402


def time_command(argv: list[str], runs: int) -> tuple[float, float]:
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True)
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples), max(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    exe = [sys.executable, "-m", "hypernst_cli"]
    rows = []
    for label, argv in [("hypernst --help", ["--help"]), ("hypernst info --help", ["info", "--help"])]:
        median, worst = time_command(exe + argv, args.runs)
        rows.append((f"{label} (median of {args.runs})", f"{median:.3f} s (max {worst:.3f} s)"))
        print(f"{label}: median {median:.3f} s, max {worst:.3f} s")
    append_results("CLI start-up", rows, "Target: `hypernst --help` <= 0.3 s.")


if __name__ == "__main__":
    main()
