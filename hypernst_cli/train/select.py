"""Pick a recipe's training inputs from a data folder: hold-outs out, UTKFace subsampled.

``python -m hypernst_cli.train.select DATA_ROOT OUT --holdout FILE [--utkface N] [--seed S]``
writes OUT/content and OUT/style as folders of symbolic links (nothing is copied) that
``hypernst prepare OUT/content OUT/style`` then reads:

- content: DATA_ROOT/faces + DATA_ROOT/photos + N UTKFace images drawn with ``seed`` from the
  sorted DATA_ROOT/utkface listing (N = 0: none; N < 0: all);
- style: DATA_ROOT/styles;
- minus every file listed in the hold-out file (paths relative to DATA_ROOT, one a line, ``#``
  comments). A hold-out entry that does not exist is an error: a typo must not leak a test image
  into training.

OUT/selection.json records what was chosen. Running it again rebuilds the same links.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path
from typing import Any

from hypernst_cli.errors import UsageError

CONTENT_DIRS = ("faces", "photos")
STYLE_DIRS = ("styles",)


def read_holdout(path: Path) -> list[str]:
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as exc:
        raise UsageError(f"{path}: cannot read the hold-out list ({exc.strerror})") from None
    return [s for line in lines if (s := line.split("#", 1)[0].strip())]


def _images(folder: Path) -> list[Path]:
    from hypernst_cli.io.inputs import is_image_path

    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and is_image_path(p))


def select_inputs(root: Path, out: Path, holdout: list[str], utkface: int = 0,
                  seed: int = 0) -> dict[str, Any]:
    """Link the chosen inputs under OUT/content and OUT/style; returns the selection record."""
    root, out = Path(root).resolve(), Path(out)
    missing = [h for h in holdout if not (root / h).is_file()]
    if missing:
        raise UsageError(f"hold-out entries not found under {root}: {', '.join(missing)}",
                         hint="list files relative to the data folder, e.g. faces/ffhq_000000.png")
    held = {(root / h).resolve() for h in holdout}
    content = [p for d in CONTENT_DIRS for p in _images(root / d)]
    utk = _images(root / "utkface")
    if utkface != 0 and utk:
        utk = utk if utkface < 0 or utkface >= len(utk) else \
            sorted(random.Random(seed).sample(utk, utkface))
        content += utk
    style = [p for d in STYLE_DIRS for p in _images(root / d)]
    chosen = {"content": [p for p in content if p.resolve() not in held],
              "style": [p for p in style if p.resolve() not in held]}
    for split, paths in chosen.items():
        if not paths:
            raise UsageError(f"{root}: no {split} images left after the hold-outs")
        folder = out / split
        folder.mkdir(parents=True, exist_ok=True)
        wanted = {p.name for p in paths}
        for old in folder.iterdir():  # a re-run with other settings: drop stale links
            if old.is_symlink() and old.name not in wanted:
                old.unlink()
        for p in paths:
            link = folder / p.name
            if link.is_symlink() or link.exists():
                if link.resolve() == p.resolve():
                    continue
                raise UsageError(f"{link} exists and is not a link to {p}",
                                 hint="choose an empty OUT folder")
            link.symlink_to(p.resolve())
    record = {"root": str(root), "seed": seed, "utkface": utkface, "holdout": sorted(holdout),
              "counts": {k: len(v) for k, v in chosen.items()},
              "content": [str(p.relative_to(root)) for p in chosen["content"]],
              "style": [str(p.relative_to(root)) for p in chosen["style"]]}
    from hypernst_cli.io import atomic_write_text

    atomic_write_text(out / "selection.json", json.dumps(record, indent=1) + "\n")
    return record


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m hypernst_cli.train.select", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("root", type=Path, help="data folder (faces/, photos/, styles/, utkface/)")
    ap.add_argument("out", type=Path, help="where content/ and style/ link folders go")
    ap.add_argument("--holdout", type=Path, required=True, help="hold-out list file")
    ap.add_argument("--utkface", type=int, default=0, help="UTKFace images to draw (-1: all)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the UTKFace draw")
    args = ap.parse_args(argv)
    try:
        record = select_inputs(args.root, args.out, read_holdout(args.holdout), args.utkface,
                               args.seed)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    c = record["counts"]
    print(f"{args.out}: {c['content']} content, {c['style']} style images "
          f"({len(record['holdout'])} held out)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
