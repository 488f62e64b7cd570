"""A prepared data folder made at test time (no ../shared/data): drawn faces with exact masks.

Each "face" is a 64 px image with a coloured background, a skin-toned ellipse (face, label 1)
with dark eyes and a mouth, and a hair cap above it (label 2); positions, sizes and colours vary
per image, so different faces differ in geometry and colour. The layout is the one ``hypernst
prepare`` writes (DATA/content/NAME.png + NAME.mask.png, DATA/style/NAME.png [+ mask]).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def drawn_face(rng: np.random.Generator, size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """(RGB uint8 [size, size, 3], region mask uint8 [size, size]) of one drawn face."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / (size - 1)
    bg = rng.uniform(40, 220, 3)
    image = bg * (0.7 + 0.3 * x[..., None]) + rng.normal(0, 6, (size, size, 3))
    cy, cx = rng.uniform(0.5, 0.62), rng.uniform(0.42, 0.58)
    ry, rx = rng.uniform(0.24, 0.32), rng.uniform(0.18, 0.25)
    face = ((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2 <= 1
    hair = (((y - (cy - 0.12)) / (ry + 0.08)) ** 2 + ((x - cx) / (rx + 0.06)) ** 2 <= 1) & ~face
    hair &= y < cy
    mask = np.zeros((size, size), np.uint8)
    mask[face], mask[hair] = 1, 2
    skin = rng.uniform([170, 110, 80], [240, 190, 160])
    image[face] = skin * (1.05 - 0.25 * ((x[face] - cx) / rx) ** 2)[:, None]
    image[hair] = rng.uniform(10, 120, 3) + rng.normal(0, 12, (int(hair.sum()), 3))
    for ex in (cx - rx * 0.45, cx + rx * 0.45):  # eyes and mouth: dark marks inside the face
        eye = ((y - (cy - ry * 0.2)) / 0.03) ** 2 + ((x - ex) / 0.045) ** 2 <= 1
        image[eye & face] = 30
    mouth = (np.abs(y - (cy + ry * 0.5)) < 0.02) & (np.abs(x - cx) < rx * 0.4)
    image[mouth & face] = [150, 40, 50]
    return np.clip(image, 0, 255).astype(np.uint8), mask


def write_prepared(root: Path, n_content: int = 5, n_style: int = 2, seed: int = 0) -> Path:
    """A prepared folder under ``root`` with ``n_content`` faces and ``n_style`` style images (the
    first with a mask, the others without: a style with no face)."""
    rng = np.random.default_rng(seed)
    for split, n in (("content", n_content), ("style", n_style)):
        folder = root / split
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(n):
            image, mask = drawn_face(rng)
            if split == "style":  # a painterly look: a few flat levels and a tint
                image = (np.round(image / 85.0) * 85 * rng.uniform(0.6, 1.0, 3)).astype(np.uint8)
            Image.fromarray(image).save(folder / f"{split}_{i}.png")
            if split == "content" or i == 0:
                Image.fromarray(mask).save(folder / f"{split}_{i}.mask.png")
    return root
