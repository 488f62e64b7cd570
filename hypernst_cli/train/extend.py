"""Give a trained model an optional part it lacks, as the starting point of a fine-tune.

``python -m hypernst_cli.train.extend SRC DST [--feature-resolution R] [--global-code]
[--skip-width W] [--skip-noise N]`` writes a
model folder whose config is SRC's with the part(s) switched on and whose networks are SRC's,
except:

- ``--feature-resolution R`` (the spatial path, ``generator.feature_resolution = R``): the encoder
  gains the spatial feature head (models/e4e.py) with its last conv at zero, so the new model
  renders exactly what SRC rendered (F = G_f(W+) + 0) until the head is trained (the
  ``autoencoder`` stage with ``init`` = DST trains it together with the generator); the
  hyper-network drops the heads of the layers the spatial path skips (they would never run);
  the detail post-process is switched off (``detail.strength = 0``: F carries the detail);
- ``--global-code`` (Eq. 2's A(s), ``hypernet.global_code``): every hyper-network head gains its
  projection of the global style code, at zero, so the offsets stay SRC's until a ``reconstruct``
  or ``stylize`` stage trains it;
- ``--skip-width W`` (the style-conditioned content skip, ``hypernet.skip_width``; not in the
  paper): the hyper-network gains the branch (models/hypernet.py, ContentSkip) with its FiLM and
  output convs at zero, so the model renders as SRC until a ``stylize`` stage trains it;
- ``--skip-noise N`` (``hypernet.skip_noise``; with the skip, added now or before): the skip reads
  N channels of fixed white noise through a conv at zero (a grain for strokes and dots).

Every other tensor must match the new config one to one; anything else is an error, so a wrong
SRC or R never passes silently. The card records where the folder came from.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from hypernst_cli.errors import UsageError

#: the tensors each part adds (a key containing one of these), per network
NEW_TENSORS = {"encoder": ("feature_head.",), "hypernet": (".global_proj.", "skip.")}


def extend_model(src: Path, dst: Path, *, feature_resolution: int = 0,
                 global_code: bool = False, skip_width: int = 0, skip_noise: int = 0) -> Path:
    """Write DST: SRC's model with the spatial path at ``feature_resolution`` (0: unchanged),
    the hyper-network's global code input, its content skip of width ``skip_width`` and/or
    ``skip_noise`` noise channels for the skip (module doc)."""
    import torch

    from hypernst_cli.pipeline.models import build_network
    from hypernst_cli.weights.checkpoint import load_model_folder, save_model_folder

    if not feature_resolution and not global_code and not skip_width and not skip_noise:
        raise UsageError("nothing to add", hint="give --feature-resolution R, --global-code, "
                                                "--skip-width W and/or --skip-noise N")
    if skip_width < 0:
        raise UsageError(f"--skip-width {skip_width}: give a positive width (e.g. 16)")
    if skip_noise < 0:
        raise UsageError(f"--skip-noise {skip_noise}: give a positive channel count (e.g. 4)")
    folder = load_model_folder(src)
    cfg = folder.model_config()
    if feature_resolution and cfg.generator.feature_resolution:
        raise UsageError(f"{src}: the model already has the spatial path "
                         f"(feature_resolution {cfg.generator.feature_resolution})")
    if global_code and cfg.hypernet.global_code:
        raise UsageError(f"{src}: the hyper-network already reads the global code")
    if skip_width and cfg.hypernet.skip_width:
        raise UsageError(f"{src}: the hyper-network already has the content skip "
                         f"(width {cfg.hypernet.skip_width})")
    if skip_noise and cfg.hypernet.skip_noise:
        raise UsageError(f"{src}: the content skip already reads noise "
                         f"({cfg.hypernet.skip_noise} channels)")
    if skip_noise and not (skip_width or cfg.hypernet.skip_width):
        raise UsageError(f"{src}: --skip-noise needs the content skip",
                         hint="add it in the same call with --skip-width W")
    new_cfg = cfg
    if feature_resolution:
        # F carries the detail the post-process restored (as in `compact256`): off by default
        new_cfg = new_cfg.replace(
            generator=dataclasses.replace(new_cfg.generator, feature_resolution=feature_resolution),
            detail=dataclasses.replace(new_cfg.detail, strength=0.0))
    if global_code:
        new_cfg = new_cfg.replace(hypernet=dataclasses.replace(new_cfg.hypernet, global_code=True))
    if skip_width:
        new_cfg = new_cfg.replace(hypernet=dataclasses.replace(new_cfg.hypernet,
                                                               skip_width=skip_width))
    if skip_noise:
        new_cfg = new_cfg.replace(hypernet=dataclasses.replace(new_cfg.hypernet,
                                                               skip_noise=skip_noise))
    networks: dict[str, dict[str, torch.Tensor]] = {}
    for name, state in folder.networks.items():
        state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
        if name not in NEW_TENSORS:
            networks[name] = state
            continue
        expected = build_network(name, new_cfg).state_dict()
        new_keys = set(expected) - set(state)
        dropped = set(state) - set(expected)
        unexplained = sorted(k for k in new_keys
                             if not any(part in k for part in NEW_TENSORS[name]))
        if unexplained or (name == "encoder" and dropped):
            raise UsageError(f"{src}: the {name}'s tensors do not match the new config "
                             f"(new: {(unexplained or sorted(new_keys))[:3]}, "
                             f"dropped: {sorted(dropped)[:3]})")
        for key in set(expected) & set(state):
            if expected[key].shape != state[key].shape:
                raise UsageError(f"{src}: {name}.{key} has shape {tuple(state[key].shape)}, the "
                                 f"new config needs {tuple(expected[key].shape)}")
        # new tensors keep the network's own initialisation (zero: renders as SRC)
        networks[name] = {k: state.get(k, v) for k, v in expected.items()}
    added = ([f"the spatial path (feature resolution {feature_resolution}; the encoder's feature "
              "head is untrained, its last conv zero, until an `autoencoder` stage trains it)"]
             if feature_resolution else [])
    added += (["the global code input A(s) of Eq. 2 (every head's projection at zero until a "
               "`reconstruct` or `stylize` stage trains it)"] if global_code else [])
    added += ([f"the style-conditioned content skip (width {skip_width}; its FiLM and output "
               "convs at zero until a `stylize` stage trains it)"] if skip_width else [])
    added += ([f"{skip_noise} channels of fixed noise for the content skip (its conv at zero "
               "until a `stylize` stage trains it)"] if skip_noise else [])
    extra = dict(folder.extra or {})
    extra.setdefault("extended", []).append({"source": str(src),
                                             "feature_resolution": feature_resolution,
                                             "global_code": global_code,
                                             "skip_width": skip_width,
                                             "skip_noise": skip_noise})
    card = (folder.card or "") + (
        f"\n\nExtended (`python -m hypernst_cli.train.extend`) from {src}: added "
        + "; ".join(added) + ". It renders as the source model until then.\n")
    return save_model_folder(dst, networks, new_cfg.to_dict(), extra, card=card)


def main(argv: list[str] | None = None) -> int:
    from hypernst_cli.train.common import new_folder_main

    parser = argparse.ArgumentParser(prog="python -m hypernst_cli.train.extend",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("src", type=Path, help="the trained model folder")
    parser.add_argument("dst", type=Path, help="the new model folder")
    parser.add_argument("--feature-resolution", type=int, default=0,
                        help="add the spatial path: r_f, the generator resolution whose features "
                             "F replaces")
    parser.add_argument("--global-code", action="store_true",
                        help="add Eq. 2's global style code input A(s) to the hyper-network")
    parser.add_argument("--skip-width", type=int, default=0,
                        help="add the style-conditioned content skip of this width (not in the "
                             "paper; e.g. 16)")
    parser.add_argument("--skip-noise", type=int, default=0,
                        help="give the content skip this many channels of fixed noise (not in "
                             "the paper; e.g. 4)")
    args = parser.parse_args(argv)
    return new_folder_main(args.dst, lambda: extend_model(
        args.src, args.dst, feature_resolution=args.feature_resolution,
        global_code=args.global_code, skip_width=args.skip_width, skip_noise=args.skip_noise))


if __name__ == "__main__":
    sys.exit(main())
