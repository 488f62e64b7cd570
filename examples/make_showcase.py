"""The README's showcase: a real photo and the example faces in every example style.

Run: python examples/make_showcase.py [--weights MODEL] [--out examples/showcase.png]

It runs `hypernst stylize` on scikit-image's public-domain astronaut photo (a real photo) and
examples/content with `--style examples/styles --style examples/exemplars` (the embedded compact
model unless --weights is given) into a temporary folder and lays the results out as a contact
sheet: one row per face (its `--strength 0` reconstruction first), one
column per style (the style image on top): the procedural textures, then the portrait exemplars
(`examples/make_exemplars.py`: one face in a training family's and two held-out families' media).
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


def stylized_sheet(faces: list[Path], styles: list[Path], *, weights: str | None,
                   labels: list[str], style_row: bool, cell: int) -> np.ndarray:
    """scikit-image's astronaut photo and ``faces`` (one row each), stylized with every style
    (one column each) by `hypernst stylize`, each row's `--strength 0` reconstruction first; the
    style images themselves as a top row when ``style_row``. ``labels`` name the style columns."""
    from skimage import data as skdata

    model = ["--weights", weights] if weights else []
    with tempfile.TemporaryDirectory() as tmp:
        face_dir, style_dir = Path(tmp, "faces"), Path(tmp, "styles")
        save_image(skdata.astronaut(), face_dir / "astronaut.png")
        for face in faces:
            save_image(load_image(face), face_dir / f"{face.stem}.png")
        style_dir.mkdir()
        for style in styles:  # one folder: one stylize call runs every face x style
            (style_dir / style.name).symlink_to(style.resolve())
        run = [sys.executable, "-m", "hypernst_cli", "-q", "stylize", str(face_dir), "--overwrite"]
        subprocess.run(run + ["--style", str(style_dir), "-o", f"{tmp}/out"] + model, check=True)
        subprocess.run(run + ["--style", str(styles[0]), "--strength", "0", "-o", f"{tmp}/own"]
                       + model, check=True)
        rows: list[list[np.ndarray | None]] = []
        if style_row:
            rows.append([None] + [load_image(s) for s in styles])
        for c in collect_images([face_dir]):
            own = load_image(Path(tmp, "own", f"{c.stem}__{styles[0].stem}.png"))
            rows.append([own] + [load_image(Path(tmp, "out", f"{c.stem}__{s.stem}.png"))
                                 for s in styles])
    return contact_sheet(rows, cell=cell, col_labels=["reconstruction", *labels])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--weights", default=None, help="model folder (default: the embedded compact model)")
    ap.add_argument("--content", type=Path, default=HERE / "content")
    ap.add_argument("--styles", type=Path, default=HERE / "styles")
    ap.add_argument("--exemplars", type=Path, default=HERE / "exemplars")
    ap.add_argument("--out", type=Path, default=HERE / "showcase.png")
    ap.add_argument("--cell", type=int, default=128)
    args = ap.parse_args(argv)

    styles = collect_images([args.styles, args.exemplars])
    sheet = stylized_sheet(collect_images([args.content]), styles, weights=args.weights,
                           labels=[s.stem for s in styles], style_row=True, cell=args.cell)
    print(f"wrote {save_image(sheet, args.out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
