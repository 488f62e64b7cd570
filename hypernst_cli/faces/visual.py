"""Pictures of region masks for people to look at."""

from __future__ import annotations

import numpy as np

from hypernst_cli.faces.regions import REGION_COLOURS


def colorize(labels: np.ndarray) -> np.ndarray:
    """Region labels (H, W) -> RGB uint8 in ``REGION_COLOURS``."""
    lab = np.asarray(labels)
    palette = np.array(REGION_COLOURS, dtype=np.uint8)
    return palette[np.clip(lab, 0, len(palette) - 1)]


def overlay(image: np.ndarray, labels: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """The image tinted with each region's colour, region borders drawn dark."""
    img = np.asarray(image, dtype=np.float32)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    lab = np.asarray(labels)
    if lab.shape != img.shape[:2]:
        raise ValueError(f"mask {lab.shape} and image {img.shape[:2]} differ in size")
    out = img * (1.0 - alpha) + colorize(lab).astype(np.float32) * alpha
    edge = np.zeros(lab.shape, bool)
    edge[1:, :] |= lab[1:, :] != lab[:-1, :]
    edge[:, 1:] |= lab[:, 1:] != lab[:, :-1]
    out[edge] = out[edge] * 0.3
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)
