"""Marginal cost of one more 1024-px photo in a `hypernst stylize --paste-back` batch, one style.

Runs the real CLI (the embedded model unless --weights) as a user's shell script would, in a
fresh process each time: once on one photo and once on N photos, same style, style-code cache
warm. (wall(N) - wall(1)) / (N - 1) is what each extra photo costs once the process has started
and loaded the model; the median of the per-photo `total` of `--json` (photos 2..N) says the same
from the inside. The photos are ../shared/data/photos (or HYPERNST_SHARED_DATA) resized so their
long side is 1024 px, and their mirror images, cycled up to N.

Run: python benchmarks/batch_speed.py [--weights MODEL] [--photos 12] [--threads 2] [--no-record]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image, ImageOps

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _results import append_results, shared_data_dir  # noqa: E402

STYLE = HERE.parent / "examples" / "styles" / "poster-portrait.png"


def _photos(count: int, folder: Path) -> list[Path]:
    data = shared_data_dir()
    sources = sorted((data / "photos").glob("*.jpg"))
    if not sources:
        sys.exit(f"no photos under {data / 'photos'}: set HYPERNST_SHARED_DATA")
    images = []
    for path in sources:
        im = Image.open(path).convert("RGB")
        scale = 1024 / max(im.size)
        im = im.resize((round(im.width * scale), round(im.height * scale)), Image.Resampling.LANCZOS)
        images += [im, ImageOps.mirror(im)]
    out = []
    for i in range(count):
        path = folder / f"photo-{i:02d}.jpg"
        images[i % len(images)].save(path, quality=95)
        out.append(path)
    return out


def _run(cmd: list[str], env: dict[str, str]) -> tuple[float, list[dict]]:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"hypernst failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    return wall, [x for x in lines if "timings" in x]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--weights", default=None)
    ap.add_argument("--photos", type=int, default=12)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-record", action="store_true")
    args = ap.parse_args()
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    with tempfile.TemporaryDirectory() as tmp:
        one, many = Path(tmp, "one"), Path(tmp, "many")
        one.mkdir()
        many.mkdir()
        photos = _photos(args.photos, many)
        (one / photos[0].name).write_bytes(photos[0].read_bytes())

        def cmd(folder: Path, out: str) -> list[str]:
            c = [sys.executable, "-m", "hypernst_cli", "--threads", str(args.threads), "-q",
                 "stylize", str(folder), str(STYLE), "-o", str(Path(tmp, out)), "--paste-back",
                 "--json", "--overwrite"]
            return c + (["--weights", args.weights] if args.weights else [])

        _run(cmd(one, "warm"), env)  # fills the style-code cache and the OS file cache
        wall_one, _ = _run(cmd(one, "out-one"), env)
        wall_many, rows = _run(cmd(many, "out-many"), env)
    totals = [r["timings"]["total"] for r in rows[1:]]
    marginal = (wall_many - wall_one) / (args.photos - 1)
    results = [
        ("photos (1024 px long side) / style", f"{args.photos} / {STYLE.name} (codes cached)"),
        ("one photo, whole process (start, load, run, write)", f"{wall_one:.2f} s"),
        (f"{args.photos} photos, whole process", f"{wall_many:.2f} s"),
        ("marginal cost per photo: (wall(N) - wall(1)) / (N - 1)", f"{marginal:.2f} s"),
        ("per-photo `total` of --json, photos 2..N: median (min-max)",
         f"{statistics.median(totals):.2f} s ({min(totals):.2f}-{max(totals):.2f})"),
    ]
    for k, v in results:
        print(f"{k}: {v}")
    if not args.no_record:
        append_results(
            f"Batch of 1024-px photos with --paste-back, {args.threads} threads", results,
            f"`hypernst stylize PHOTOS {STYLE.name} --paste-back --json`, "
            f"{'--weights ' + args.weights if args.weights else 'the embedded model'}; "
            "target (sharp-renderer issue): <= 1 s per extra photo on 2 CPU cores.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
