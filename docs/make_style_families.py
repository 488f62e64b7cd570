"""Render the style-family pictures of docs/style-families.md (run by hand from the repo root):

    python docs/make_style_families.py [--size 160] [--out docs/images/style-families]

One contact sheet per family: the astronaut portrait of scikit-image (a public-domain NASA photo),
its face cropped, before and after three draws of the family (seeds 1, 2, 3).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

# the checkout's own package, not an installed one
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hypernst_cli.io.contact_sheet import contact_sheet  # noqa: E402
from hypernst_cli.io.images import save_image  # noqa: E402
from hypernst_cli.io.tensors import to_tensor, to_uint8  # noqa: E402
from hypernst_cli.styles.families import FAMILIES, HELDOUT_FAMILIES, draw_style  # noqa: E402

SEEDS = (1, 2, 3)


def astronaut_face(size: int) -> torch.Tensor:
    """The face of skimage.data.astronaut(), square, resized to ``size``: [1, 3, size, size]."""
    from skimage import data

    photo = to_tensor(data.astronaut(), unit=True)[0]
    crop = photo[:, 0:300, 110:410]  # head and shoulders, with some background
    return F.interpolate(crop[None], size=(size, size), mode="bilinear", antialias=True,
                         align_corners=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=160)
    parser.add_argument("--out", default="docs/images/style-families")
    parser.add_argument("--families", nargs="*", default=list(FAMILIES))
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    face = astronaut_face(args.size)
    for name in args.families:
        start = time.perf_counter()
        tiles = [to_uint8(draw_style(name, seed).render(face), unit=True)[0] for seed in SEEDS]
        took = (time.perf_counter() - start) / len(SEEDS)
        sheet = contact_sheet([[to_uint8(face, unit=True)[0], *tiles]], cell=args.size, pad=4,
                              col_labels=["photo", *(f"{name} seed {s}" for s in SEEDS)])
        save_image(sheet, out / f"{name}.png")
        held = " (held out)" if name in HELDOUT_FAMILIES else ""
        print(f"{name}{held}: {took * 1000:.0f} ms per {args.size} px image")


if __name__ == "__main__":
    main()
