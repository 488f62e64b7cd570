"""Forward time of the networks on this machine (batch 1, random weights, no gradients).

Generator, hyper-network (one refinement iteration = hyper-network + generator; three iterations
= the full refine() incl. the initial G(w+)), image discriminator and patch co-occurrence
discriminator (3 query + 3 reference patches: one region) for the ``compact`` and ``paper``
configs. Median of ``--runs`` timed runs after one warm-up.

Run: python benchmarks/models_forward.py [--runs 3] [--threads 2] [--device cpu] [--configs compact,paper]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _results import append_results  # noqa: E402


def _time(fn, runs: int, sync) -> float:
    fn()  # warm-up
    sync()
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        sync()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--configs", default="compact,paper")
    args = parser.parse_args()

    import torch

    from hypernst_cli.configs import get_config
    from hypernst_cli.models.hypernet import build_hypernet, refine
    from hypernst_cli.models.patch_disc import build_patch_disc
    from hypernst_cli.models.stylegan2 import build_discriminator, build_generator

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
    rows = []
    for name in args.configs.split(","):
        cfg = get_config(name)
        torch.manual_seed(0)
        g = build_generator(cfg.generator).to(device).eval()
        h = build_hypernet(cfg, g).to(device).eval()
        d = build_discriminator(cfg.generator).to(device).eval()
        p = build_patch_disc(cfg.patch_disc).to(device).eval()
        r, s = cfg.resolution, cfg.patch_disc.patch_size
        w = g.mapping(torch.randn(1, cfg.generator.style_dim, device=device))
        w = w[:, None].expand(-1, g.n_latent, -1)
        content = torch.rand(1, 3, r, r, device=device) * 2 - 1
        code_map = torch.randn(1, cfg.aladin.code_dim, r, r, device=device)
        global_code = torch.randn(1, cfg.aladin.code_dim, device=device)  # A(s), Eq. 2 configs
        patches = torch.randn(1, 3, 3, s, s, device=device)
        with torch.no_grad():
            image = g(w)
            measures = {
                "generator": lambda: g(w),
                # one pass of the refinement loop from a given G(w+): E_mask + H + G
                "hyper-network, 1 iteration (H + G)":
                    lambda: refine(g, h, w, content, code_map, 1, initial=image,
                                   global_code=global_code),
                f"hyper-network, {cfg.hypernet.iterations} iterations (refine, incl. initial G)":
                    lambda: refine(g, h, w, content, code_map, cfg.hypernet.iterations,
                                   global_code=global_code),
                "discriminator": lambda: d(image),
                "patch discriminator (3+3 patches)": lambda: p(patches, patches),
            }
            for label, fn in measures.items():
                sec = _time(fn, args.runs, sync)
                rows.append((f"{name} ({r} px): {label}", f"{sec:.3f} s"))
                print(f"{name}: {label}: {sec:.3f} s", flush=True)
    import os

    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    append_results(
        f"Model forward time ({args.device}, batch 1, {args.threads} threads)", rows,
        f"Median of {args.runs} runs after 1 warm-up; random weights; torch.no_grad(). "
        f"Load average at the end: {load} (a shared machine inflates CPU times).",
    )


if __name__ == "__main__":
    main()
