"""Baseline methods for the evaluation table: every method is ``(content, style) -> output``.

- ``identity_method``: the (aligned) content unchanged: the floor of the content metrics (LPIPS 0,
  identity distance 0) and the ceiling of the style metrics.
- ``colour_transfer``: Reinhard's per-channel mean/std matching in CIE Lab: the cheapest method that
  moves the colours towards the style, a bar every stylization should clear on colour statistics.
- ``histogram_transfer``: per-channel histogram matching in CIE Lab (the palette post-process alone
  on the content): a stylization must do more than this to claim more than its palette.
"""

from __future__ import annotations

import numpy as np

from hypernst_cli.eval.colour import colour_transfer, histogram_transfer
from hypernst_cli.eval.metrics import check_image


def identity_method(content: np.ndarray, style: np.ndarray) -> np.ndarray:  # noqa: ARG001
    """Return the content unchanged (a copy, so no caller can alter the cached original)."""
    return check_image(content, "content").copy()


#: The baselines every report includes, by the names the report shows.
BASELINES = {"identity": identity_method, "colour transfer": colour_transfer,
             "histogram transfer": histogram_transfer}

__all__ = ["BASELINES", "colour_transfer", "histogram_transfer", "identity_method"]
