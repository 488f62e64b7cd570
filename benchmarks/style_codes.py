"""Style codes of one style image: uncached (parse + ALADIN on the whole image and every kept
patch) vs cached (the disk cache of a fresh provider, and the in-memory cache of the same one).

Run: python benchmarks/style_codes.py [--style PATH] [--configs compact paper]
Random ALADIN weights (the time does not depend on the values).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import append_results  # noqa: E402

DEFAULT_STYLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "styles" / "aahq_100000.png"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--style", type=Path, default=DEFAULT_STYLE)
    parser.add_argument("--configs", nargs="+", default=["compact", "paper"])
    args = parser.parse_args()

    import torch

    from hypernst_cli.configs import get_config
    from hypernst_cli.device import configure_cpu_threads
    from hypernst_cli.pipeline.models import init_networks
    from hypernst_cli.io import load_image
    from hypernst_cli.pipeline.code_cache import StyleCodeProvider, style_code_provider
    from hypernst_cli.pipeline.session import face_processor

    configure_cpu_threads()
    faces = face_processor("dlib")
    faces.parse_image(load_image(args.style))  # load dlib's models before timing
    rows = []
    for name in args.configs:
        cfg = get_config(name)
        aladin = init_networks(cfg, ["aladin"])["aladin"].eval()
        with tempfile.TemporaryDirectory() as cache:

            def provider() -> StyleCodeProvider:
                return style_code_provider(aladin, cfg, faces, cache_dir=Path(cache),
                                           device="cpu", aladin_id=f"bench-{name}")

            first = provider()
            t0 = time.perf_counter()
            codes = first.for_file(args.style)
            cold = time.perf_counter() - t0
            t0 = time.perf_counter()
            first.for_file(args.style)
            memory = time.perf_counter() - t0
            second = provider()
            t0 = time.perf_counter()
            second.for_file(args.style)
            disk = time.perf_counter() - t0
        n_crops = 1 + sum(len(p) for p in codes.patches)
        rows.append((f"{name}: uncached ({n_crops} crops through ALADIN {cfg.aladin.image_size} px)",
                     f"{cold:.3f} s"))
        rows.append((f"{name}: cached on disk (new process)", f"{disk * 1000:.1f} ms"))
        rows.append((f"{name}: cached in memory (same run)", f"{memory * 1000:.2f} ms"))
        print(*rows[-3:], sep="\n")
    append_results("Style codes of one style image", rows,
                   f"Style: {args.style.name}. Uncached includes parsing the style image (dlib, "
                   "GrabCut; models already loaded). Random ALADIN weights; CPU threads: "
                   f"{torch.get_num_threads()}.")


if __name__ == "__main__":
    main()
