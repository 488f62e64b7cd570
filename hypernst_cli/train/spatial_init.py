"""Give a trained W+-only model the spatial path, as the starting point of a fine-tune.

``python -m hypernst_cli.train.spatial_init SRC DST --feature-resolution R`` writes a model folder
whose config has ``generator.feature_resolution = R`` and whose networks are SRC's, except:

- the encoder gains the spatial feature head (models/e4e.py) with its last conv at zero, so the
  new model renders exactly what SRC rendered (F = G_f(W+) + 0) until the head is trained (the
  ``autoencoder`` stage with ``init`` = DST trains it together with the generator);
- the hyper-network drops the heads of the layers the spatial path skips (they would never run).

Every other tensor must match the new config one to one; anything else is an error, so a wrong
SRC or R never passes silently. The card records where the folder came from.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from hypernst_cli.errors import UsageError


def add_spatial_path(src: Path, dst: Path, feature_resolution: int) -> Path:
    """Write DST: SRC's model with the spatial path at ``feature_resolution`` (module doc)."""
    import torch

    from hypernst_cli.pipeline.models import build_network
    from hypernst_cli.weights.checkpoint import load_model_folder, save_model_folder

    folder = load_model_folder(src)
    cfg = folder.model_config()
    if cfg.generator.feature_resolution:
        raise UsageError(f"{src}: the model already has the spatial path "
                         f"(feature_resolution {cfg.generator.feature_resolution})")
    spatial = cfg.replace(generator=dataclasses.replace(cfg.generator,
                                                        feature_resolution=feature_resolution))
    networks: dict[str, dict[str, torch.Tensor]] = {}
    for name, state in folder.networks.items():
        state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
        if name not in ("encoder", "hypernet"):
            networks[name] = state
            continue
        net = build_network(name, spatial)
        expected = net.state_dict()
        new_keys = set(expected) - set(state)
        dropped = set(state) - set(expected)
        if name == "encoder" and (dropped or any(not k.startswith("feature_head.") for k in new_keys)):
            raise UsageError(f"{src}: the encoder's tensors do not match the spatial config "
                             f"(new: {sorted(new_keys)[:3]}, dropped: {sorted(dropped)[:3]})")
        if name == "hypernet" and new_keys:
            raise UsageError(f"{src}: the hyper-network lacks tensors the spatial config needs "
                             f"({sorted(new_keys)[:3]})")
        for key in set(expected) & set(state):
            if expected[key].shape != state[key].shape:
                raise UsageError(f"{src}: {name}.{key} has shape {tuple(state[key].shape)}, the "
                                 f"spatial config needs {tuple(expected[key].shape)}")
        # new tensors (the feature head) keep the network's own initialisation (last conv zero)
        networks[name] = {k: state.get(k, v) for k, v in expected.items()}
    extra = dict(folder.extra or {})
    extra["spatial_init"] = {"source": str(src), "feature_resolution": feature_resolution}
    card = (folder.card or "") + (
        f"\n\nSpatial path added (`python -m hypernst_cli.train.spatial_init`): feature resolution "
        f"{feature_resolution}; the encoder's feature head is untrained (zero last conv: renders "
        f"as the source model) until an `autoencoder` stage trains it.\n")
    return save_model_folder(dst, networks, spatial.to_dict(), extra, card=card)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hypernst_cli.train.spatial_init",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("src", type=Path, help="a model folder without the spatial path")
    parser.add_argument("dst", type=Path, help="the new model folder")
    parser.add_argument("--feature-resolution", type=int, required=True,
                        help="r_f: the generator resolution whose features F replaces")
    args = parser.parse_args(argv)
    try:
        if args.dst.exists():
            raise UsageError(f"{args.dst} exists", hint="choose a new folder")
        out = add_spatial_path(args.src, args.dst, args.feature_resolution)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
