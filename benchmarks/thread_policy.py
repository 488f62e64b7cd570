"""The CPU thread policy: the README's first command with 1 thread and with one per core.

hypernst used to pick ``cores - round(1-minute load average)`` threads at start-up; it now uses
one per usable core unless the user sets ``--threads`` / ``OMP_NUM_THREADS``
(hypernst_cli/device.py). This times ``hypernst --threads N stylize`` of the example face with
the embedded model (a fresh process each run, style codes cached after the first), alternating
N = 1 and N = cores so machine load hits both alike, and records what the old rule would have
picked from the load average seen at each start.

Run: python benchmarks/thread_policy.py [--runs 3] [--no-record]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT))
from _results import append_results  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()

    from hypernst_cli.device import cpu_budget

    cores = cpu_budget()
    counts = sorted({1, cores})
    face = ROOT / "examples" / "content" / "face-1.png"
    style = ROOT / "examples" / "styles" / "poster-portrait.png"
    tmp = Path(tempfile.mkdtemp())
    env = {k: v for k, v in os.environ.items()
           if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "HYPERNST_THREADS")}
    env["HYPERNST_CACHE"] = str(tmp / "cache")
    times: dict[int, list[float]] = {n: [] for n in counts}
    old_rule: list[int] = []
    loads: list[float] = []

    def run(n: int) -> float:
        cmd = [sys.executable, "-m", "hypernst_cli", "-q", "--device", "cpu", "--threads", str(n),
               "stylize", str(face), str(style), "-o", str(tmp / "out.png"), "--overwrite"]
        t0 = time.perf_counter()
        subprocess.run(cmd, cwd=ROOT, env=env, check=True, capture_output=True)
        return time.perf_counter() - t0

    run(1)  # warm the style-code cache and the file system
    for _ in range(args.runs):
        for n in counts:
            load = os.getloadavg()[0]
            loads.append(load)
            old_rule.append(max(1, cores - min(cores, int(load + 0.5))))
            times[n].append(run(n))

    rows = [(f"{n} thread(s): median of {args.runs} (min-max)",
             f"{statistics.median(times[n]):.2f} s ({min(times[n]):.2f}-{max(times[n]):.2f})")
            for n in counts]
    rows.append(("1-minute load average at each start", ", ".join(f"{x:.1f}" for x in loads)))
    rows.append(("threads the old rule (cores - load) picked at each start",
                 ", ".join(str(n) for n in old_rule)))
    rows.append(("threads the new rule picks", f"{cores} (one per usable core)"))
    notes = ("`hypernst --threads N stylize examples/content/face-1.png "
             "examples/styles/poster-portrait.png` with the embedded compact model, a fresh process "
             "per run (model loading included), style codes cached; N alternated.")
    text = append_results(f"Thread policy: README's first command, {cores} cores", rows, notes) \
        if not args.no_record else "\n".join(f"{a}: {b}" for a, b in rows)
    print(text)


if __name__ == "__main__":
    main()
