"""How far can the hyper-network's outputs reach? The analogy benchmark's items with the
offsets (and, as a second bound, the content skip) optimised freely per item against the truth.

For each analogy item (content B, exemplar T(A), truth T(B); eval/analogies.py), the model's own
prediction is the start: its offsets for every stylized layer and its content-skip residual.
Adam then changes them for ``--steps`` steps to bring the render closer to T(B) by L1. No
hyper-network can predict better offsets than these for the same generator, so the result
says whether the model's limit is what the hyper-network learnt (the gap between the model
and the bound: more training could close it) or what per-channel offsets on the generator's
late layers can express at all (the bound itself). Without the palette post-process (it would
apply to both the same way); L1 in grey levels at the model's resolution, next to the unstyled
face, the colour transfer and the floor (the truth's draw with other texture seeds).

Run (about 1 s a step per item on 2 CPU cores at 256 px):
    python benchmarks/offset_capacity.py --data ../shared/data [--weights MODEL_DIR]
        [--families heldout,train] [--steps 100] [--pairs 2]
Writes the table to stdout and appends it to benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import append_results  # noqa: E402

HOLDOUT = Path(__file__).resolve().parents[1] / "recipes" / "compact" / "holdout.txt"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="the data folder (../shared/data)")
    parser.add_argument("--weights", default=None, help="a model folder (default: the embedded compact)")
    parser.add_argument("--families", default="heldout,train")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--pairs", type=int, default=2, help="ordered face pairs per family")
    args = parser.parse_args()

    import numpy as np
    import torch

    from hypernst_cli.device import configure_cpu_threads
    from hypernst_cli.eval import analogies as an
    from hypernst_cli.eval.colour import colour_transfer
    from hypernst_cli.io.tensors import to_tensor, to_uint8
    from hypernst_cli.pipeline.stylize import HyperNSTPipeline
    from hypernst_cli.pipeline.style_codes import blend

    configure_cpu_threads()
    pipe = HyperNSTPipeline.load(weights=args.weights, config="compact", device="cpu",
                                 backend="dlib", palette=0.0, detail=0.0)
    faces_paths = [args.data / line.strip() for line in HOLDOUT.read_text().splitlines()
                   if line.startswith("faces/")]
    res = pipe.models.config.resolution
    faces = an.load_faces(faces_paths, res, pipe.faces.parse_image)
    items = an.plan_items(len(faces), an.resolve_families([args.families]), draws=1,
                          limit=args.pairs)
    model = an.PipelineAnalogyModel(pipe)
    generator = pipe.generator_for_inference()
    rows: dict[str, list[tuple[float, ...]]] = {}
    t_start = time.perf_counter()
    for n, item in enumerate(items, 1):
        a, b = faces[item.exemplar_face], faces[item.content_face]
        exemplar, truth = an.render_item(item, faces)
        face = model._face(b.image.copy(), b.mask.copy())
        codes = blend(face.own_codes.table, pipe.provider.for_image(exemplar, mask=a.mask).table, 1.0)
        result = pipe.generate([face], codes)
        start = to_uint8(result.images)[0]
        target = to_tensor(truth)
        latent = result.wplus, result.features

        def fit(free_skip: bool) -> np.ndarray:
            offsets = [None if o is None else o.detach().clone().requires_grad_(True)
                       for o in result.offsets]
            skip = result.skip.detach().clone().requires_grad_(free_skip) \
                if result.skip is not None else None
            params = [o for o in offsets if o is not None] + ([skip] if free_skip and skip is not None else [])
            opt = torch.optim.Adam(params, lr=args.lr)
            for _ in range(args.steps):
                out = generator(latent[0], features=latent[1], offsets=offsets, skip=skip)
                loss = (out - target).abs().mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
            with torch.no_grad():
                out = generator(latent[0], features=latent[1], offsets=offsets, skip=skip)
            return to_uint8(out)[0]

        offsets_fit = fit(False)
        both_fit = fit(True)
        floor = an.floor_render(b.image, b.mask, item)
        row = (an.l1_grey(start, truth), an.l1_grey(offsets_fit, truth), an.l1_grey(both_fit, truth),
               an.l1_grey(b.image, truth), an.l1_grey(colour_transfer(b.image, exemplar), truth),
               an.l1_grey(floor, truth))
        rows.setdefault(item.group, []).append(row)
        print(f"{n}/{len(items)} {item.group}: " + " ".join(f"{v:.1f}" for v in row)
              + f" ({time.perf_counter() - t_start:.0f} s)", flush=True)

    names = ("model", "offsets optimised", "offsets + skip optimised", "unstyled", "colour tr.", "floor")
    table = []
    heldout = [r for g, rs in rows.items() if an.family_split(g) == an.HELDOUT_SPLIT for r in rs]
    groups = list(rows.items()) + ([("held-out families", heldout)] if heldout else []) \
        + [("all families", [r for rs in rows.values() for r in rs])]
    for group, rs in groups:
        means = np.mean(np.array(rs), axis=0)
        table.append((f"{group} ({len(rs)})", " / ".join(f"{v:.1f}" for v in means)))
        print(table[-1][0], table[-1][1])
    append_results(
        "Offset capacity: analogy L1 with per-item optimised offsets",
        table,
        f"L1 to the truth, grey levels: {' / '.join(names)}. Model {args.weights or 'compact (embedded)'} at {res} px, "
        f"{args.steps} Adam steps (lr {args.lr}) per item from the model's own prediction, "
        f"no palette, no detail; {args.pairs} ordered face pair(s) per family, one unseen draw each; "
        f"held-out faces of recipes/compact/holdout.txt. CPU threads {torch.get_num_threads()}.")


if __name__ == "__main__":
    main()
