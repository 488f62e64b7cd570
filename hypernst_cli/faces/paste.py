"""Paste a (stylized) aligned crop back into its source photo with a feathered mask."""

from __future__ import annotations

import cv2
import numpy as np

from hypernst_cli.faces.regions import BACKGROUND
from hypernst_cli.faces.types import AlignedFace

#: Mask values below this count as zero: pixels outside the feather stay exactly the original.
MASK_FLOOR = 1.0 / 512.0


def crop_mask(size: int, feather: float, regions: np.ndarray | None = None) -> np.ndarray:
    """Blend weights (size, size) float32 in [0, 1] in crop coordinates.

    Without ``regions``: the crop square, inset and softened by a Gaussian feather of ``feather``
    times the crop side. With a region mask (any size): face and hair, grown by half the feather
    and softened the same way, kept inside the feathered square.
    """
    sigma = max(feather * size, 0.5)
    inset = int(round(2.0 * sigma))  # so the blurred edge fades out before the crop's border
    square = np.zeros((size, size), np.float32)
    if size - 2 * inset < 2:
        raise ValueError(f"feather {feather} is too wide for a {size} px crop")
    square[inset : size - inset, inset : size - inset] = 1.0
    square = cv2.GaussianBlur(square, (0, 0), sigmaX=sigma, sigmaY=sigma)
    if regions is None:
        return square
    lab = np.asarray(regions)
    if lab.shape != (size, size):
        lab = cv2.resize(lab.astype(np.uint8), (size, size), interpolation=cv2.INTER_NEAREST)
    fg = (lab != BACKGROUND).astype(np.uint8)
    shrink = max(1, int(round(sigma)))
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * shrink + 1, 2 * shrink + 1))
    fg = cv2.erode(fg, k).astype(np.float32)
    fg = cv2.GaussianBlur(fg, (0, 0), sigmaX=sigma, sigmaY=sigma)
    return np.minimum(fg, square)


def paste_back(
    original: np.ndarray,
    stylized: np.ndarray,
    aligned: AlignedFace,
    *,
    feather: float = 0.04,
    regions: np.ndarray | None = None,
) -> np.ndarray:
    """The full ``original`` photo with ``stylized`` (an aligned crop of any size) warped back into
    place through the inverse alignment and blended with a feathered mask.

    Pixels where the mask is zero are the original's, bit for bit.
    """
    orig = np.asarray(original)
    sty = np.asarray(stylized)
    if orig.ndim != 3 or orig.shape[2] != 3 or orig.dtype != np.uint8:
        raise ValueError("original must be an RGB uint8 image (H, W, 3)")
    if sty.ndim != 3 or sty.shape[2] != 3 or sty.shape[0] != sty.shape[1] or sty.dtype != np.uint8:
        raise ValueError("stylized must be a square RGB uint8 image (S, S, 3)")
    if orig.shape[:2] != tuple(aligned.source_shape):
        raise ValueError(
            f"original is {orig.shape[1]}x{orig.shape[0]} but the face was aligned from a "
            f"{aligned.source_shape[1]}x{aligned.source_shape[0]} image"
        )
    size = sty.shape[0]
    forward = aligned.transform_for_size(size)  # crop -> original

    # only the original's pixels under the quad are touched: warp into that window
    height, width = orig.shape[:2]
    corners = np.array([[-0.5, -0.5], [size - 0.5, -0.5], [-0.5, size - 0.5], [size - 0.5, size - 0.5]])
    pts = (np.c_[corners, np.ones(4)] @ forward.T)[:, :2]
    x0 = max(int(np.floor(pts[:, 0].min())) - 1, 0)
    y0 = max(int(np.floor(pts[:, 1].min())) - 1, 0)
    x1 = min(int(np.ceil(pts[:, 0].max())) + 2, width)
    y1 = min(int(np.ceil(pts[:, 1].max())) + 2, height)
    out = orig.copy()
    if x1 <= x0 or y1 <= y0:
        return out
    shift = np.array([[1.0, 0.0, -x0], [0.0, 1.0, -y0], [0.0, 0.0, 1.0]])
    m = (shift @ forward)[:2]
    win = (x1 - x0, y1 - y0)
    # a larger crop than the window needs is shrunk: area-average it first (antialiasing)
    scale = float(np.hypot(*forward[:2, 0]))  # window pixels per crop pixel
    src = sty
    if scale < 0.5:
        new = max(2, int(round(size * scale * 2)))
        src = cv2.resize(sty, (new, new), interpolation=cv2.INTER_AREA)
        m = (shift @ aligned.transform_for_size(new))[:2]
    warped = cv2.warpAffine(src, m, win, flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
    mask_crop = crop_mask(src.shape[0], feather, regions)
    mask = cv2.warpAffine(mask_crop, m, win, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                          borderValue=0.0)
    mask[mask < MASK_FLOOR] = 0.0
    region = out[y0:y1, x0:x1].astype(np.float32)
    alpha = mask[..., None]
    blended = region * (1.0 - alpha) + warped.astype(np.float32) * alpha
    touched = mask > 0
    out[y0:y1, x0:x1][touched] = np.clip(np.rint(blended[touched]), 0, 255).astype(np.uint8)
    return out
