"""Generate the example content faces with the compact model's own generator (no real person).

Run: python examples/make_content.py --data DATA [--weights MODEL] [--out examples/content]

The shipped examples: ``--data OUT/data/content`` (the recipe's prepared training faces)
``--seed 1 --count 6 --select 4,5,1 --portrait-style examples/styles/poster-portrait.png
--portrait-select 2``.

The compact generator's mapping network is untrained (see docs/compact-model.md), so faces are
not sampled from z. Instead this fits a Gaussian to the W+ latents that the model's encoder gives
aligned face photos (``--data``: files, folders or globs; e.g. the prepared training content),
keeps its main ``--components`` principal directions, and draws truncated samples from it:
w = mean + psi * sum_i s_i * e_i * v_i with e_i ~ N(0, 1). Every sample is decoded by the
generator, upscaled to ``--size`` and kept only when dlib finds exactly one face in it, so each
example can be stylized like a photo. The same model, data and seed give the same images.

With ``--portrait-style`` one more generated face is turned into a poster-like portrait
(a reduced palette with ink outlines): a style image with hair, face and background regions.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageFilter, ImageOps

from hypernst_cli.faces.dlib_backend import DlibFaces
from hypernst_cli.io.images import load_image, save_image
from hypernst_cli.io.inputs import collect_images
from hypernst_cli.io.tensors import to_tensor, to_uint8
from hypernst_cli.pipeline.core import encoder_input_size, invert, resize
from hypernst_cli.pipeline.models import load_models

#: the poster palette of the portrait style (RGB): ink, plum, coral, sand, cream
POSTER_PALETTE = [(28, 24, 40), (96, 44, 84), (226, 96, 80), (240, 180, 110), (250, 238, 214)]


@torch.inference_mode()
def encode_all(models, paths: list[Path], batch: int = 32) -> torch.Tensor:
    """W+ latents [N, L, D] of aligned face photos."""
    size = encoder_input_size(models.encoder)
    out = []
    for start in range(0, len(paths), batch):
        x = torch.cat([resize(to_tensor(load_image(p)), size) for p in paths[start:start + batch]])
        out.append(invert(models.encoder, x))
    return torch.cat(out)


def latent_gaussian(latents: torch.Tensor, components: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(mean [L*D], principal directions [K, L*D], their standard deviations [K])."""
    flat = latents.flatten(1).double()
    mean = flat.mean(0)
    _, s, vh = torch.linalg.svd(flat - mean, full_matrices=False)
    k = min(components, vh.shape[0])
    std = s[:k] / max(1, flat.shape[0] - 1) ** 0.5
    return mean.float(), vh[:k].float(), std.float()


def poster(image: np.ndarray) -> np.ndarray:
    """A generated face as a poster: five flat colours by brightness, dark ink outlines."""
    img = Image.fromarray(image).filter(ImageFilter.MedianFilter(5))
    gray = np.asarray(ImageOps.autocontrast(img.convert("L")), np.float32) / 255
    levels = np.clip((gray * len(POSTER_PALETTE)).astype(int), 0, len(POSTER_PALETTE) - 1)
    out = np.asarray(POSTER_PALETTE, np.uint8)[levels]
    edges = np.asarray(img.convert("L").filter(ImageFilter.FIND_EDGES), np.float32)
    ink = edges > np.percentile(edges, 88)
    out[ink] = POSTER_PALETTE[0]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", nargs="+", required=True, help="aligned face photos (files, folders, globs)")
    ap.add_argument("--weights", default=None, help="model folder (default: the embedded compact model)")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "content")
    ap.add_argument("--count", type=int, default=3, help="faces to keep")
    ap.add_argument("--size", type=int, default=512, help="side of the saved images")
    ap.add_argument("--components", type=int, default=64)
    ap.add_argument("--truncation", type=float, default=1.0, help="psi: 0 = the mean face")
    ap.add_argument("--max-images", type=int, default=1024, help="photos encoded for the fit")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--select", default=None,
                    help="comma-separated 1-based numbers of the kept samples to write, in order "
                         "(e.g. 4,5,1: the faces chosen by eye); default: the first --count")
    ap.add_argument("--portrait-style", type=Path, default=None,
                    help="also write a poster-like portrait style image here")
    ap.add_argument("--portrait-select", type=int, default=None,
                    help="1-based number of the kept sample the portrait is drawn from "
                         "(default: one more sample after --count)")
    args = ap.parse_args(argv)
    # checked before any sampling: a typo should not cost a minute of generation
    chosen = [int(s) for s in args.select.split(",")] if args.select else list(range(1, args.count + 1))
    if not all(1 <= i <= args.count for i in chosen):
        raise SystemExit(f"--select: numbers must be within 1..{args.count}")
    if args.portrait_select is not None and not 1 <= args.portrait_select <= args.count:
        raise SystemExit(f"--portrait-select: must be within 1..{args.count}")

    torch.manual_seed(args.seed)
    models = load_models(args.weights, "compact", torch.device("cpu"), ["encoder", "generator"])
    paths = [p for p in collect_images(args.data) if not p.name.endswith(".mask.png")]
    rng = np.random.default_rng(args.seed)
    if len(paths) > args.max_images:
        paths = sorted(rng.choice(paths, args.max_images, replace=False).tolist())
    latents = encode_all(models, [Path(p) for p in paths])
    mean, basis, std = latent_gaussian(latents, args.components)
    shape = latents.shape[1:]
    print(f"fitted on {len(paths)} photos: W+ {tuple(shape)}, {basis.shape[0]} components")

    faces = DlibFaces()
    gen = torch.Generator().manual_seed(args.seed)
    wanted = args.count + (1 if args.portrait_style and not args.portrait_select else 0)
    kept: list[np.ndarray] = []
    tries = 0
    while len(kept) < wanted and tries < 20 * wanted:
        tries += 1
        eps = torch.randn(basis.shape[0], generator=gen)
        w = (mean + args.truncation * (eps * std) @ basis).view(1, *shape)
        with torch.inference_mode():
            face = to_uint8(models.generator(w, randomize_noise=False))[0]
        big = np.asarray(Image.fromarray(face).resize((args.size, args.size), Image.LANCZOS))
        if len(faces.detect_boxes(big)) == 1:
            kept.append(big)
    if len(kept) < wanted:
        raise SystemExit(f"only {len(kept)} of {tries} samples had one detectable face")
    args.out.mkdir(parents=True, exist_ok=True)
    for i, image in enumerate((kept[j - 1] for j in chosen), 1):
        path = save_image(image, args.out / f"face-{i}.png")
        print(f"wrote {path}")
    if args.portrait_style:
        source = kept[args.portrait_select - 1] if args.portrait_select else kept[-1]
        path = save_image(poster(source), args.portrait_style)
        print(f"wrote {path}")
    print(f"{tries} samples drawn, {len(kept)} kept")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
