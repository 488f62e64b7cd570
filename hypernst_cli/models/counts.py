"""Parameter counts of each config's networks, built on the meta device (no memory, no time)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hypernst_cli.configs import ModelConfig


def parameter_counts(cfg: ModelConfig) -> dict[str, int]:
    """{network name: parameter count} for the networks of ``cfg`` defined in this package."""
    import torch

    from hypernst_cli.models.hypernet import build_hypernet
    from hypernst_cli.models.patch_disc import build_patch_disc
    from hypernst_cli.models.stylegan2 import build_discriminator, build_generator, count_parameters

    with torch.device("meta"):
        generator = build_generator(cfg.generator)
        nets = {
            "generator": generator,
            "hypernet": build_hypernet(cfg, generator),
            "discriminator": build_discriminator(cfg.generator),
            "patch_disc": build_patch_disc(cfg.patch_disc),
        }
        return {name: count_parameters(net) for name, net in nets.items()}
