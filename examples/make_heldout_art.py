"""The README's held-out art sheet: real art portraits the model never saw, on faces it never saw.

Run: python examples/make_heldout_art.py DATA [--weights MODEL] [--out docs/images/heldout-art.png]
     [--with-styles]

DATA is the project's data folder (its ``styles/``); the styles are the six held out of training
(``recipes/compact/holdout.txt``). The face is a real photo never seen in training either: the
public-domain astronaut portrait of scikit-image (aligned by ``hypernst stylize``); ``--faces``
adds others. The row starts with its ``--strength 0`` reconstruction, then one column per style.

The art portraits are not ours to publish, so the committed sheet shows only what the model drew
(the column names say which style); ``--with-styles`` adds the exemplars as a top row, for a
sheet to look at locally.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from hypernst_cli.io.contact_sheet import contact_sheet
from hypernst_cli.io.images import load_image, save_image
from hypernst_cli.io.inputs import collect_images

HERE = Path(__file__).parent
HOLDOUT = HERE.parent / "recipes" / "compact" / "holdout.txt"


def heldout_styles(data: Path) -> list[Path]:
    """The held-out style files of holdout.txt, in its order."""
    lines = [ln.strip() for ln in HOLDOUT.read_text().splitlines()]
    return [data / ln for ln in lines if ln.startswith("styles/")]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("data", type=Path, help="the data folder (with styles/)")
    ap.add_argument("--weights", default=None, help="model folder (default: the embedded compact model)")
    ap.add_argument("--out", type=Path, default=HERE.parent / "docs" / "images" / "heldout-art.png")
    ap.add_argument("--with-styles", action="store_true",
                    help="add the exemplars as a top row (not for publishing)")
    ap.add_argument("--faces", type=Path, nargs="*", default=[], help="more face photos (rows)")
    ap.add_argument("--cell", type=int, default=160)
    args = ap.parse_args(argv)

    styles = heldout_styles(args.data)
    missing = [s for s in styles if not s.is_file()]
    if missing:
        print(f"error: {missing[0]} not found (give the data folder)", file=sys.stderr)
        return 2
    weights = ["--weights", args.weights] if args.weights else []
    with tempfile.TemporaryDirectory() as tmp:
        from skimage import data as skdata

        faces = Path(tmp, "faces")
        save_image(skdata.astronaut(), faces / "astronaut.png")
        for face in collect_images(args.faces) if args.faces else []:
            save_image(load_image(face), faces / f"{face.stem}.png")
        contents = collect_images([faces])
        style_dir = Path(tmp, "styles")
        for s in styles:  # one folder, so one stylize call runs every face x style
            (style_dir / s.name).parent.mkdir(parents=True, exist_ok=True)
            (style_dir / s.name).symlink_to(s.resolve())
        run = [sys.executable, "-m", "hypernst_cli", "-q", "stylize", str(faces)]
        subprocess.run(run + ["--style", str(style_dir), "-o", f"{tmp}/out", "--overwrite"] + weights,
                       check=True)
        subprocess.run(run + ["--style", str(styles[0]), "--strength", "0", "-o", f"{tmp}/own",
                              "--overwrite"] + weights, check=True)
        rows: list[list[np.ndarray | None]] = []
        if args.with_styles:
            rows.append([None] + [load_image(s) for s in styles])
        for c in contents:
            own = load_image(Path(tmp, "own", f"{c.stem}__{styles[0].stem}.png"))
            rows.append([own] + [load_image(Path(tmp, "out", f"{c.stem}__{s.stem}.png"))
                                 for s in styles])
    labels = ["reconstruction"] + [s.stem.replace("dsg_", "")[:24] for s in styles]
    sheet = contact_sheet(rows, cell=args.cell, col_labels=labels)
    print(f"wrote {save_image(sheet, args.out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
