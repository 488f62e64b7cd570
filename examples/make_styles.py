"""Draw the example style images procedurally (deterministic; nothing is copied from anywhere).

Run: python examples/make_styles.py [--out examples/styles] [--size 256]

Each image is a non-portrait texture, so hypernst uses its global style code for every region
(as the paper does for non-portrait styles).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    return x, y


def waves(size: int, rng: np.random.Generator) -> Image.Image:
    """Woodblock-print waves: indigo bands with cream crests on a paper tone."""
    x, y = _grid(size)
    phase = np.sin(x * 14 + np.sin(y * 5) * 2) * 0.06
    bands = np.sin((y + phase) * 40)
    paper = np.array([236, 226, 200], np.float32)
    indigo = np.array([32, 52, 110], np.float32)
    crest = np.array([250, 245, 230], np.float32)
    t = (bands > 0.2)[..., None]
    img = np.where(t, indigo, paper)
    img = np.where((np.abs(bands - 0.2) < 0.08)[..., None], crest, img)
    grain = rng.normal(0, 6, (size, size, 1))
    return Image.fromarray(np.clip(img + grain, 0, 255).astype(np.uint8))


def halftone(size: int, rng: np.random.Generator) -> Image.Image:
    """Pop-art halftone: magenta dots growing across a yellow field, black outlines."""
    img = Image.new("RGB", (size, size), (250, 220, 40))
    draw = ImageDraw.Draw(img)
    step = size // 16
    for i in range(17):
        for j in range(17):
            r = step * 0.45 * (0.3 + 0.7 * (i + j) / 32)
            cx, cy = i * step + (j % 2) * step / 2, j * step
            draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=(230, 30, 120))
    for _ in range(2):
        pts = [(float(a), float(b)) for a, b in rng.integers(0, size, (3, 2))]
        draw.line(pts, fill=(10, 10, 10), width=max(2, size // 64))
    return img


def watercolour(size: int, rng: np.random.Generator) -> Image.Image:
    """Soft pigment blooms in teal and rose on textured paper."""
    base = np.full((size, size, 3), 245, np.float32)
    x, y = _grid(size)
    palette = np.array([[60, 150, 160], [220, 120, 140], [240, 190, 90], [90, 110, 180]], np.float32)
    for _ in range(22):
        cx, cy, rad = rng.random(), rng.random(), 0.08 + 0.2 * rng.random()
        colour = palette[rng.integers(len(palette))]
        d = np.sqrt((x - cx) ** 2 + (y - cy) ** 2) / rad
        alpha = np.clip(1 - d, 0, 1) ** 0.8 * 0.75
        edge = np.exp(-((d - 0.95) ** 2) / 0.004) * 0.25  # darker pigment rim
        a = np.clip(alpha + edge, 0, 0.8)[..., None]
        base = base * (1 - a) + colour * a
    paper = rng.normal(0, 5, (size, size, 1))
    img = Image.fromarray(np.clip(base + paper, 0, 255).astype(np.uint8))
    return img.filter(ImageFilter.GaussianBlur(radius=size / 256))


def ink(size: int, rng: np.random.Generator) -> Image.Image:
    """Ink hatching: dense black strokes on off-white."""
    img = Image.new("RGB", (size, size), (244, 240, 228))
    draw = ImageDraw.Draw(img)
    for _ in range(220):
        x0, y0 = rng.integers(0, size, 2)
        angle = rng.normal(0.8, 0.25)
        length = rng.integers(size // 12, size // 4)
        x1, y1 = x0 + np.cos(angle) * length, y0 + np.sin(angle) * length
        draw.line([(float(x0), float(y0)), (float(x1), float(y1))], fill=(20, 20, 25),
                  width=int(rng.integers(1, 3)))
    return img


def neon(size: int, rng: np.random.Generator) -> Image.Image:
    """Neon glow: cyan and violet curves blurred into a dark blue night."""
    img = Image.new("RGB", (size, size), (12, 10, 40))
    glow = Image.new("RGB", (size, size), (0, 0, 0))
    draw = ImageDraw.Draw(glow)
    colours = [(40, 240, 255), (200, 60, 255), (255, 60, 160)]
    for k in range(9):
        t = np.linspace(0, 1, 60)
        a, b, c = rng.random(3) * 6
        xs = (0.5 + 0.45 * np.sin(t * a + c)) * size
        ys = (0.5 + 0.45 * np.cos(t * b + k)) * size
        draw.line(list(zip(xs.tolist(), ys.tolist())), fill=colours[k % 3], width=max(2, size // 80))
    blurred = glow.filter(ImageFilter.GaussianBlur(radius=size / 40))
    out = np.clip(np.asarray(img, np.float32) + np.asarray(blurred, np.float32) * 1.6
                  + np.asarray(glow, np.float32), 0, 255)
    return Image.fromarray(out.astype(np.uint8))


STYLES = {"waves": waves, "halftone": halftone, "watercolour": watercolour, "ink": ink, "neon": neon}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "styles")
    parser.add_argument("--size", type=int, default=256)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for i, (name, draw) in enumerate(STYLES.items()):
        draw(args.size, np.random.default_rng(1000 + i)).save(args.out / f"{name}.png", optimize=True)
        print(args.out / f"{name}.png")


if __name__ == "__main__":
    main()
