"""How much can the palette amount alone buy? The analogy benchmark's items with the model's
output put through the palette post-process at several amounts, fixed and chosen per item;
then, at the model's own amount, at several pulls to the style's inks (``palette.inks``).

The palette (pipeline/palette.py) moves the output's Lab histograms to the exemplar's by a fixed
``palette.amount`` (0.75 for the embedded model). Some draws keep the photo's own colours (a
pastel without recolouring), so the exemplar's colours, which are its face's, pull the output
away from the truth; others recolour, and the more of the exemplar's palette the better. This
measures, for each item, the L1 to the truth at each amount; then the share of items beating
both baselines (the unstyled face and the colour transfer) at each fixed amount, and with the
amount chosen per item by hindsight: the ceiling of any rule that sets the amount from the
exemplar (a learnt gate), given this model's drawing. Without detail restoration (as
benchmarks/heldout_eval.sh). Fast: the model runs once per item (about 0.4 s on 2 CPU cores).

Run:
    python benchmarks/palette_ceiling.py --faces ALIGNED_FACES... [--weights MODEL_DIR]
        [--families heldout,train] [--draws 8] [--limit 24] [--seed 0]
Writes the table to stdout and appends it to benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _analogy_items import add_item_options, load_items  # noqa: E402
from _results import append_results  # noqa: E402

AMOUNTS = (0.0, 0.25, 0.5, 0.75, 1.0)
#: pulls to the style's two inks, at the model's palette amount
PULLS = (0.0, 0.25, 0.5, 0.75)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_item_options(parser, families="heldout,train", limit=24)
    args = parser.parse_args()

    import numpy as np

    from hypernst_cli.eval import analogies as an
    from hypernst_cli.eval.colour import colour_transfer
    from hypernst_cli.io.tensors import to_uint8
    from hypernst_cli.pipeline.palette import apply_palettes
    from hypernst_cli.pipeline.style_codes import blend

    pipe, faces, items = load_items(args, palette=1.0)
    shipped = float(pipe.models.config.palette.amount)
    shipped_pull = float(pipe.models.config.palette.inks)
    model = an.PipelineAnalogyModel(pipe)
    # per item: L1 at each amount, and the better of the two baselines
    l1 = np.zeros((len(items), len(AMOUNTS)))
    l1_pull = np.zeros((len(items), len(PULLS)))
    best_baseline = np.zeros(len(items))
    for n, item in enumerate(items):
        a, b = faces[item.exemplar_face], faces[item.content_face]
        exemplar, truth = an.render_item(item, faces)
        face = model._face(b.image.copy(), b.mask.copy())
        target = pipe.provider.for_image(exemplar, mask=a.mask.copy())
        raw = pipe.generate([face], blend(face.own_codes.table, target.table, 1.0)).images
        palette = pipe.palette_for(target)
        for k, amount in enumerate(AMOUNTS):
            moved = apply_palettes(raw, [dataclasses.replace(palette, amount=amount, pull=0.0)],
                                   face.mask[None].to(raw.device))
            l1[n, k] = an.l1_grey(to_uint8(moved)[0], truth)
        for k, pull in enumerate(PULLS):
            moved = apply_palettes(raw, [dataclasses.replace(palette, amount=shipped, pull=pull)],
                                   face.mask[None].to(raw.device))
            l1_pull[n, k] = an.l1_grey(to_uint8(moved)[0], truth)
        best_baseline[n] = min(an.l1_grey(b.image, truth),
                               an.l1_grey(colour_transfer(b.image, exemplar), truth))
        if (n + 1) % 50 == 0:
            print(f"{n + 1}/{len(items)}", flush=True)

    splits = {"held-out families": [i for i, it in enumerate(items)
                                    if it.split == an.HELDOUT_SPLIT],
              "training families, unseen draws": [i for i, it in enumerate(items)
                                                  if it.split != an.HELDOUT_SPLIT]}
    table = []
    for name, idx in splits.items():
        if not idx:
            continue
        sel, base = l1[idx], best_baseline[idx]
        cells = [f"{a:g}{' (shipped)' if a == shipped else ''}: {sel[:, k].mean():.2f}, "
                 f"{100 * np.mean(sel[:, k] < base):.0f} %" for k, a in enumerate(AMOUNTS)]
        per_item = sel.min(axis=1)
        cells.append(f"per item: {per_item.mean():.2f}, {100 * np.mean(per_item < base):.0f} %")
        table.append((f"{name} ({len(idx)})", "; ".join(cells)))
        print(table[-1][0], table[-1][1])
        pulled = l1_pull[idx]
        cells = [f"pull {p:g}{' (shipped)' if p == shipped_pull else ''}: "
                 f"{pulled[:, k].mean():.2f}, {100 * np.mean(pulled[:, k] < base):.0f} %"
                 for k, p in enumerate(PULLS)]
        table.append((f"{name}, inks at amount {shipped:g}", "; ".join(cells)))
        print(table[-1][0], table[-1][1])
    append_results(
        "Palette ceiling: analogy L1 with the palette amount fixed and chosen per item",
        table,
        f"Per palette amount (no pull to the inks): mean L1 to the truth (grey levels); share of "
        f"items beating both the unstyled face and the colour transfer. 'per item': the best "
        f"amount for each item in hindsight (the ceiling of a per-exemplar amount). 'inks': at the "
        f"model's amount, each pixel pulled that far to the nearer of the style's two inks. Model {args.weights or 'compact (embedded)'} "
        f"at {pipe.resolution} px, no detail; faces {', '.join(f.name for f in faces)}; "
        f"{args.draws} draws x a seeded {args.limit} items per family, seed {args.seed}.")


if __name__ == "__main__":
    main()
