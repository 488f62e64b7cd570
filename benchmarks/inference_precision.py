"""Generator + hyper-network inference: batch sizes x precision x eager/compiled, with accuracy.

For each config, batch size, precision (fp32, bf16, fp16 autocast) and mode (eager, or
torch.compile'd generator and hyper-network), times the stylize core the pipeline runs per batch
(initial G(w+) + ``iterations`` x (hyper-network + generator), i.e. ``stylize_tensors`` with the
latents given), and compares each output with fp32 eager: max and mean absolute difference on the
[-1, 1] image scale (the images of random weights are normalised to that range first).
Random weights: speed does not depend on the values. Meant for CUDA (``--device cuda``: the
``paper`` config at batch 1 and 16); on a CPU it runs fp32 eager and bf16 autocast.

Run: python benchmarks/inference_precision.py --device cuda --configs paper --batches 1,16
     [--precisions fp32,bf16,fp16] [--modes eager,compiled] [--runs 10] [--no-record]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _results import append_results  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--configs", default="compact")
    parser.add_argument("--batches", default="1,16")
    parser.add_argument("--precisions", default=None, help="default: fp32,bf16,fp16 on CUDA, fp32,bf16 on CPU")
    parser.add_argument("--modes", default=None, help="default: eager,compiled on CUDA, eager on CPU")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()

    import torch

    from hypernst_cli.configs import get_config
    from hypernst_cli.pipeline.core import stylize_tensors
    from hypernst_cli.pipeline.models import INFERENCE_PARTS, init_networks

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    precisions = (args.precisions or ("fp32,bf16,fp16" if cuda else "fp32,bf16")).split(",")
    modes = (args.modes or ("eager,compiled" if cuda else "eager")).split(",")
    dtypes = {"bf16": torch.bfloat16, "fp16": torch.float16}

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize(device)

    rows: list[tuple[str, str]] = []
    for name in args.configs.split(","):
        cfg = get_config(name)
        nets = init_networks(cfg, INFERENCE_PARTS, seed=0)
        with torch.no_grad():  # untrained output layers are zero: give the offsets some effect
            for pname, p in nets["hypernet"].named_parameters():
                if not p.any():
                    p.normal_(0.0, 0.02 if pname.endswith("weight") else 0.005)
        g, h, e = (nets[k].eval().requires_grad_(False).to(device)
                   for k in ("generator", "hypernet", "encoder"))
        if cuda:
            h.to(memory_format=torch.channels_last)
        r = cfg.resolution
        iters = cfg.hypernet.iterations
        for batch in [int(b) for b in args.batches.split(",")]:
            gen = torch.Generator().manual_seed(batch)
            content = (torch.rand(batch, 3, r, r, generator=gen) * 2 - 1).to(device)
            mask = torch.randint(0, 3, (batch, r, r), generator=gen).to(device)
            # code tables as the pipeline passes them: 3 region codes + the global code A(s)
            codes = torch.randn(batch, 4, cfg.aladin.code_dim, generator=gen).to(device)
            w = g.mapping(torch.randn(batch, g.n_latent, g.style_dim, generator=gen).to(device))
            reference = None
            norm = None
            for mode in modes:
                gm, hm = g, h
                if mode == "compiled":
                    gm = torch.compile(g, dynamic=False)  # as the pipeline does
                    hm = torch.compile(h, dynamic=False)
                for prec in precisions:
                    ctx = (torch.autocast(device.type, dtype=dtypes[prec]) if prec in dtypes
                           else torch.autocast(device.type, enabled=False))

                    def run():
                        with torch.inference_mode(), ctx:
                            return stylize_tensors(gm, hm, e, content, mask, codes,
                                                   iterations=iters, latent=w).images.float()

                    if cuda:
                        torch.cuda.reset_peak_memory_stats(device)
                    t0 = time.perf_counter()
                    out = run()  # warm-up (and compilation)
                    sync()
                    first = time.perf_counter() - t0
                    samples = []
                    for _ in range(args.runs):
                        t0 = time.perf_counter()
                        out = run()
                        sync()
                        samples.append(time.perf_counter() - t0)
                    sec = statistics.median(samples)
                    if reference is None:
                        reference, norm = out, out.abs().amax().clamp_min(1e-6)
                    diff = ((out - reference) / norm).abs()
                    vram = (f", peak VRAM {torch.cuda.max_memory_allocated(device) / 2**20:.0f} MiB"
                            if cuda else "")
                    label = f"{name} ({r} px), batch {batch}, {prec}, {mode}"
                    value = (f"{sec * 1000:.1f} ms ({sec / batch * 1000:.1f} ms per image; first "
                             f"call {first:.2f} s){vram}; vs fp32 eager: max {diff.max().item():.2e}, "
                             f"mean {diff.mean().item():.2e} (1/255 = 3.9e-03)")
                    rows.append((label, value))
                    print(f"{label}: {value}", flush=True)
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    notes = (f"Stylize core: initial G(w+) + iterations x (hyper-network + generator), latents "
             f"given; median of {args.runs} runs after a warm-up (which includes compilation). "
             "Random weights (speed does not depend on the values); differences on the image "
             f"normalised to [-1, 1]. Load average at the end: {load}.")
    print(notes)
    if not args.no_record:
        append_results(f"Inference precision and compile ({args.device}, {args.threads} threads)",
                       rows, notes)


if __name__ == "__main__":
    main()
