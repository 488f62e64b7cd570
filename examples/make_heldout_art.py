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
import sys
from pathlib import Path

from make_showcase import stylized_sheet  # the same sheet, other styles

from hypernst_cli.io.images import save_image

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
    labels = [s.stem.replace("dsg_", "")[:24] for s in styles]
    sheet = stylized_sheet(args.faces, styles, weights=args.weights, labels=labels,
                           style_row=args.with_styles, cell=args.cell)
    print(f"wrote {save_image(sheet, args.out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
