"""uint8 images <-> float tensors: the one conversion each way.

Networks read [-1, 1] (``unit=False``, the default); the procedural styles, ALADIN's input and
the Inception stem read [0, 1] (``unit=True``). Imports torch: keep it off the CLI's start-up path.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch


def to_tensor(images: np.ndarray | Sequence[np.ndarray], *, unit: bool = False) -> torch.Tensor:
    """uint8 RGB (H, W, 3), a stack (B, H, W, 3) or a list of them -> float [B, 3, H, W] in
    [-1, 1], or [0, 1] with ``unit``. A single image gets a batch of one."""
    # a copy (np.stack makes one): torch warns on, and must not write through to, the input
    arr = np.stack(images) if isinstance(images, (list, tuple)) else np.array(images, copy=True)
    if arr.ndim == 3:
        arr = arr[None]
    if arr.ndim != 4 or arr.shape[-1] != 3:
        raise ValueError(f"expected RGB images (..., H, W, 3), got shape {arr.shape}")
    x = torch.from_numpy(np.ascontiguousarray(arr)).permute(0, 3, 1, 2).float()
    return (x / 255.0 if unit else x / 127.5 - 1.0).contiguous()


def to_uint8(images: torch.Tensor, *, unit: bool = False) -> np.ndarray:
    """Float [B, 3, H, W] (or [3, H, W]) in [-1, 1], or [0, 1] with ``unit`` -> uint8
    (B, H, W, 3) (or (H, W, 3)): clamped and rounded."""
    x = images.detach().float()
    x = x.clamp(0, 1) * 255.0 if unit else (x.clamp(-1, 1) + 1) * 127.5
    x = x.round().to(torch.uint8)
    return (x.permute(0, 2, 3, 1) if x.ndim == 4 else x.permute(1, 2, 0)).cpu().numpy()
