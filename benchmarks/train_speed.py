"""Training speed and peak GPU memory of the hyper-network stages (and the generator stage).

Builds a synthetic prepared folder (random images, a three-region mask per image; no face
detection needed) and a random-weight model folder of the chosen config, then times ``--steps``
training steps (after ``--warmup``) of each stage for each setting: AMP (none / bf16 / fp16),
gradient checkpointing off / on, batch sizes. On CUDA it records the peak memory allocated per
setting (torch.cuda.max_memory_allocated, reset before each). Results go to RESULTS.md.

The paper needed 22 GB at batch 1 for its stylization stage: run this on a GPU with
``--config paper`` to see what this implementation needs.

Run: python benchmarks/train_speed.py [--config compact] [--device cuda] [--stages reconstruct,stylize]
     [--amp none,bf16] [--checkpointing off,on] [--batch 1,4] [--steps 5] [--warmup 2]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _results import append_results  # noqa: E402


def synthetic_data(root: Path, size: int, n: int = 8) -> Path:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for split in ("content", "style"):
        folder = root / split
        folder.mkdir(parents=True)
        yy, xx = np.mgrid[:size, :size]
        for i in range(n):
            img = (rng.random((size, size, 3)) * 255).astype(np.uint8)
            mask = np.zeros((size, size), np.uint8)
            mask[(yy - size * 0.55) ** 2 + (xx - size / 2) ** 2 < (size * 0.3) ** 2] = 1
            mask[(yy < size * 0.3) & (np.abs(xx - size / 2) < size * 0.35)] = 2
            Image.fromarray(mask, mode="L").save(folder / f"img{i}.mask.png")
            Image.fromarray(img).save(folder / f"img{i}.png")
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", default="compact")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--stages", default="reconstruct,stylize")
    parser.add_argument("--amp", default="none,bf16")
    parser.add_argument("--checkpointing", default="off,on")
    parser.add_argument("--batch", default="1,4")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-save", action="store_true", help="Print only; do not append to RESULTS.md.")
    args = parser.parse_args()

    import torch

    from hypernst_cli.configs import get_config
    from hypernst_cli.pipeline.models import INFERENCE_PARTS, init_networks, save_networks
    from hypernst_cli.train.config import load_train_config
    from hypernst_cli.train.run import build_stage
    from hypernst_cli.train.trainer import make_context

    torch.set_num_threads(args.threads)
    cfg = get_config(args.config)
    rows: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        data = synthetic_data(root / "data", cfg.resolution)
        init = root / "model"
        save_networks(init, cfg, init_networks(cfg, INFERENCE_PARTS, seed=0))
        for stage in args.stages.split(","):
            for amp in args.amp.split(","):
                for ckpt in args.checkpointing.split(","):
                    for batch in (int(b) for b in args.batch.split(",")):
                        overrides = [f"init={init}", f"data={data}", f"batch_size={batch}",
                                     f"amp={amp}", f"grad_checkpointing={str(ckpt == 'on').lower()}",
                                     f"device={args.device}"]
                        if stage == "generator":
                            overrides = [o for o in overrides if not o.startswith("init=")]
                            overrides.append(f"model={args.config}")
                        train_cfg = load_train_config(stage, overrides=overrides)
                        ctx = make_context(train_cfg)
                        label = f"{stage} amp={amp} ckpt={ckpt} batch={batch}"
                        try:
                            st = build_stage(train_cfg, ctx)
                            cuda = ctx.device.type == "cuda"
                            for step in range(args.warmup):
                                st.train_step(step)
                            if cuda:
                                torch.cuda.synchronize()
                                torch.cuda.reset_peak_memory_stats()
                            t0 = time.perf_counter()
                            for step in range(args.warmup, args.warmup + args.steps):
                                st.train_step(step)
                            if cuda:
                                torch.cuda.synchronize()
                            per_step = (time.perf_counter() - t0) / args.steps
                            peak = (f", peak {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB"
                                    if cuda else "")
                            value = f"{per_step:.3f} s/step{peak}"
                        except torch.OutOfMemoryError:
                            value = "out of memory"
                        finally:
                            st = None  # noqa: F841
                            if torch.cuda.is_available():
                                torch.cuda.empty_cache()
                        print(f"{label}: {value}", flush=True)
                        rows.append((label, value))
    if not args.no_save:
        append_results(f"Training speed ({args.config}, {args.device})", rows,
                       notes=f"{args.steps} timed steps after {args.warmup} warm-up; synthetic data.")


if __name__ == "__main__":
    main()
