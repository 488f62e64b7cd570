"""Draw the example portrait exemplars: an example face rendered in procedural art media.

Run: python examples/make_exemplars.py [--out examples/exemplars] [--face 2] [--size 256]

Each exemplar is one fixed draw of a style family (hypernst_cli/styles/families.py) applied to
``examples/content/face-N.png`` (a face drawn by the project's own generator): a portrait style
with a face in it, so hypernst reads a style code per region as it does for real art. ``pencil``
is a family the training recipe draws from (this draw's seed is one training never sees);
``engraving`` and ``pastel`` are held-out families, never seen in training at all.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
# the checkout's own package, not an installed one
sys.path.insert(0, str(HERE.parent))

from hypernst_cli.io.images import load_image, save_image  # noqa: E402
from hypernst_cli.io.tensors import to_tensor, to_uint8  # noqa: E402
from hypernst_cli.styles.families import EVAL_SEED_BASE, HELDOUT_FAMILIES, draw_style  # noqa: E402

#: (file stem, family, draw seed): seeds at EVAL_SEED_BASE and above are never drawn in training
EXEMPLARS = (
    ("pencil-drawing", "pencil", EVAL_SEED_BASE + 15),
    ("engraving-heldout", "engraving", EVAL_SEED_BASE + 12),
    ("pastel-heldout", "pastel", EVAL_SEED_BASE + 13),
)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=HERE / "exemplars")
    ap.add_argument("--face", type=int, default=2, help="which examples/content/face-N.png")
    ap.add_argument("--size", type=int, default=256)
    args = ap.parse_args(argv)

    face = load_image(HERE / "content" / f"face-{args.face}.png")
    x = torch.nn.functional.interpolate(to_tensor(face, unit=True), size=(args.size, args.size),
                                        mode="area")
    args.out.mkdir(parents=True, exist_ok=True)
    for stem, family, seed in EXEMPLARS:
        assert (family in HELDOUT_FAMILIES) == stem.endswith("-heldout"), stem
        image = to_uint8(draw_style(family, seed).render(x), unit=True)[0]
        print(f"wrote {save_image(image, args.out / f'{stem}.png')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
