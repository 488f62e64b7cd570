"""Face pipeline speed: detect + align + segment of a 1024 px photo on the CPU (target <= 1.0 s).

Run: python benchmarks/faces_speed.py [--runs 5] [--size 256] [--photo PATH]
Uses ../shared/data/photos (or $HYPERNST_SHARED_DATA/photos) by default; results are appended to benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import append_results, shared_data_dir  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--photo", type=Path, default=None)
    args = parser.parse_args()

    from hypernst_cli.faces import FaceProcessor
    from hypernst_cli.io import load_image

    data = shared_data_dir()
    photos = [args.photo] if args.photo else sorted((data / "photos").glob("*.jpg"))
    if not photos:
        sys.exit("no photos: pass --photo PATH")
    t0 = time.perf_counter()
    fp = FaceProcessor(backend="dlib")
    fp.align_largest(load_image(photos[0]), args.size)  # loads the models
    load_s = time.perf_counter() - t0

    rows = [("model loading + first image", f"{load_s:.3f} s")]
    totals = []
    for path in photos:
        image = load_image(path)
        align_t, parse_t, total_t = [], [], []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            aligned = fp.align_largest(image, args.size)
            t1 = time.perf_counter()
            fp.parse(aligned)
            t2 = time.perf_counter()
            align_t.append(t1 - t0)
            parse_t.append(t2 - t1)
            total_t.append(t2 - t0)
        med = statistics.median(total_t)
        totals.append(med)
        h, w = image.shape[:2]
        line = (f"detect+align {statistics.median(align_t):.3f} s, segment {statistics.median(parse_t):.3f} s, "
                f"total {med:.3f} s (max {max(total_t):.3f} s)")
        rows.append((f"{path.name} ({w}x{h}) -> {args.size} px, median of {args.runs}", line))
        print(f"{path.name}: {line}")
    rows.append(("worst photo, median total", f"{max(totals):.3f} s"))
    append_results("Faces: detect + align + segment (dlib backend, CPU)", rows,
                   "Target: <= 1.0 s per 1024 px photo. Detection on a copy of at most 640 x 640 px in area, landmarks at "
                   "full resolution, GrabCut on a 128 px copy of the crop.")


if __name__ == "__main__":
    main()
