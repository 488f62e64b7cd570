"""Put the networks of several model folders into one: the ``init`` of a recipe on official weights.

``python -m hypernst_cli.train.assemble DST SOURCE... [--config NAME]`` writes a model folder with
the named config (default ``paper``) whose ``generator``, ``encoder`` and ``aladin`` sections are
taken from the sources that hold those networks (folders of converted official files, registry
names such as ``stylegan2-ffhq-256``, or any model folder). ALADIN-ViT has no direct download:
``hypernst convert aladin aladinVIT_bamfg_64.47.pt -o DIR`` and give DIR, not ``aladin-vit``. Each network comes from the first source that has
it; the card says which. Strict: a network whose tensors do not fit the assembled config is an
error, so a 1024 px e4e never lands beside a 256 px generator silently.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hypernst_cli.errors import UsageError

#: networks whose config section travels with them
SECTIONS = {"generator": "generator", "encoder": "encoder", "aladin": "aladin"}
#: networks checked against the assembled config (the others are carried as they are)
BUILDABLE = ("generator", "encoder", "aladin", "hypernet", "discriminator", "patch_disc")


def assemble(dst: Path, sources: list[str], config: str = "paper") -> Path:
    """Write DST from ``sources`` (model folders or registry names) on top of ``config``."""
    from hypernst_cli.configs import get_config
    from hypernst_cli.pipeline.models import build_network
    from hypernst_cli.weights.checkpoint import (
        load_model_folder,
        load_state_dict_strict,
        resolve_weights,
        save_model_folder,
    )

    if not sources:
        raise UsageError("give at least one source model folder or registry name")
    _check_fetchable(sources)
    cfg = get_config(config)
    networks: dict[str, dict] = {}
    origin: dict[str, str] = {}
    for spec in sources:
        folder = load_model_folder(resolve_weights(spec, config).path)
        found = folder.model_config()
        for name, state in folder.networks.items():
            if name in networks:
                continue
            networks[name], origin[name] = state, spec
            if name in SECTIONS:
                cfg = cfg.replace(**{SECTIONS[name]: getattr(found, SECTIONS[name])})
    for name, state in networks.items():
        if name not in BUILDABLE:  # directions, latent statistics: data, not networks
            continue
        load_state_dict_strict(build_network(name, cfg), state, f"{origin[name]} [{name}]")
    card = "Assembled (`python -m hypernst_cli.train.assemble`) on the `%s` config from:\n\n%s\n" % (
        config, "\n".join(f"- {name}: {origin[name]}" for name in sorted(networks)))
    return save_model_folder(dst, networks, cfg.to_dict(), {"assembled_from": origin}, card=card)


def _check_fetchable(sources: list[str]) -> None:
    """A registry name that no program can fetch (``aladin-vit``: a manual download in an upstream
    format) is never on this machine under its name: say how to get it and what to give in its
    place (the folder ``hypernst convert`` writes), before any source is loaded."""
    from hypernst_cli.errors import WeightsNotFoundError
    from hypernst_cli.weights.registry import load_registry, manual_download_steps

    entries = load_registry()
    for spec in sources:
        entry = entries.get(spec)
        if entry is None or entry.source_type != "manual" or Path(spec).expanduser().exists():
            continue
        parts = " ".join("{path}" if s == spec else s for s in sources)
        raise WeightsNotFoundError(
            f"weights '{spec}' have no direct download, so they cannot be found by name",
            hint=manual_download_steps(
                entry, f'give {{path}} in its place (recipes/paper/run.sh: PARTS="{parts}")'))


def main(argv: list[str] | None = None) -> int:
    from hypernst_cli.train.common import new_folder_main

    parser = argparse.ArgumentParser(prog="python -m hypernst_cli.train.assemble",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("dst", type=Path, help="the new model folder")
    parser.add_argument("sources", nargs="+",
                        help="model folders (e.g. from `hypernst convert`) or registry names, in "
                             "order")
    parser.add_argument("--config", default="paper", help="the config the folder is built on")
    args = parser.parse_args(argv)
    return new_folder_main(args.dst, lambda: assemble(args.dst, args.sources, args.config))


if __name__ == "__main__":
    sys.exit(main())
