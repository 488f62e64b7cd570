"""The analogy benchmark's items for the scripts that post-process or compare against the
model's outputs item by item (palette_ceiling.py, analogy_oracle.py): the same options and the
same items as ``hypernst evaluate --analogies``, on the CPU with the dlib backend and no detail
restoration (as benchmarks/heldout_eval.sh)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_item_options(parser: argparse.ArgumentParser, *, families: str, limit: int) -> None:
    """--faces, --weights, --families, --draws, --limit, --seed."""
    parser.add_argument("--faces", type=Path, nargs="+", required=True,
                        help="aligned faces (at least 2), e.g. the held-out ones of holdout.txt")
    parser.add_argument("--weights", default=None, help="a model folder (default: the embedded compact)")
    parser.add_argument("--families", default=families)
    parser.add_argument("--draws", type=int, default=8)
    parser.add_argument("--limit", type=int, default=limit)
    parser.add_argument("--seed", type=int, default=0)


def load_items(args: argparse.Namespace, **pipeline_options: Any) -> tuple[Any, list[Any], list[Any]]:
    """(pipeline, faces, items) for the parsed options; ``pipeline_options`` go to
    ``HyperNSTPipeline.load`` (e.g. ``palette=1.0``)."""
    from hypernst_cli.device import configure_cpu_threads
    from hypernst_cli.eval import analogies as an
    from hypernst_cli.pipeline.stylize import HyperNSTPipeline

    configure_cpu_threads()
    pipe = HyperNSTPipeline.load(weights=args.weights, config="compact", device="cpu",
                                 backend="dlib", detail=0.0, **pipeline_options)
    faces = an.load_faces(args.faces, pipe.resolution, pipe.faces.parse_image)
    items = an.plan_items(len(faces), an.resolve_families(args.families.split(",")),
                          draws=args.draws, seed=args.seed, limit=args.limit)
    return pipe, faces, items
