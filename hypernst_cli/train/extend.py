"""Give a trained model an optional part it lacks, as the starting point of a fine-tune.

``python -m hypernst_cli.train.extend SRC DST [--feature-resolution R] [--global-code]
[--skip-width W] [--skip-noise N] [--resolution R]`` writes a
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
  N channels of fixed white noise through a conv at zero (a grain for strokes and dots);
- ``--resolution R`` (grow: ``generator.resolution = R``, a power of two above SRC's): the
  generator gains the blocks up to R with their toRGB weights at zero, so it renders SRC's image
  upsampled by its own skip filter until the new blocks are trained (the ``autoencoder`` stage
  with ``train_from_layer``); the encoder's new W+ heads copy its last head (the new latents
  start equal to the last one); the hyper-network gains heads for the new layers (whatever they
  predict scales the zero toRGB weights: no effect until trained), keeps its content encoder at
  SRC's size (``hypernet.input_size``) and its content skip moves to the new last block with
  its output conv at zero (it reads the content at R; the ``stylize`` stage trains it again). The image discriminator and the edit directions depend on
  the resolution: they are dropped (refit the directions with ``hypernst directions fit``).

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
#: what growing adds (--resolution): new W+ heads, new layers' heads; every generator tensor of a
#: new block is new
GROWN_TENSORS = {"encoder": ("styles.",), "hypernet": ("heads.", "outputs.", "shared."),
                 "generator": ("",)}
#: tensors whose shape growing changes: the encoder's latent_avg gains rows (copies of the last),
#: the content skip's output conv now feeds the new last block (restarted at zero)
GROWN_SHAPES = {"encoder": ("latent_avg",), "hypernet": ("skip.out.",)}
#: networks whose layout follows the resolution and that growing does not carry over
GROWN_DROPPED = ("discriminator", "directions")


def extend_model(src: Path, dst: Path, *, feature_resolution: int = 0,
                 global_code: bool = False, skip_width: int = 0, skip_noise: int = 0,
                 resolution: int = 0) -> Path:
    """Write DST: SRC's model with the spatial path at ``feature_resolution`` (0: unchanged),
    the hyper-network's global code input, its content skip of width ``skip_width``,
    ``skip_noise`` noise channels for the skip and/or grown to ``resolution`` (module doc)."""
    import torch

    from hypernst_cli.pipeline.models import build_network
    from hypernst_cli.weights.checkpoint import load_model_folder, save_model_folder

    if not (feature_resolution or global_code or skip_width or skip_noise or resolution):
        raise UsageError("nothing to add", hint="give --feature-resolution R, --global-code, "
                                                "--skip-width W, --skip-noise N and/or "
                                                "--resolution R")
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
    old_resolution = cfg.generator.resolution
    if resolution and (resolution <= old_resolution or resolution & (resolution - 1)):
        raise UsageError(f"--resolution {resolution}: give a power of two above the model's "
                         f"{old_resolution} px (e.g. {2 * old_resolution})")
    new_cfg = cfg
    if resolution:
        new_cfg = new_cfg.replace(
            description=f"{cfg.description} (grown from {old_resolution} to {resolution} px)",
            generator=dataclasses.replace(new_cfg.generator, resolution=resolution),
            hypernet=dataclasses.replace(new_cfg.hypernet,
                                         input_size=cfg.hypernet.input_size or old_resolution))
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
        if resolution and name in GROWN_DROPPED:
            continue
        if name not in NEW_TENSORS and not (resolution and name in GROWN_TENSORS):
            networks[name] = state
            continue
        expected = build_network(name, new_cfg).state_dict()
        new_parts = NEW_TENSORS.get(name, ()) + (GROWN_TENSORS.get(name, ()) if resolution else ())
        reshaped = GROWN_SHAPES.get(name, ()) if resolution else ()
        new_keys = set(expected) - set(state)
        dropped = set(state) - set(expected)
        unexplained = sorted(k for k in new_keys if not any(part in k for part in new_parts))
        if unexplained or (name == "encoder" and dropped):
            raise UsageError(f"{src}: the {name}'s tensors do not match the new config "
                             f"(new: {(unexplained or sorted(new_keys))[:3]}, "
                             f"dropped: {sorted(dropped)[:3]})")
        for key in set(expected) & set(state):
            if (expected[key].shape != state[key].shape
                    and not any(key.startswith(part) for part in reshaped)):
                raise UsageError(f"{src}: {name}.{key} has shape {tuple(state[key].shape)}, the "
                                 f"new config needs {tuple(expected[key].shape)}")
        # new tensors keep the network's own initialisation (zero: renders as SRC)
        merged = {k: state[k] if k in state and state[k].shape == v.shape else v
                  for k, v in expected.items()}
        if resolution:
            grow_tensors(name, merged, state, new_keys)
        networks[name] = merged
    added = ([f"{resolution} px: the generator's new blocks (toRGB at zero: it renders the "
              f"{old_resolution} px image upsampled until an `autoencoder` stage with "
              "`train_from_layer` trains them), the encoder's new W+ heads (copies of its last), "
              "the hyper-network's heads for the new layers (no effect until then; its content "
              f"encoder reads {new_cfg.hypernet.input_size} px) and its content skip moved to the "
              "new last block (output conv at zero until a `stylize` stage trains it); the image "
              "discriminator and the edit directions dropped (they follow the resolution)"]
             if resolution else [])
    added += ([f"the spatial path (feature resolution {feature_resolution}; the encoder's feature "
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
                                             "skip_noise": skip_noise,
                                             "resolution": resolution})
    card = (folder.card or "") + (
        f"\n\nExtended (`python -m hypernst_cli.train.extend`) from {src}: added "
        + "; ".join(added) + ". It renders as the source model until then.\n")
    return save_model_folder(dst, networks, new_cfg.to_dict(), extra, card=card)


def grow_tensors(name: str, merged: dict, old: dict, new_keys: set[str]) -> None:
    """The tensors growing sets by rule rather than by the network's own init (module doc)."""
    import re

    import torch

    if name == "generator":
        # every new toRGB adds zero: the image is the old one through the skip upsampling
        for key in new_keys:
            if re.fullmatch(r"to_rgbs\.\d+\.conv\.weight", key):
                merged[key] = torch.zeros_like(merged[key])
    elif name == "encoder":
        old_n = old["latent_avg"].shape[0]
        new_n = merged["latent_avg"].shape[0]
        # the new latents start as copies of the last: same head weights, same average
        merged["latent_avg"] = torch.cat([old["latent_avg"],
                                          old["latent_avg"][-1:].expand(new_n - old_n, -1)])
        last = f"styles.{old_n - 1}."
        for key in new_keys:
            i, rest = key.split(".", 2)[1:]
            if int(i) >= old_n:
                merged[key] = old[last + rest].clone()


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
    parser.add_argument("--resolution", type=int, default=0,
                        help="grow the model to this output resolution (a power of two above "
                             "its own, e.g. 256); train the new blocks with the autoencoder "
                             "stage's train_from_layer, then stylize")
    args = parser.parse_args(argv)
    return new_folder_main(args.dst, lambda: extend_model(
        args.src, args.dst, feature_resolution=args.feature_resolution,
        global_code=args.global_code, skip_width=args.skip_width, skip_noise=args.skip_noise,
        resolution=args.resolution))


if __name__ == "__main__":
    sys.exit(main())
