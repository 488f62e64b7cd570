"""Write a real portrait photo to try hypernst on: scikit-image's astronaut (Eileen Collins, NASA).

Run: python examples/make_photo.py [--out examples/photos/astronaut.png]
(needs scikit-image: `pip install -e '.[examples]'`)

The photo is in the public domain and ships inside scikit-image, so it is written here at run
time rather than kept in the repository (examples/photos/ is ignored by git). It is a whole
photo, not an aligned face: `hypernst stylize` finds, aligns and crops the face itself. The
example faces in examples/content are drawn by the project's own small generator and are soft;
a photo shows what the model does with real skin, hair and edges.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).parent
DEFAULT_OUT = HERE / "photos" / "astronaut.png"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where to write the photo (PNG)")
    args = ap.parse_args(argv)
    try:
        from skimage import data as skdata
    except ImportError:
        print("error: this needs scikit-image: run `pip install -e '.[examples]'` "
              "(or `pip install scikit-image`)", file=sys.stderr)
        return 1
    from hypernst_cli.io.images import save_image

    print(f"wrote {save_image(skdata.astronaut(), args.out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
