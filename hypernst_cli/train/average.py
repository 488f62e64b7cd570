"""Average two trained models' weights: a point on the straight line between them.

``python -m hypernst_cli.train.average A B DST [--weight W] [--networks hypernet,...]`` writes a
model folder that is B with each named network's tensors replaced by (1 - W) x A's + W x B's.

Two fine-tunes of one model (the same init, different losses) usually stay in one basin of the
loss, so a model between them is as good as either and often mixes what each learned (a "model
soup", Wortsman et al. 2022). The recipe uses it for the 256 px model: stage 2 with the texture
term draws strokes and lines, stage 2 led by L1 gets the analogies' tones; their average keeps
most of both (docs/compact-model.md, "Stage 2 led by L1"). The networks must match in config and
shapes; every other network, the config, the metrics and the card are B's; the card and
``metrics.json`` record the average.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hypernst_cli.errors import UsageError


def average_models(a: str | Path, b: str | Path, dst: str | Path, *, weight: float = 0.5,
                   networks: tuple[str, ...] = ("hypernet",)) -> Path:
    """The folder DST: B with ``networks`` averaged with A's, ``weight`` on B's."""
    from hypernst_cli.weights.checkpoint import load_model_folder, save_model_folder

    if not 0.0 <= weight <= 1.0:  # also refuses NaN
        raise UsageError(f"--weight must be between 0 and 1, got {weight}")
    first, second = load_model_folder(a), load_model_folder(b)
    if first.config != second.config:
        differ = sorted(k for k in set(first.config) | set(second.config)
                        if first.config.get(k) != second.config.get(k))
        raise UsageError(f"{a} and {b} have different configs ({', '.join(differ)})",
                         hint="average two fine-tunes of one model")
    merged = {name: dict(tensors) for name, tensors in second.networks.items()}
    for name in networks:
        ours, theirs = first.networks.get(name), second.networks.get(name)
        if ours is None or theirs is None:
            raise UsageError(f"network '{name}' is missing from {a if ours is None else b}")
        if ours.keys() != theirs.keys() or any(ours[k].shape != theirs[k].shape for k in ours):
            raise UsageError(f"network '{name}' differs in its tensors between {a} and {b}")
        merged[name] = {k: ((1.0 - weight) * ours[k].float() + weight * theirs[k].float())
                        .to(theirs[k].dtype) for k in theirs}
    record = {"a": str(a), "b": str(b), "weight_b": weight, "networks": list(networks)}
    metrics = dict(second.metrics or {})
    metrics["averaged"] = record
    card = (second.card or "").rstrip() + (
        f"\n\n## Averaged\n\nThe {', '.join(networks)} weights are {1 - weight:g} x `{a}`'s + "
        f"{weight:g} x `{b}`'s (`python -m hypernst_cli.train.average`).\n")
    return save_model_folder(dst, merged, second.config, {**second.extra, "averaged": record},
                             metrics=metrics, card=card)


def main(argv: list[str] | None = None) -> int:
    from hypernst_cli.train.common import new_folder_main

    parser = argparse.ArgumentParser(prog="python -m hypernst_cli.train.average",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("a", type=Path, help="the first model folder")
    parser.add_argument("b", type=Path, help="the second model folder (the rest is taken from it)")
    parser.add_argument("dst", type=Path, help="the new model folder")
    parser.add_argument("--weight", type=float, default=0.5, help="B's share (default 0.5)")
    parser.add_argument("--networks", default="hypernet",
                        help="comma-separated networks to average (default: hypernet)")
    args = parser.parse_args(argv)
    names = tuple(n.strip() for n in args.networks.split(",") if n.strip())
    return new_folder_main(args.dst, lambda: average_models(args.a, args.b, args.dst,
                                                           weight=args.weight, networks=names))


if __name__ == "__main__":
    sys.exit(main())
