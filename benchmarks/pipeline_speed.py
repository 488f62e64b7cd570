"""Inference speed of every stage of ``hypernst stylize``, end to end, batch scaling and memory.

Builds a model folder with random weights for ``--config`` (default ``compact``) in a temporary
folder and runs the real pipeline on the shared photos: speed does not depend on the weights'
values, so random weights time the same code as trained ones (the outputs are not meaningful).

Stages per content photo (1024 px class): load photo, detect + align, parse, e4e, content codes
(ALADIN on the content's own regions), style codes (cold: computed; cached: from memory), then the
3 refinement iterations (hyper-network + generator each, after the initial G(w+)), paste-back and
write. End to end = all of them, without the one-time model loading (reported on its own).
Batch scaling: ``generate`` over 1, 4, 16 faces with one style. Peak RSS (and VRAM on CUDA).

Run: python benchmarks/pipeline_speed.py [--config compact] [--device cpu] [--threads 2]
     [--runs 3] [--precision fp32|bf16|fp16] [--compile] [--batches 1,4,16] [--no-record]
Needs the shared test data (``HYPERNST_SHARED_DATA``, default ../shared/data). ``--threads``
is fixed here (the CLI uses one per core unless told otherwise, see hypernst_cli/device.py):
compare 1 and 2 on a busy machine to see why.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _results import append_results, shared_data_dir  # noqa: E402


def _median(samples: list[float]) -> float:
    return statistics.median(samples)


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--config", default="compact")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"])
    parser.add_argument("--compile", action="store_true", help="torch.compile the generator")
    parser.add_argument("--batches", default="1,4,16")
    parser.add_argument("--backend", default="dlib")
    parser.add_argument("--label", default="", help="appended to the title (e.g. 'before')")
    parser.add_argument("--no-record", action="store_true", help="print only; do not append")
    args = parser.parse_args()

    os.environ["HYPERNST_PRECISION"] = args.precision
    os.environ["HYPERNST_COMPILE"] = "1" if args.compile else "0"
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    from hypernst_cli.io import load_image, save_image
    from hypernst_cli.pipeline.core import condition, encode
    from hypernst_cli.pipeline.models import INFERENCE_PARTS, init_networks, save_networks
    from hypernst_cli.configs import get_config
    from hypernst_cli.models.hypernet import refine
    from hypernst_cli.io.tensors import to_tensor, to_uint8
    from hypernst_cli.pipeline.stylize import ContentFace, HyperNSTPipeline

    data = shared_data_dir()
    photos = sorted((data / "photos").glob("*.jpg"))
    styles = sorted((data / "styles").glob("*.*"))
    if not photos or not styles:
        sys.exit(f"no shared photos/styles under {data}: set HYPERNST_SHARED_DATA")
    device = torch.device(args.device)
    cuda = device.type == "cuda"

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize(device)

    rows: list[tuple[str, str]] = []

    def row(label: str, value: str) -> None:
        rows.append((label, value))
        print(f"{label}: {value}", flush=True)

    tmp = Path(tempfile.mkdtemp(prefix="hypernst-bench-"))
    cfg = get_config(args.config)
    save_networks(tmp / "model", cfg, init_networks(cfg, INFERENCE_PARTS, seed=0))

    t0 = time.perf_counter()
    pipe = HyperNSTPipeline.load(weights=str(tmp / "model"), config=args.config,
                                 device=args.device, backend=args.backend, cache=False)
    sync()
    row("one-time model loading (networks + face models)", f"{time.perf_counter() - t0:.2f} s")
    # warm-up: the first detection/parse/forward pays lazy initialisation
    t0 = time.perf_counter()
    warm = pipe.prepare_image(load_image(photos[0]), photos[0])
    pipe.generate(warm, pipe.provider.for_file(styles[0]).table)
    sync()
    row("first image (lazy initialisation + warm-up)", f"{time.perf_counter() - t0:.2f} s")

    stage: dict[str, list[float]] = {}
    e2e_cold: list[float] = []
    e2e_cached: list[float] = []
    out_dir = tmp / "out"
    out_dir.mkdir()
    m = pipe.models
    for run in range(args.runs):
        for p_i, photo_path in enumerate(photos):
            style = styles[(run * len(photos) + p_i + 1) % len(styles)]
            for cached in (False, True):
                if not cached:
                    pipe.provider._memory.clear()  # cold style codes (no disk cache either)
                times: dict[str, float] = {}
                t_start = time.perf_counter()
                t = time.perf_counter()
                photo = load_image(photo_path)
                times["load photo"] = time.perf_counter() - t
                t = time.perf_counter()
                aligned = pipe.faces.align_largest(photo, pipe.resolution, source=photo_path)
                times["detect + align"] = time.perf_counter() - t
                t = time.perf_counter()
                mask = pipe.faces.parse(aligned)
                times["parse"] = time.perf_counter() - t
                image = to_tensor(aligned.image)[0]
                t = time.perf_counter()
                with torch.inference_mode():  # as the pipeline: W+, and F with the spatial path
                    latent = encode(m.encoder, m.generator, image[None].to(device))
                wplus = latent.wplus[0].cpu()
                features = None if latent.features is None else latent.features[0].cpu()
                sync()
                times["e4e"] = time.perf_counter() - t
                t = time.perf_counter()
                own = pipe.provider.for_image(aligned.image, mask=mask)
                times["content codes"] = time.perf_counter() - t
                t = time.perf_counter()
                codes = pipe.style_codes(style)
                times["style codes (cached)" if cached else "style codes (cold)"] = \
                    time.perf_counter() - t
                face = ContentFace(source=photo_path, index=0, aligned=aligned, image=image,
                                   mask=torch.from_numpy(mask.astype(np.int64)), wplus=wplus,
                                   own_codes=own, photo=photo, features=features)
                t = time.perf_counter()
                result = pipe.generate([face], codes.table)
                sync()
                times[f"stylize: initial G + {pipe.iterations} x (hyper-network + generator)"] = \
                    time.perf_counter() - t
                out = to_uint8(result.images)[0]
                t = time.perf_counter()
                pasted = pipe.faces.paste_back(photo, out, aligned)
                times["paste-back"] = time.perf_counter() - t
                t = time.perf_counter()
                save_image(pasted, out_dir / f"{run}-{p_i}-{int(cached)}.png")
                times["write (PNG, full photo)"] = time.perf_counter() - t
                total = time.perf_counter() - t_start
                (e2e_cached if cached else e2e_cold).append(total)
                for k, v in times.items():
                    stage.setdefault(k, []).append(v)

    for k, v in stage.items():
        row(f"stage: {k}", f"{_median(v) * 1000:.1f} ms (median of {len(v)})")

    # the networks on their own, batch 1 (per call)
    face = warm[0]
    with torch.inference_mode():
        dev_img = face.image[None].to(device)
        w = face.wplus[None].to(device)
        f = None if face.features is None else face.features[None].to(device)  # spatial path's F
        # the code map M(s) and A(s) of the face's own code table, as stylize_tensors makes them
        code_map, global_code = condition(face.own_codes.table[None].to(device),
                                          face.mask[None].to(device))
        gen = pipe.generator_for_inference()
        hyp = pipe.hypernet_for_inference()

        def timed(fn, n: int = 5) -> float:
            fn()
            sync()
            s = []
            for _ in range(n):
                t = time.perf_counter()
                fn()
                sync()
                s.append(time.perf_counter() - t)
            return _median(s)

        with pipe.autocast():
            prev = gen(w, features=f)
            offsets = hyp(dev_img, prev, code_map, global_code=global_code)
            row("network: generator G(w+), batch 1", f"{timed(lambda: gen(w, features=f)) * 1000:.1f} ms")
            row("network: generator with offsets, batch 1",
                f"{timed(lambda: gen(w, features=f, offsets=offsets)) * 1000:.1f} ms")
            row("network: hyper-network (incl. E_mask), batch 1",
                f"{timed(lambda: hyp(dev_img, prev, code_map, global_code=global_code)) * 1000:.1f} ms")
            # one pass of the refinement loop from the given G(w+): E_mask + H + G
            row("network: one refinement step (H + G), batch 1",
                f"{timed(lambda: refine(gen, hyp, w, dev_img, code_map, 1, initial=prev, global_code=global_code, features=f)) * 1000:.1f} ms")
            row("network: e4e, batch 1",
                f"{timed(lambda: encode(m.encoder, m.generator, dev_img)) * 1000:.1f} ms")

    # batch scaling with one style
    codes = pipe.provider.for_file(styles[0]).table
    base = warm[0]
    for b in [int(x) for x in args.batches.split(",")]:
        if cuda:
            torch.cuda.reset_peak_memory_stats(device)
        # b distinct contents (fresh copies: none has its G(w+) memoised yet)
        sec = timed(lambda: pipe.generate([dataclasses.replace(base, initial=None)
                                           for _ in range(b)], codes), n=max(1, args.runs))
        extra = ""
        if cuda:
            extra = f", peak VRAM {torch.cuda.max_memory_allocated(device) / 2**20:.0f} MiB"
        row(f"batch {b}, one style: stylize (initial G + {pipe.iterations} iterations)",
            f"{sec:.3f} s, {sec / b * 1000:.1f} ms per image{extra}")

    row("end to end, cold style codes (median)", f"{_median(e2e_cold):.3f} s (max {max(e2e_cold):.3f})")
    row("end to end, cached style codes (median)",
        f"{_median(e2e_cached):.3f} s (max {max(e2e_cached):.3f})")
    row("peak RSS", f"{_peak_rss_mib():.0f} MiB")
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    title = (f"Pipeline speed: {args.config}, {args.device}, {args.precision}"
             f"{', compiled' if args.compile else ''}, {args.threads} threads"
             f"{', ' + args.label if args.label else ''}")
    notes = (f"Random weights (speed does not depend on the values; outputs are not meaningful). "
             f"Photos: {', '.join(p.name for p in photos)} (up to 1024 px), {args.runs} runs each; "
             "end to end = load photo, detect + align, parse, e4e, content codes, style codes, "
             f"initial G + {pipe.iterations} refinement iterations, paste-back, write; one-time "
             f"loading excluded. Backend {args.backend}. Load average at the end: {load} "
             "(a shared machine inflates CPU times).")
    print(notes)
    if not args.no_record:
        append_results(title, rows, notes)
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
