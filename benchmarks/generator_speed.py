"""Generator forward (with per-layer offsets, as in every refinement iteration): now vs a commit.

Loads ``hypernst_cli/models/stylegan2.py`` as it was at ``--before`` (git show) next to the
current one, gives both the same random weights, and times them alternately in one process (so
machine load hits both alike); also prints their largest output difference.

Run: python benchmarks/generator_speed.py [--before 949a0c5] [--configs compact,paper]
     [--batches 1,4,16] [--threads 1] [--runs 5] [--device cpu] [--no-record]
"""

from __future__ import annotations

import argparse
import importlib.util
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


def _module_at(commit: str):
    source = subprocess.run(["git", "show", f"{commit}:hypernst_cli/models/stylegan2.py"],
                            cwd=ROOT, capture_output=True, text=True, check=True).stdout
    path = Path(tempfile.mkdtemp()) / "stylegan2_before.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("stylegan2_before", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["stylegan2_before"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--before", default="949a0c5")
    parser.add_argument("--configs", default="compact,paper")
    parser.add_argument("--batches", default="1,4,16")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()

    import torch

    from hypernst_cli.configs import get_config
    from hypernst_cli.models import stylegan2 as now

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    before = _module_at(args.before)
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
    rows = []
    for name in args.configs.split(","):
        cfg = get_config(name).generator
        torch.manual_seed(0)
        g_now = now.build_generator(cfg).eval().requires_grad_(False).to(device)
        g_before = before.build_generator(cfg).eval().requires_grad_(False).to(device)
        g_before.load_state_dict(g_now.state_dict())
        for batch in [int(b) for b in args.batches.split(",")]:
            if name == "paper" and batch > 4 and device.type == "cpu":
                continue  # minutes per run on a CPU; the GPU is where paper batches run
            gen = torch.Generator().manual_seed(batch)
            w = torch.randn(batch, g_now.n_latent, cfg.style_dim, generator=gen).to(device)
            offsets = [0.1 * torch.randn(batch, s.out_channels, s.in_channels, generator=gen).to(device)
                       for s in g_now.layer_specs()]
            times: dict[str, list[float]] = {"before": [], "now": []}
            runs = args.runs if name != "paper" or device.type != "cpu" else max(1, args.runs // 2)
            with torch.inference_mode():
                a, b = g_now(w, offsets=offsets), g_before(w, offsets=offsets)
                diff = (a - b).abs().max().item() / b.abs().max().item()
                for _ in range(runs):
                    for label, g in (("before", g_before), ("now", g_now)):
                        sync()
                        t0 = time.perf_counter()
                        g(w, offsets=offsets)
                        sync()
                        times[label].append(time.perf_counter() - t0)
            t_b, t_n = statistics.median(times["before"]), statistics.median(times["now"])
            value = (f"before {t_b * 1000:.1f} ms, now {t_n * 1000:.1f} ms ({t_b / t_n:.2f}x); "
                     f"{t_n / batch * 1000:.1f} ms per image; max relative diff {diff:.1e}")
            label = f"{name} ({cfg.resolution} px) generator with offsets, batch {batch}"
            rows.append((label, value))
            print(f"{label}: {value}", flush=True)
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    notes = (f"Before = hypernst_cli/models/stylegan2.py at commit {args.before}; same random "
             f"weights, alternating runs, medians; device {args.device}, {args.threads} thread(s). "
             f"Load average at the end: {load}.")
    print(notes)
    if not args.no_record:
        append_results("Generator fast path vs before", rows, notes)


if __name__ == "__main__":
    main()
