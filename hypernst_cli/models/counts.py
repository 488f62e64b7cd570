"""Parameter counts of each config's networks, built on the meta device (no memory, no time)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hypernst_cli.configs import ModelConfig


def parameter_counts(cfg: ModelConfig) -> dict[str, int]:
    """{network name: parameter count} for every network of ``cfg`` (see pipeline.models.BUILDERS)."""
    import torch

    from hypernst_cli.pipeline.models import BUILDERS

    with torch.device("meta"):
        return {name: sum(p.numel() for p in build(cfg).parameters())
                for name, build in BUILDERS.items()}
