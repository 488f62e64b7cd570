"""Offline face parsing into the paper's three regions from 68 landmarks, GrabCut and colour models.

1. Face: the jaw line closed by an estimated forehead (an elliptic arc above the brows).
2. Person vs. background: GrabCut seeded by the landmarks (the face and the neck for sure; a head
   ellipse and the shoulders below the chin probably; the rest probably background).
3. Hair vs. the rest of the person: k-means colour centres learnt where each class surely is (hair:
   a band of the person around the forehead, minus skin-like colours; skin: the face without eyes,
   brows and mouth; clothes: the person well below the chin; background: GrabCut's background);
   each person pixel outside the inner face goes to the nearest. Bangs over the estimated forehead
   become hair; skin-coloured person pixels next to the face (ears) join the face; neck and
   clothes stay background.

Everything but the face polygon runs on a small copy (``WORK_SIZE``): GrabCut's cost grows fast
with the pixel count.
"""

from __future__ import annotations

import cv2
import numpy as np

from hypernst_cli.faces.alignment import key_points
from hypernst_cli.faces.regions import BACKGROUND, FACE, HAIR

WORK_SIZE = 128
PERSON_ITERATIONS = 4


class _Frame:
    """The face's own axes: ``up`` from the mouth to the eyes, ``d`` the eye-to-mouth distance."""

    def __init__(self, landmarks: np.ndarray) -> None:
        eye_left, eye_right, mouth = key_points(landmarks)
        self.eyes = (eye_left + eye_right) * 0.5
        up = self.eyes - mouth
        self.d = float(np.hypot(*up))
        if self.d < 1e-6:
            raise ValueError("degenerate landmarks: eyes and mouth coincide")
        self.up = up / self.d
        self.right = np.array([-self.up[1], self.up[0]])  # image right for an upright face

    def height(self, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        """Signed height of pixels above the eyes, in units of ``d`` (positive: above)."""
        return ((xs - self.eyes[0]) * self.up[0] + (ys - self.eyes[1]) * self.up[1]) / self.d

    def side(self, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        """Signed distance to the right of the face's vertical axis, in units of ``d``."""
        return ((xs - self.eyes[0]) * self.right[0] + (ys - self.eyes[1]) * self.right[1]) / self.d


def face_polygon(landmarks: np.ndarray, forehead: float = 0.85) -> np.ndarray:
    """The face outline: jaw points 0-16, then an elliptic arc over an estimated forehead whose top
    lies ``forehead`` eye-to-mouth distances above the brows."""
    lm = np.asarray(landmarks, dtype=np.float64)
    frame = _Frame(lm)
    jaw = lm[0:17]
    brow_top = max(float(((lm[17:27] - frame.eyes) @ frame.up).max()), 0.0)
    centre = (jaw[0] + jaw[16]) * 0.5
    across = jaw[16] - jaw[0]
    a = float(np.hypot(*across)) * 0.5
    axis = across / max(2 * a, 1e-6)
    top = frame.eyes + frame.up * (brow_top + forehead * frame.d)
    b = max(float((top - centre) @ frame.up), 1.0)
    # the arc runs from the jaw's right end (point 16) over the top back to its left end (point 0)
    theta = np.linspace(0.0, np.pi, 25)[1:-1]
    arc = centre + np.cos(theta)[:, None] * a * axis + np.sin(theta)[:, None] * b * frame.up
    return np.concatenate([jaw, arc], axis=0)


def _fill(shape: tuple[int, int], polygon: np.ndarray) -> np.ndarray:
    mask = np.zeros(shape, np.uint8)
    cv2.fillPoly(mask, [np.round(polygon * 16).astype(np.int32)], 1, lineType=cv2.LINE_8, shift=4)
    return mask.astype(bool)


def _ellipse(shape: tuple[int, int], frame: _Frame, centre_h: float, half_w: float, half_h: float) -> np.ndarray:
    """Pixels inside an ellipse on the face axes (all sizes in units of ``d``)."""
    ys, xs = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float64)
    h = frame.height(xs, ys) - centre_h
    s = frame.side(xs, ys)
    return (s / half_w) ** 2 + (h / half_h) ** 2 <= 1.0


def _grabcut(image: np.ndarray, seeds: np.ndarray, iterations: int) -> np.ndarray | None:
    """Foreground of a GrabCut started from ``seeds`` (cv2.GC_* values); None when the seeds do
    not give both models something to learn from."""
    fg = np.isin(seeds, (cv2.GC_FGD, cv2.GC_PR_FGD)).sum()
    bg = np.isin(seeds, (cv2.GC_BGD, cv2.GC_PR_BGD)).sum()
    if fg < 16 or bg < 16:
        return None
    mask = seeds.copy()
    bgd = np.zeros((1, 65), np.float64)
    fgd = np.zeros((1, 65), np.float64)
    # GrabCut seeds its colour models by k-means on OpenCV's global RNG: without a fixed seed a
    # face's mask would depend on what was parsed before it in the process
    cv2.setRNGSeed(0)
    try:
        cv2.grabCut(image, mask, None, bgd, fgd, iterations, cv2.GC_INIT_WITH_MASK)
    except cv2.error:  # e.g. a flat image where a colour model cannot be fitted
        return None
    return np.isin(mask, (cv2.GC_FGD, cv2.GC_PR_FGD))


def _largest_touching(mask: np.ndarray, anchor: np.ndarray) -> np.ndarray:
    """The connected parts of ``mask`` that overlap ``anchor``, with holes filled."""
    n, comp = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
    keep = np.zeros(n, bool)
    keep[np.unique(comp[anchor & mask])] = True
    keep[0] = False
    out = keep[comp]
    return _fill_holes(out)


def _fill_holes(mask: np.ndarray) -> np.ndarray:
    inv = (~mask).astype(np.uint8)
    n, comp = cv2.connectedComponents(inv, connectivity=4)
    border = np.unique(np.concatenate([comp[0], comp[-1], comp[:, 0], comp[:, -1]]))
    holes = ~np.isin(comp, border) & (comp > 0)
    return mask | holes


def parse_with_landmarks(
    image: np.ndarray, landmarks: np.ndarray, *, trace: dict[str, np.ndarray] | None = None
) -> np.ndarray:
    """Region labels (H, W) uint8 of a portrait (ideally FFHQ-aligned) from its 68 landmarks.

    ``trace``, when given, receives the intermediate masks at the working size (for inspection).
    """
    img = np.asarray(image)
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise ValueError("expected an RGB uint8 image (H, W, 3)")
    lm = np.asarray(landmarks, dtype=np.float64)
    if lm.shape != (68, 2):
        raise ValueError(f"the landmark parser needs 68 landmarks, got {lm.shape}")
    height, width = img.shape[:2]
    scale = min(1.0, WORK_SIZE / max(height, width))
    small = img if scale >= 1.0 else cv2.resize(
        img, (max(1, round(width * scale)), max(1, round(height * scale))), interpolation=cv2.INTER_AREA
    )
    lm_s = (lm + 0.5) * scale - 0.5
    shape = small.shape[:2]
    frame = _Frame(lm_s)
    ys, xs = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float64)
    h = frame.height(xs, ys)
    s = frame.side(xs, ys)

    polygon = face_polygon(lm_s)
    face = _fill(shape, polygon)
    brow_top = float(((lm_s[17:27] - frame.eyes) @ frame.up).max()) / frame.d
    chin = float((lm_s[8] - frame.eyes) @ frame.up) / frame.d  # negative: below the eyes
    jaw_half = float(np.hypot(*(lm_s[16] - lm_s[0]))) * 0.5 / frame.d
    forehead = face & (h > brow_top + 0.15)
    inner_face = face & ~forehead
    core = cv2.erode(inner_face.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    neck = (h < chin) & (h > chin - 0.45) & (np.abs(s) < jaw_half * 0.45)

    # --- 1. person vs. background
    seeds = np.full(shape, cv2.GC_PR_BGD, np.uint8)
    head = _ellipse(shape, frame, centre_h=0.45, half_w=jaw_half * 1.7, half_h=2.2)
    shoulders = (h < chin + 0.2) & (np.abs(s) < jaw_half * (0.9 + 1.2 * np.clip(chin - h, 0, None)))
    seeds[head | shoulders] = cv2.GC_PR_FGD
    seeds[face] = cv2.GC_PR_FGD
    seeds[core | neck] = cv2.GC_FGD
    fg = _grabcut(small, seeds, PERSON_ITERATIONS)
    person = face | neck if fg is None else fg | core | neck
    person = _largest_touching(person, core)
    person = _open(person, 1)
    if trace is not None:
        trace.update(person_seeds=seeds.copy(), person=person)

    # --- 2. hair vs. the rest of the person, by colour: the person's pixels are given to the
    # nearest of three colour models (hair, skin, clothes) learnt from where each surely is.
    lab = cv2.cvtColor(small, cv2.COLOR_RGB2LAB).astype(np.float32)
    features = lab * np.array([0.7, 1.0, 1.0], np.float32)  # lightness varies with the lighting
    skin_sample = inner_face & ~_features_mask(shape, lm_s, frame)
    # a band around the forehead: hair, if there is any
    band = cv2.dilate(face.astype(np.uint8), _disk(max(1, round(0.45 * frame.d)))).astype(bool)
    ring = band & person & ~face & (h > brow_top + 0.1)
    clothes_sample = person & (h < chin - 0.6)
    skin_c = _centres(features[skin_sample], 3)
    hair_c = _centres(features[ring], 4)
    if skin_c is not None and hair_c is not None:
        # ring colours that look like skin are a bald scalp or a high forehead, not hair
        hair_c = hair_c[_nearest(hair_c, skin_c) > SKIN_MARGIN]
    hair = np.zeros(shape, bool)
    if skin_c is not None and hair_c is not None and len(hair_c):
        candidates = person & ~inner_face
        f = features[candidates]
        d_hair = _nearest(f, hair_c)
        is_hair = d_hair < _nearest(f, skin_c)
        clothes_c = _centres(features[clothes_sample], 3)
        if clothes_c is not None:
            below = h[candidates] < chin
            is_hair &= ~below | (d_hair < _nearest(f, clothes_c))
        background_c = _centres(features[~person], 5)
        if background_c is not None:  # where GrabCut let some background into the person
            is_hair &= d_hair < _nearest(f, background_c)
        hair[candidates] = is_hair
        hair = cv2.medianBlur(hair.astype(np.uint8), 5).astype(bool) & candidates
        hair = _largest_touching(hair, ring | forehead) & ~inner_face
    hair = _open(hair, 1)
    if trace is not None:
        trace.update(hair=hair, face=face, small=small, skin_sample=skin_sample, ring=ring)

    # --- 3. labels, drawn at full resolution (smooth region edges from the small masks)
    labels = np.zeros((height, width), np.uint8)
    near_face = cv2.dilate(face.astype(np.uint8), _disk(max(1, round(0.35 * frame.d)))).astype(bool)
    extra_face = person & near_face & (h > chin) & ~hair
    face_full = _fill((height, width), face_polygon(lm))
    up_extra = _upsample(extra_face, (height, width))
    up_hair = _upsample(hair, (height, width))
    labels[face_full | up_extra] = FACE
    labels[up_hair & ~(face_full & ~_upsample(forehead, (height, width)))] = HAIR
    labels[~(face_full | up_extra | up_hair)] = BACKGROUND
    return labels


SKIN_MARGIN = 10.0  # Lab distance (lightness halved) under which a colour counts as skin


def _features_mask(shape: tuple[int, int], lm: np.ndarray, frame: _Frame) -> np.ndarray:
    """Eyes, brows, nostrils and mouth (dilated): inside the face but not skin-coloured."""
    mask = np.zeros(shape, np.uint8)
    for part in (lm[17:22], lm[22:27], lm[36:42], lm[42:48], lm[31:36], lm[48:60]):
        cv2.fillConvexPoly(mask, np.round(cv2.convexHull(part.astype(np.float32))).astype(np.int32), 1)
    r = max(1, round(0.12 * frame.d))
    return cv2.dilate(mask, _disk(r)).astype(bool)


def _centres(samples: np.ndarray, k: int) -> np.ndarray | None:
    """k-means colour centres of a sample (fewer for small samples); None when too small."""
    n = len(samples)
    if n < 12:
        return None
    k = max(1, min(k, n // 12))
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 20, 0.5)
    cv2.setRNGSeed(0)  # deterministic masks
    _, _, centres = cv2.kmeans(samples.astype(np.float32), k, None, criteria, 2, cv2.KMEANS_PP_CENTERS)
    return centres


def _nearest(x: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Distance of each row of ``x`` to its nearest centre."""
    d = ((x[:, None, :] - centres[None, :, :]) ** 2).sum(axis=2)
    return np.sqrt(d.min(axis=1))


def _open(mask: np.ndarray, radius: int) -> np.ndarray:
    k = _disk(radius)
    return cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_OPEN, k).astype(bool)


def _disk(radius: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


def _upsample(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A small binary mask at ``size`` with smooth edges (linear interpolation, then 0.5)."""
    if mask.shape == size:
        return mask
    up = cv2.resize(mask.astype(np.float32), (size[1], size[0]), interpolation=cv2.INTER_LINEAR)
    return up > 0.5
