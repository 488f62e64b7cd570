"""Landmark measures of a face: how much it smiles and where it looks (yaw), from dlib's 68 points.

They label photos for fitting edit directions and check that an edit does what its name says.
Both are measured in the face's own frame, so they do not change when the face is moved, scaled or
rotated in the image (the same numbers from a photo and from its aligned crop):

- ``u``: the unit vector from the centre of the image-left eye (points 36-41) to the centre of the
  image-right eye (42-47); ``v``: ``u`` turned by +90 degrees, pointing down the face (image y
  grows downwards).
- ``eye_span``: the distance between the outer eye corners (36, 45), the unit of length.

``smile = (mouth_width + 2 * corner_lift) / eye_span`` where ``mouth_width = |p54 - p48|`` (outer
mouth corners) and ``corner_lift`` is how far the mouth corners sit above the lip centre (the
midpoint of the inner lip centres 62 and 66) along ``v``. A smile widens the mouth and lifts its
corners, so the measure grows with smiling (on the FFHQ test faces: about 0.7 for a neutral mouth,
above 1 for a broad open smile; small children's mouths score lower).

``yaw = 2 * <p30 - centre, u> / face_width``: the nose tip's (30) offset along ``u`` from the face
centre (the mean of the midpoints of the outer eye corners 36/45 and of the jaw extremes 0/16),
over the jaw width ``|<p16 - p0, u>|``. 0 is frontal; positive when the nose tip lies to the
image's right of the centre (the person turns towards the image's right, their own left); about
0.47 for the three-quarter view among the FFHQ test faces.

``measure_image`` finds the 68 points on an aligned face crop: by dlib's detector (``box="detect"``,
None when it finds no face) or by placing the predictor on the face box of the FFHQ layout
(``box="aligned"``: generated and aligned faces are where that layout puts them, so no detector is
needed, and a number always comes back).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

#: dlib 68-point indices used here
LEFT_EYE = slice(36, 42)  # image-left eye
RIGHT_EYE = slice(42, 48)
LEFT_EYE_OUTER, RIGHT_EYE_OUTER = 36, 45
JAW_LEFT, JAW_RIGHT = 0, 16
NOSE_TIP = 30
MOUTH_LEFT, MOUTH_RIGHT = 48, 54
INNER_LIP_TOP, INNER_LIP_BOTTOM = 62, 66

#: dlib's HOG face box on FFHQ-aligned crops, as fractions of the crop size (left, top, right,
#: bottom): the mean over the 12 aligned test faces (spread about 0.03).
FFHQ_FACE_BOX = (0.19, 0.31, 0.78, 0.91)

#: dlib's detector needs ~80 px faces: smaller crops are enlarged to this size first
DETECT_MIN_SIZE = 256

MEASURES = ("smile", "yaw")


def _check(lm: Any) -> np.ndarray:
    pts = np.asarray(lm, dtype=np.float64)
    if pts.shape != (68, 2):
        raise ValueError(f"expected dlib's 68 landmarks as a (68, 2) array, got shape {pts.shape}")
    return pts


def face_frame(lm: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """(u, v, eye_span): the face's horizontal and downward unit axes, and its unit of length."""
    pts = _check(lm)
    axis = pts[RIGHT_EYE].mean(0) - pts[LEFT_EYE].mean(0)
    norm = float(np.linalg.norm(axis))
    eye_span = float(np.linalg.norm(pts[RIGHT_EYE_OUTER] - pts[LEFT_EYE_OUTER]))
    if norm < 1e-9 or eye_span < 1e-9:
        raise ValueError("degenerate landmarks: the eyes coincide")
    u = axis / norm
    v = np.array([-u[1], u[0]])
    return u, v, eye_span


def smile_measure(lm: Any) -> float:
    """(mouth width + 2 * mouth-corner lift) / outer-eye span; grows with smiling (module docs)."""
    pts = _check(lm)
    u, v, eye_span = face_frame(pts)
    width = float(np.linalg.norm(pts[MOUTH_RIGHT] - pts[MOUTH_LEFT]))
    centre = (pts[INNER_LIP_TOP] + pts[INNER_LIP_BOTTOM]) / 2
    corners = (pts[MOUTH_LEFT] + pts[MOUTH_RIGHT]) / 2
    lift = float(np.dot(centre - corners, v))  # > 0: corners above the lip centre
    return (width + 2.0 * lift) / eye_span


def yaw_measure(lm: Any) -> float:
    """Signed yaw proxy: 2 * nose-tip offset from the face centre / jaw width (module docs).

    Positive when the nose tip lies to the image's right of the face centre.
    """
    pts = _check(lm)
    u, _, _ = face_frame(pts)
    centre = ((pts[LEFT_EYE_OUTER] + pts[RIGHT_EYE_OUTER]) / 2 + (pts[JAW_LEFT] + pts[JAW_RIGHT]) / 2) / 2
    width = abs(float(np.dot(pts[JAW_RIGHT] - pts[JAW_LEFT], u)))
    if width < 1e-9:
        raise ValueError("degenerate landmarks: the jaw has no width")
    return 2.0 * float(np.dot(pts[NOSE_TIP] - centre, u)) / width


def measure_landmarks(lm: Any) -> dict[str, float]:
    """Both measures of a (68, 2) landmark set."""
    return {"smile": smile_measure(lm), "yaw": yaw_measure(lm)}


def find_landmarks(image: np.ndarray, *, box: str = "detect") -> np.ndarray | None:
    """dlib's 68 points on an aligned face crop (RGB uint8), in its pixel coordinates.

    ``box``: "detect" runs dlib's detector (None when it finds no face); "aligned" puts the
    predictor on ``FFHQ_FACE_BOX``.
    """
    from hypernst_cli.faces.dlib_backend import DlibFaces

    if box not in ("detect", "aligned"):
        raise ValueError(f"unknown landmark box mode '{box}' (use detect or aligned)")
    img = np.asarray(image)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    img = np.ascontiguousarray(img[..., :3], dtype=np.uint8)
    height, width = img.shape[:2]
    scale = max(1.0, DETECT_MIN_SIZE / min(height, width))
    if scale > 1.0:
        import cv2

        img = cv2.resize(img, (int(round(width * scale)), int(round(height * scale))),
                         interpolation=cv2.INTER_CUBIC)
    faces = DlibFaces("hog")
    if box == "detect":
        found = faces.detect(img)
        if not found:
            return None
        lm = found[0].landmarks
    else:
        h, w = img.shape[:2]
        x0, y0, x1, y1 = FFHQ_FACE_BOX
        lm = faces.landmarks(img, np.array([x0 * w, y0 * h, x1 * w, y1 * h]))
    # pixel centres at integers: map back the same way as any coordinate
    return (lm + 0.5) / scale - 0.5


def measure_image(image: np.ndarray, *, box: str = "detect") -> dict[str, float] | None:
    """``measure_landmarks`` of the face in an aligned crop; None when no face is found."""
    lm = find_landmarks(image, box=box)
    if lm is None:
        return None
    try:
        return measure_landmarks(lm)
    except ValueError:  # degenerate points on something that is not a face
        return None


# --- trends along an edit -------------------------------------------------------------------------


def spearman(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Spearman's rank correlation (average ranks for ties); None when either side is constant
    or there are fewer than two pairs."""
    a, b = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError("spearman needs two 1-D sequences of the same length")
    if a.size < 2:
        return None
    ra, rb = _ranks(a), _ranks(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denom = float(np.sqrt((ra * ra).sum() * (rb * rb).sum()))
    return float((ra * rb).sum() / denom) if denom > 0 else None


def _ranks(x: np.ndarray) -> np.ndarray:
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(x.size, dtype=np.float64)
    ranks[order] = np.arange(x.size, dtype=np.float64)
    for value in np.unique(x):  # ties share their mean rank
        tied = x == value
        if tied.sum() > 1:
            ranks[tied] = ranks[tied].mean()
    return ranks


@dataclass(frozen=True)
class Trend:
    """How a measure moves along increasing edit strengths.

    ``sign``: +1 increasing, -1 decreasing, 0 neither (not monotonic, flat, or values missing).
    """

    monotonic: bool
    sign: int
    spearman: float | None
    change: float | None  # last - first of the measured values
    measured: int  # how many steps had a value

    @property
    def direction(self) -> str:
        return {1: "increasing", -1: "decreasing"}.get(self.sign, "none")

    def to_dict(self) -> dict[str, Any]:
        return {"monotonic": self.monotonic, "direction": self.direction,
                "spearman": None if self.spearman is None else round(self.spearman, 4),
                "change": None if self.change is None else round(self.change, 5),
                "measured": self.measured}


def monotonic_trend(strengths: Sequence[float], values: Sequence[float | None], *,
                    tolerance: float = 0.0) -> Trend:
    """Whether ``values`` (None: not measured) change monotonically with ``strengths``.

    Monotonic means every step was measured, no step goes against the overall direction by more
    than ``tolerance``, and the total change exceeds ``tolerance`` (a flat sequence is not).
    Spearman's correlation uses the measured steps.
    """
    if len(strengths) != len(values):
        raise ValueError("one value per strength is needed")
    pairs = sorted((float(s), v) for s, v in zip(strengths, values))
    known = [(s, float(v)) for s, v in pairs if v is not None and np.isfinite(v)]
    rho = spearman([s for s, _ in known], [v for _, v in known]) if len(known) >= 2 else None
    if len(known) < 2:
        return Trend(False, 0, rho, None, len(known))
    vals = np.array([v for _, v in known])
    change = float(vals[-1] - vals[0])
    steps = np.diff(vals)
    complete = len(known) == len(pairs)
    sign = 0
    if complete and change > tolerance and (steps >= -tolerance).all():
        sign = 1
    elif complete and change < -tolerance and (steps <= tolerance).all():
        sign = -1
    return Trend(sign != 0, sign, rho, change, len(known))
