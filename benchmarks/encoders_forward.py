"""Encoder forward time: e4e and ALADIN-ViT for the `compact` and `paper` configs at batch 1.

Random weights (the time does not depend on them), eval mode, no autograd; 1 warm-up + N timed runs.
Run: OMP_NUM_THREADS=1 python benchmarks/encoders_forward.py [--runs 3] [--threads 1] [--device cpu]
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
sys.path.insert(1, str(ROOT.parent))
from _results import append_results  # noqa: E402


def time_forward(model, x, runs: int, sync) -> list[float]:
    import torch

    samples = []
    with torch.inference_mode():
        model(x)  # warm-up
        sync()
        for _ in range(runs):
            t0 = time.perf_counter()
            model(x)
            sync()
            samples.append(time.perf_counter() - t0)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--configs", default="compact,paper")
    parser.add_argument("--no-record", action="store_true", help="print only, do not append")
    args = parser.parse_args()

    import torch

    from hypernst_cli.configs import get_config
    from hypernst_cli.models.aladin import AladinViT
    from hypernst_cli.models.e4e import Encoder4Editing

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    rows = []
    for name in args.configs.split(","):
        cfg = get_config(name)
        torch.manual_seed(0)
        n_latent = 2 * int(math.log2(cfg.resolution)) - 2
        e4e = Encoder4Editing(cfg.encoder, n_latent, cfg.generator.style_dim).eval().to(device)
        aladin = AladinViT(cfg.aladin).eval().to(device)
        s, a = cfg.encoder.input_size, cfg.aladin.image_size
        cases = [
            (f"e4e {name} ({cfg.encoder.depth or 'custom'} IR-SE, {s} px, {n_latent}x"
             f"{cfg.generator.style_dim})", e4e, torch.rand(1, 3, s, s, device=device) * 2 - 1),
            (f"ALADIN-ViT {name} ({a} px, dim {cfg.aladin.dim}, depth {cfg.aladin.depth})",
             aladin, torch.rand(1, 3, a, a, device=device) * 2 - 1),
        ]
        for label, model, x in cases:
            params = sum(p.numel() for p in model.parameters()) / 1e6
            samples = time_forward(model, x, args.runs, sync)
            median = statistics.median(samples)
            line = f"{median * 1000:.1f} ms (min {min(samples) * 1000:.1f}, {params:.1f} M params)"
            print(f"{label}: {line}")
            rows.append((f"{label}, batch 1, median of {args.runs}", line))
        del e4e, aladin

    where = f"device {device}" + (f", {args.threads} CPU thread(s)" if device.type == "cpu" else "")
    if not args.no_record:
        append_results(
            "Encoder forward (e4e, ALADIN-ViT)",
            rows,
            f"Random weights, eval mode, inference_mode, 1 warm-up + {args.runs} timed runs; "
            f"{where}.",
        )


if __name__ == "__main__":
    main()
