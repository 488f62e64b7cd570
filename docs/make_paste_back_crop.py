"""Render docs/images/paste-back-crop.png (run by hand from the repo root):

    python docs/make_paste_back_crop.py [--weights MODEL] [--style examples/styles/watercolour.png]

scikit-image's astronaut portrait (a public-domain NASA photo) upscaled to 1024 px, stylized with
`hypernst stylize --paste-back` (the embedded model unless --weights), and a 400 px crop around the
head at 100 % zoom beside the same crop of the photo: where the stylized head meets the photo.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
BOX = (250, 20, 650, 420)  # left, top, right, bottom in the 1024 px photo: the head and around it


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--weights", default=None)
    parser.add_argument("--style", type=Path, default=ROOT / "examples" / "styles" / "watercolour.png")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images" / "paste-back-crop.png")
    args = parser.parse_args()
    import skimage.data

    with tempfile.TemporaryDirectory() as tmp:
        photo = Path(tmp) / "astronaut-1024.png"
        Image.fromarray(skimage.data.astronaut()).resize((1024, 1024), Image.Resampling.LANCZOS).save(photo)
        result = Path(tmp) / "pasted.png"
        cmd = [sys.executable, "-m", "hypernst_cli", "stylize", str(photo), str(args.style),
               "-o", str(result), "--paste-back", "--overwrite"]
        if args.weights:
            cmd += ["-w", args.weights]
        subprocess.run(cmd, check=True, cwd=ROOT)
        crops = [np.asarray(Image.open(p).convert("RGB").crop(BOX)) for p in (photo, result)]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate(crops, axis=1)).save(args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
