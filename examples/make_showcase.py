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
    with tempfile.TemporaryDirectory() as tmp:
        from skimage import data as skdata

        faces = Path(tmp, "faces")
        save_image(skdata.astronaut(), faces / "astronaut.png")
        for face in collect_images([args.content]):
            save_image(load_image(face), faces / f"{face.stem}.png")
        contents = collect_images([faces])
        cmd = [sys.executable, "-m", "hypernst_cli", "-q", "stylize", str(faces),
               "--style", str(args.styles), "--style", str(args.exemplars), "-o", tmp, "--overwrite"]
        cmd += ["--weights", args.weights] if args.weights else []
        subprocess.run(cmd, check=True)
        strength0 = [sys.executable, "-m", "hypernst_cli", "-q", "stylize", str(faces),
                     "--style", str(styles[0]), "--strength", "0", "-o", f"{tmp}/own",
                     "--overwrite"] + (["--weights", args.weights] if args.weights else [])
        subprocess.run(strength0, check=True)
        rows: list[list[np.ndarray | None]] = [[None] + [load_image(s) for s in styles]]
        for c in contents:
            own = load_image(Path(tmp, "own", f"{c.stem}__{styles[0].stem}.png"))
            rows.append([own] + [load_image(Path(tmp, f"{c.stem}__{s.stem}.png")) for s in styles])
    labels = ["reconstruction"] + [s.stem for s in styles]
    sheet = contact_sheet(rows, cell=args.cell, col_labels=labels)
    print(f"wrote {save_image(sheet, args.out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
