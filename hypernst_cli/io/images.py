"""The one image loader and the one image writer.

``load_image`` turns any supported file into an RGB ``uint8`` array of shape (H, W, 3): EXIF
orientation applied, transparency composited on white, CMYK / palette / grayscale / 16-bit
converted. Anything unreadable raises ``ImageReadError`` naming the file; an image over the
pixel limit raises ``ImageTooLargeError`` before it is decoded.

``save_image`` writes atomically (temp file + rename), picks the format from the suffix, creates
parent folders, and refuses to overwrite any file this process loaded as an input.
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from hypernst_cli.errors import (
    ImageReadError,
    ImageTooLargeError,
    InputError,
    OutputError,
)
from hypernst_cli.io.atomic import atomic_path, protect_input

#: Default pixel limit (width x height): 100 megapixels, above any camera photo people stylize.
DEFAULT_MAX_PIXELS = 100_000_000

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif")

_WRITE_FORMATS = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".webp": "WEBP",
    ".bmp": "BMP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
}

# We do our own pixel check (with a clear error); PIL's warning/bomb error stays as a backstop
# at 2x its own limit, which we lift to ours.
Image.MAX_IMAGE_PIXELS = None


def max_pixels_default() -> int:
    env = os.environ.get("HYPERNST_MAX_PIXELS")
    if env:
        try:
            value = float(env)
        except ValueError:
            value = float("nan")
        if not (value >= 1 and value != float("inf")):  # a typo must not lift or break the limit
            from hypernst_cli.errors import UsageError

            raise UsageError(f"HYPERNST_MAX_PIXELS={env} is not a number of pixels",
                             hint=f"set a whole number >= 1, e.g. HYPERNST_MAX_PIXELS="
                                  f"{DEFAULT_MAX_PIXELS}, the default, or unset it")
        return int(value)
    return DEFAULT_MAX_PIXELS


def load_image(path: str | Path, *, max_pixels: int | None = None) -> np.ndarray:
    """Read an image file as an RGB uint8 array (H, W, 3)."""
    p = Path(path)
    if not p.exists():
        raise InputError(p, "no such file")
    if p.is_dir():
        raise InputError(p, "is a folder, not an image file")
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise ImageReadError(p, f"cannot read file ({exc.strerror})") from exc
    protect_input(p)
    return decode_image(data, name=p, max_pixels=max_pixels)


def decode_image(
    data: bytes, *, name: str | Path = "<bytes>", max_pixels: int | None = None
) -> np.ndarray:
    """Decode image bytes as an RGB uint8 array; ``name`` is used in error messages."""
    limit = max_pixels_default() if max_pixels is None else max_pixels
    if not data:
        raise ImageReadError(name, "file is empty (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            img = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        raise ImageTooLargeError(name, str(exc)) from exc
    except Exception as exc:  # PIL raises many types for non-images
        raise ImageReadError(name, "not a readable image file", hint="expected PNG, JPEG, WebP, BMP, TIFF or GIF") from exc
    w, h = img.size
    if w * h > limit:
        raise ImageTooLargeError(
            name,
            f"image is {w}x{h} = {w * h:,} pixels, over the limit of {limit:,}",
            hint="downscale it, or raise the limit with HYPERNST_MAX_PIXELS",
        )
    if w < 1 or h < 1:
        raise ImageReadError(name, f"image has no pixels ({w}x{h})")
    try:
        img.load()
        img = ImageOps.exif_transpose(img)  # returns a copy with orientation applied
        return _to_rgb_array(img)
    except Exception as exc:
        reason = str(exc) or type(exc).__name__
        if "truncated" in reason.lower():
            reason = "image file is truncated (incomplete download or copy?)"
        raise ImageReadError(name, f"cannot decode image: {reason}") from exc


def _composite_on_white(rgba: Image.Image) -> Image.Image:
    background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")


def _to_rgb_array(img: Image.Image) -> np.ndarray:
    mode = img.mode
    if mode == "RGB":
        out = img
    elif mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        mode == "P" and "transparency" in img.info
    ) or (mode in ("L", "RGB") and "transparency" in img.info):
        out = _composite_on_white(img.convert("RGBA"))
    elif mode.startswith("I") or mode == "F":
        out = Image.fromarray(_high_depth_to_uint8(img), mode="L").convert("RGB")
    else:  # L, 1, P, CMYK, YCbCr, LAB, HSV, ...
        out = img.convert("RGB")
    arr = np.array(out, dtype=np.uint8)  # a writable copy
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"unsupported image mode {mode}")
    return arr


def _high_depth_to_uint8(img: Image.Image) -> np.ndarray:
    """16-bit (I;16*, I) and float (F) grayscale to 8 bits."""
    arr = np.asarray(img)
    if img.mode == "F":
        a = arr.astype(np.float64)
        if np.nanmax(a) <= 1.0:  # float images are usually 0..1
            a = a * 255.0
        return np.clip(np.nan_to_num(a), 0, 255).round().astype(np.uint8)
    a = arr.astype(np.float64)
    top = 65535.0 if a.max(initial=0) <= 65535 else float(a.max())
    return np.clip(a * (255.0 / top), 0, 255).round().astype(np.uint8)


def to_pil(image: Any) -> Image.Image:
    """Accept a PIL image or a uint8 array (H, W), (H, W, 3) or (H, W, 4)."""
    if isinstance(image, Image.Image):
        return image
    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        raise TypeError(f"expected a uint8 array, got {arr.dtype}")
    if arr.ndim == 2:
        return Image.fromarray(arr, mode="L")
    if arr.ndim == 3 and arr.shape[2] in (3, 4):
        return Image.fromarray(arr, mode="RGB" if arr.shape[2] == 3 else "RGBA")
    raise TypeError(f"expected (H, W), (H, W, 3) or (H, W, 4), got {arr.shape}")


def image_format_for(path: str | Path) -> str:
    suffix = Path(path).suffix.lower()
    try:
        return _WRITE_FORMATS[suffix]
    except KeyError:
        raise OutputError(
            f"{path}: cannot tell the image format from the suffix '{suffix or '(none)'}'",
            hint="use .png, .jpg, .webp, .bmp or .tif",
        ) from None


def save_image(image: Any, path: str | Path, *, quality: int = 95) -> Path:
    """Write ``image`` to ``path`` atomically; the format comes from the suffix."""
    fmt = image_format_for(path)
    pil = to_pil(image)
    if fmt == "JPEG" and pil.mode not in ("RGB", "L"):
        pil = pil.convert("RGB")
    kwargs: dict[str, Any] = {}
    if fmt in ("JPEG", "WEBP"):
        kwargs["quality"] = quality
    elif fmt == "PNG":
        kwargs["compress_level"] = 3  # ~3x faster than the default 6, files ~10 % larger
    with atomic_path(path) as tmp:
        pil.save(tmp, format=fmt, **kwargs)
    return Path(path)


def save_gif(frames: list[Any], path: str | Path, *, duration_ms: int = 120, loop: int = 0) -> Path:
    """Write an animated GIF atomically."""
    if Path(path).suffix.lower() != ".gif":
        raise OutputError(f"{path}: an animation must be written to a .gif file")
    if not frames:
        raise OutputError(f"{path}: no frames to write")
    pils = [to_pil(f).convert("RGB") for f in frames]
    with atomic_path(path) as tmp:
        pils[0].save(
            tmp, format="GIF", save_all=True, append_images=pils[1:], duration=duration_ms, loop=loop
        )
    return Path(path)
