"""FFHQ alignment: the oriented crop square of NVlabs/ffhq-dataset's ``recreate_aligned_images``.

From the eye centres and the mouth corners: the crop is centred a tenth of the way from the eye
midpoint to the mouth midpoint, its half-side is the larger of 2x the eye distance and 1.8x the
eye-to-mouth distance, and it is rotated so that the eyes are level. Instead of FFHQ's
shrink / crop / pad / transform / resize steps we cut the region around the quad, shrink it with
area averaging (antialiasing) to about the output scale, reflect-pad it with a blurred border when the
quad leaves the image, and do one affine warp to the output square.
"""

from __future__ import annotations

import cv2
import numpy as np

from hypernst_cli.faces.types import apply_transform

#: Where FFHQ crops put the eyes and the mouth centre, as fractions of the crop side.
FFHQ_LEFT_EYE = (0.375, 0.477)
FFHQ_RIGHT_EYE = (0.625, 0.476)
FFHQ_MOUTH = (0.498, 0.716)


def key_points(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(left eye centre, right eye centre, mouth centre) from 68 or 5 landmarks.

    68 points: the mean of each eye's six contour points and the mean of the outer mouth corners
    (points 48 and 54), as FFHQ does. 5 points (RetinaFace): eyes, nose, mouth corners.
    """
    lm = np.asarray(landmarks, dtype=np.float64)
    if lm.shape == (68, 2):
        eye_left = lm[36:42].mean(axis=0)
        eye_right = lm[42:48].mean(axis=0)
        mouth = (lm[48] + lm[54]) * 0.5
    elif lm.shape == (5, 2):
        eye_left, eye_right = lm[0], lm[1]
        mouth = (lm[3] + lm[4]) * 0.5
    else:
        raise ValueError(f"expected 68 or 5 landmarks, got an array of shape {lm.shape}")
    return eye_left, eye_right, mouth


def ffhq_quad(landmarks: np.ndarray) -> np.ndarray:
    """The FFHQ crop quad (4, 2): top-left, bottom-left, bottom-right, top-right."""
    eye_left, eye_right, mouth = key_points(landmarks)
    eye_avg = (eye_left + eye_right) * 0.5
    eye_to_eye = eye_right - eye_left
    eye_to_mouth = mouth - eye_avg
    # x: the eye direction blended with the eye-to-mouth direction turned by 90 degrees, so the
    # crop stays upright when the eyes are level but the mouth is off-centre (or the reverse).
    x = eye_to_eye - np.array([-eye_to_mouth[1], eye_to_mouth[0]])
    norm = np.hypot(*x)
    if not np.isfinite(norm) or norm < 1e-6:
        raise ValueError("degenerate landmarks: eyes and mouth coincide")
    x = x / norm * max(np.hypot(*eye_to_eye) * 2.0, np.hypot(*eye_to_mouth) * 1.8)
    y = np.array([-x[1], x[0]])
    c = eye_avg + eye_to_mouth * 0.1
    return np.stack([c - x - y, c - x + y, c + x + y, c + x - y])


def quad_to_transform(quad: np.ndarray, size: int) -> np.ndarray:
    """3x3 matrix from pixel coordinates of a ``size`` crop to source coordinates.

    The quad's corners are the crop's outer pixel *edges* (PIL's QUAD convention with FFHQ's
    ``quad + 0.5``): a crop pixel centre u sits at (u + 0.5) / size along each side.
    """
    q = np.asarray(quad, dtype=np.float64)
    ex = (q[3] - q[0]) / size  # one crop pixel along x, in source pixels
    ey = (q[1] - q[0]) / size
    origin = q[0] + 0.5 * (ex + ey)
    return np.array([[ex[0], ey[0], origin[0]], [ex[1], ey[1], origin[1]], [0.0, 0.0, 1.0]])


def warp_to_crop(
    image: np.ndarray, quad: np.ndarray, size: int, *, pad_blur: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Cut the FFHQ crop of ``quad`` out of ``image`` at ``size`` pixels.

    Returns (crop RGB uint8 (size, size, 3), 3x3 crop -> source transform).
    """
    img = np.ascontiguousarray(image)
    height, width = img.shape[:2]
    q = np.asarray(quad, dtype=np.float64)
    transform = quad_to_transform(q, size)
    qsize = float(np.hypot(*(q[3] - q[0])))
    border = max(int(round(qsize * 0.1)), 3)

    # 1. the region around the quad (plus a border for the interpolation kernel)
    lo = np.floor(q.min(axis=0)).astype(int) - border
    hi = np.ceil(q.max(axis=0)).astype(int) + border + 1
    x0, y0 = max(lo[0], 0), max(lo[1], 0)
    x1, y1 = min(hi[0], width), min(hi[1], height)
    if x1 <= x0 or y1 <= y0:
        raise ValueError("the face quad lies entirely outside the image")
    region = img[y0:y1, x0:x1]
    # source -> working image: translate by the region's origin ...
    work = np.array([[1.0, 0.0, -x0], [0.0, 1.0, -y0], [0.0, 0.0, 1.0]])
    pads = [x0 - lo[0], y0 - lo[1], hi[0] - x1, hi[1] - y1]  # left, top, right, bottom

    # 2. ... then shrink with area averaging when the crop is smaller than the quad
    scale = size / qsize
    if scale < 0.999:
        new_w = max(1, int(round(region.shape[1] * scale)))
        new_h = max(1, int(round(region.shape[0] * scale)))
        sx, sy = new_w / region.shape[1], new_h / region.shape[0]
        region = cv2.resize(region, (new_w, new_h), interpolation=cv2.INTER_AREA)
        # pixel edges scale: u' = (u + 0.5) * s - 0.5
        work = np.array([[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5], [0, 0, 1.0]]) @ work
        pads = [int(np.ceil(p * s)) for p, s in zip(pads, (sx, sy, sx, sy), strict=True)]
        qsize *= scale

    # 3. reflect-pad (with a blurred, fading border) when the quad leaves the image
    if max(pads) > 0:
        region, (left, top) = _pad_region(region, pads, qsize, blur=pad_blur)
        work = np.array([[1.0, 0.0, left], [0.0, 1.0, top], [0, 0, 1.0]]) @ work

    # 4. one affine warp to the output square
    m = (work @ transform)[:2]
    interp = cv2.INTER_LINEAR if scale < 1.0 else cv2.INTER_CUBIC
    crop = cv2.warpAffine(
        region,
        m,
        (size, size),
        flags=interp | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REFLECT_101,
    )
    return crop, transform


def _pad_region(
    region: np.ndarray, pads: list[int], qsize: float, *, blur: bool
) -> tuple[np.ndarray, tuple[int, int]]:
    """FFHQ-style padding: mirror the image out, then blur the mirrored part and fade it towards the
    median colour, so a face at the edge of a photo gets a plausible, unobtrusive surrounding.

    Returns the padded image and the (left, top) padding actually applied."""
    left, top, right, bottom = (max(0, int(p)) for p in pads)
    # FFHQ widens the padding to 30 % of the quad so the fade is gradual
    grow = int(round(qsize * 0.3))
    left, top, right, bottom = (max(p, grow) if p > 0 else 0 for p in (left, top, right, bottom))
    padded = np.pad(region, ((top, bottom), (left, right), (0, 0)), mode="symmetric")
    if not blur:
        return padded, (left, top)
    h, w = padded.shape[:2]
    img = padded.astype(np.float32)
    xs = np.arange(w, dtype=np.float32)[None, :]
    ys = np.arange(h, dtype=np.float32)[:, None]
    # mask: 0 at the real image's edge, rising to 1 at the outer edge of the padding (negative inside)
    ramps = [np.full((h, w), -np.inf, dtype=np.float32)]
    if left:
        ramps.append(np.broadcast_to(1.0 - xs / left, (h, w)))
    if right:
        ramps.append(np.broadcast_to(1.0 - (w - 1 - xs) / right, (h, w)))
    if top:
        ramps.append(np.broadcast_to(1.0 - ys / top, (h, w)))
    if bottom:
        ramps.append(np.broadcast_to(1.0 - (h - 1 - ys) / bottom, (h, w)))
    mask = np.maximum.reduce(ramps)[..., None]
    sigma = max(qsize * 0.02, 0.5)
    blurred = cv2.GaussianBlur(img, (0, 0), sigmaX=sigma, sigmaY=sigma)
    img += (blurred - img) * np.clip(mask * 3.0 + 1.0, 0.0, 1.0)
    inner = region.reshape(-1, 3)
    img += (np.median(inner, axis=0).astype(np.float32) - img) * np.clip(mask, 0.0, 1.0)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8), (left, top)


def align_face(
    image: np.ndarray, landmarks: np.ndarray, size: int, *, pad_blur: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Align one face: returns (crop, landmarks in the crop, quad, crop -> source transform)."""
    quad = ffhq_quad(landmarks)
    crop, transform = warp_to_crop(image, quad, size, pad_blur=pad_blur)
    crop_landmarks = apply_transform(np.linalg.inv(transform), landmarks)
    return crop, crop_landmarks, quad, transform


def template_points(size: int) -> np.ndarray:
    """FFHQ's average (left eye, right eye, mouth centre) in a ``size`` crop, pixel coordinates."""
    return np.array([FFHQ_LEFT_EYE, FFHQ_RIGHT_EYE, FFHQ_MOUTH]) * size - 0.5
