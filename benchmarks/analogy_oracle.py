"""What does an analogy item need that the exemplar does not give? Image analogies with and
without the exemplar's own photo.

An analogy item gives the model the exemplar T(A) and the content B; the truth is T(B). If A
were known too, the item would be a classic image analogy (Hertzmann et al. 2001): learn the
map A -> T(A) pixel by pixel from local features, apply it to B. This script measures that, per
item, beside the model and the two baselines:

- **oracle analogy**: a small per-pixel network (17 local features: colour, luminance and its
  gradient (Sobel) at 1, 2 and 4 px, a local contrast, the region) fitted to A -> T(A) under L1 for 300
  steps, then run on B. A is the benchmark's own face: no model can know it;
- **estimated analogy**: the same with A replaced by what the model recovers of it, the exemplar
  inverted and redrawn as if it were a photo (``hypernst invert`` on T(A)).

If the oracle beats both baselines where the model does not, the family is a local function of
the photo that a few seconds of fitting learn, and what is missing is A's tones; if the estimate
fails where the oracle succeeds, recovering them from T(A) is the hard part.

Run:
    python benchmarks/analogy_oracle.py --faces ALIGNED_FACES... [--weights MODEL_DIR]
        [--families heldout] [--draws 8] [--limit 6] [--seed 0]
Writes the table to stdout and appends it to benchmarks/RESULTS.md. About 5 s an item on 2 CPU
cores.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _analogy_items import add_item_options, load_items  # noqa: E402
from _results import append_results  # noqa: E402

FIT_STEPS = 300
FIT_PIXELS = 16384  # pixels per step


def local_features(image, mask):
    """[H*W, 17] per-pixel features of an RGB uint8 image and its region labels."""
    import torch
    import torch.nn.functional as F

    from hypernst_cli.models.filters import gaussian_blur, luminance, sobel_magnitude

    x = torch.from_numpy(image).float().permute(2, 0, 1)[None] / 255
    lum = luminance(x)
    feats = [x]
    smooth = {sigma: gaussian_blur(lum, sigma) for sigma in (1.0, 2.0, 4.0)}
    for blurred in smooth.values():
        feats += [blurred, sobel_magnitude(blurred)]
    local_mean = smooth[2.0]
    feats += [gaussian_blur(x, 3.0), lum - local_mean,
              (gaussian_blur(lum * lum, 2.0) - local_mean ** 2).clamp(min=0).sqrt()]
    regions = torch.from_numpy(mask.astype("int64"))
    feats.append(F.one_hot(regions, 3).permute(2, 0, 1)[None].float())
    f = torch.cat(feats, 1)[0]
    return f.reshape(f.shape[0], -1).T


def fit_and_apply(source, source_mask, target, content, content_mask, seed: int = 0):
    """Fit source -> target per pixel (L1), run it on content: an RGB uint8 image."""
    import numpy as np
    import torch

    inputs, wanted = local_features(source, source_mask), torch.from_numpy(target).float().reshape(-1, 3) / 255
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(inputs.shape[1], 48), torch.nn.GELU(),
                              torch.nn.Linear(48, 48), torch.nn.GELU(), torch.nn.Linear(48, 3))
    opt = torch.optim.Adam(net.parameters(), 3e-3)
    for _ in range(FIT_STEPS):
        pick = torch.randint(0, inputs.shape[0], (FIT_PIXELS,), generator=gen)
        loss = (net(inputs[pick]) - wanted[pick]).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        out = net(local_features(content, content_mask)).clamp(0, 1)
    return (out.reshape(content.shape) * 255).round().numpy().astype(np.uint8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_item_options(parser, families="heldout", limit=6)
    args = parser.parse_args()

    import numpy as np

    from hypernst_cli.eval import analogies as an
    from hypernst_cli.eval.colour import colour_transfer

    pipe, faces, items = load_items(args)
    model = an.PipelineAnalogyModel(pipe)
    methods = ("model", "colour transfer", "unstyled", "oracle analogy", "estimated analogy")
    rows: dict[str, list[dict[str, float]]] = {}
    a_error: list[float] = []
    for n, item in enumerate(items):
        a, b = faces[item.exemplar_face], faces[item.content_face]
        exemplar, truth = an.render_item(item, faces)
        recovered = model.reconstruct(exemplar.copy(), a.mask.copy())
        a_error.append(an.l1_grey(recovered, a.image))
        outputs = {
            "model": model.stylize(b.image.copy(), b.mask.copy(), exemplar, a.mask.copy()),
            "colour transfer": colour_transfer(b.image, exemplar),
            "unstyled": b.image,
            "oracle analogy": fit_and_apply(a.image, a.mask, exemplar, b.image, b.mask),
            "estimated analogy": fit_and_apply(recovered, a.mask, exemplar, b.image, b.mask),
        }
        rows.setdefault(item.group, []).append({k: an.l1_grey(v, truth) for k, v in outputs.items()})
        print(f"{n + 1}/{len(items)} {item.group}: " + ", ".join(
            f"{k} {v:.1f}" for k, v in rows[item.group][-1].items()), flush=True)

    def cells(group: list[dict[str, float]]) -> str:
        out = []
        for k in methods:
            l1 = np.array([r[k] for r in group])
            beats = np.mean([r[k] < min(r["colour transfer"], r["unstyled"]) for r in group])
            out.append(f"{k} {l1.mean():.2f}" + ("" if k in ("colour transfer", "unstyled")
                                                 else f", {100 * beats:.0f} %"))
        return "; ".join(out)

    table = [(f"{group} ({len(v)})", cells(v)) for group, v in rows.items()]
    everything = [r for v in rows.values() for r in v]
    table.append((f"all ({len(everything)})", cells(everything)))
    table.append(("exemplar redrawn vs A", f"L1 {np.mean(a_error):.2f} grey levels"))
    for label, line in table:
        print(label, line)
    append_results(
        "Analogy oracle: image analogies with and without the exemplar's photo",
        table,
        f"Mean L1 to the truth (grey levels) and share of items beating both the unstyled face and "
        f"the colour transfer. Oracle: a per-pixel network fitted to A -> T(A) ({FIT_STEPS} steps), "
        f"run on B; estimated: the same fitted on the exemplar inverted and redrawn by the model. "
        f"Model {args.weights or 'compact (embedded)'} at {pipe.resolution} px, no detail; faces "
        f"{', '.join(f.name for f in faces)}; {args.draws} draws x a seeded {args.limit} items per "
        f"family, seed {args.seed}.")


if __name__ == "__main__":
    main()
