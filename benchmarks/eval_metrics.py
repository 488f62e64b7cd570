"""Cost of each evaluation metric per content x style pair, at the images' own size (256 px).

LPIPS and SIFID run on random backbones of the real architectures (the real weights cannot be
downloaded here): the cost is the same, the values are meaningless and not reported.

Run: python benchmarks/eval_metrics.py [--data ../shared/data] [--device cpu] [--repeats 5]
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
    parser = argparse.ArgumentParser(description=__doc__)
    root = Path(__file__).resolve().parent.parent
    parser.add_argument("--data", type=Path, default=root.parent / "shared" / "data")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    from hypernst_cli.device import describe_device, resolve_device
    from hypernst_cli.eval import (
        ColourMetric,
        FaceDetectionMetric,
        IdentityMetric,
        LPIPSMetric,
        SIFIDMetric,
        colour_transfer,
    )
    from hypernst_cli.io import load_image

    device = resolve_device(args.device)
    content = load_image(sorted((args.data / "faces").glob("*.png"))[0])
    style = load_image(sorted((args.data / "styles").glob("*.png"))[0])
    output = colour_transfer(content, style)
    metrics = [
        (LPIPSMetric("alex", weights="random"), content),
        (LPIPSMetric("vgg", weights="random"), content),
        (SIFIDMetric(weights="random"), style),
        (IdentityMetric(), content),
        (ColourMetric(), style),
        (FaceDetectionMetric(), None),
    ]
    rows = []
    fresh = 0
    for metric, reference in metrics:
        metric.to(device)
        metric.prepare()
        ref = output if reference is None else reference
        samples = []
        for _ in range(args.repeats + 1):
            # a fresh output each time (across metrics too) so no per-image cache hides the cost
            fresh += 1
            out = output.copy()
            out[fresh // 256, fresh % 256, 0] ^= 1
            t0 = time.perf_counter()
            metric(ref, out)
            samples.append(time.perf_counter() - t0)
        median = statistics.median(samples[1:])  # the first call is a warm-up
        label = f"{metric.title} per pair ({content.shape[1]} px)"
        rows.append((label, f"{median * 1000:.1f} ms"))
        print(f"{label}: {median * 1000:.1f} ms")
    rows.append(("device", describe_device(device)))
    if hasattr(os, "getloadavg"):
        rows.append(("load average at the end (1 min)", f"{os.getloadavg()[0]:.1f}"))
    append_results(
        "Evaluation metrics",
        rows,
        "Median of the timed calls after one warm-up; the reference's features are cached "
        "(a style or content is compared with many outputs), the output's are not. LPIPS/SIFID "
        "on random backbones of the real architectures. Identity and face detection share one dlib "
        "analysis per output in a real run (the second metric to ask gets the cached result).",
    )


if __name__ == "__main__":
    main()
