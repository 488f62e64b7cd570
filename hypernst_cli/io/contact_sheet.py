"""Contact sheets: a grid of images with optional row/column labels, for people to look at."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont


def contact_sheet(
    rows: Sequence[Sequence[np.ndarray | None]],
    *,
    cell: int = 128,
    pad: int = 4,
    row_labels: Sequence[str] | None = None,
    col_labels: Sequence[str] | None = None,
    background: tuple[int, int, int] = (255, 255, 255),
) -> np.ndarray:
    """Lay out ``rows`` (lists of RGB uint8 arrays; ``None`` leaves a cell empty) on a grid.

    Every image is resized to ``cell`` x ``cell`` (aspect kept, centred). Labels, when given, go in
    a left column / top row. Returns an RGB uint8 array.
    """
    n_rows = len(rows)
    n_cols = max((len(r) for r in rows), default=0)
    if n_rows == 0 or n_cols == 0:
        raise ValueError("contact_sheet needs at least one image")
    font = ImageFont.load_default()
    label_w = (max(len(s) for s in row_labels) * 6 + 2 * pad) if row_labels else 0
    label_h = 14 + pad if col_labels else 0
    width = label_w + pad + n_cols * (cell + pad)
    height = label_h + pad + n_rows * (cell + pad)
    sheet = Image.new("RGB", (width, height), background)
    draw = ImageDraw.Draw(sheet)
    for c, text in enumerate(col_labels or []):
        x = label_w + pad + c * (cell + pad)
        draw.text((x, pad // 2), _fit(text, cell), fill=(0, 0, 0), font=font)
    for r, row in enumerate(rows):
        y = label_h + pad + r * (cell + pad)
        if row_labels:
            draw.text((pad, y + cell // 2 - 6), row_labels[r], fill=(0, 0, 0), font=font)
        for c, img in enumerate(row):
            if img is None:
                continue
            x = label_w + pad + c * (cell + pad)
            tile = Image.fromarray(np.asarray(img, dtype=np.uint8))
            scale = cell / max(tile.width, tile.height)  # fit the cell, up or down
            size = (max(1, round(tile.width * scale)), max(1, round(tile.height * scale)))
            tile = tile.resize(size, Image.Resampling.LANCZOS)
            sheet.paste(tile, (x + (cell - tile.width) // 2, y + (cell - tile.height) // 2))
    return np.asarray(sheet)


def _fit(text: str, cell: int) -> str:
    max_chars = max(4, cell // 6)
    return text if len(text) <= max_chars else text[: max_chars - 1] + "…"
