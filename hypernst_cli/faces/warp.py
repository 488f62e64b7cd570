"""A dense warp from moved landmarks: how an edit moves the face's geometry.

An edit of a spatial model renders W+ moved along a direction, but its feature map F and the
content skip hold the unedited face's detail at the unedited face's places: added as they are,
they pin the geometry (a pose edit turns only the blur beneath them). ``landmark_flow`` turns the
landmarks of the plain renders G(w) and G(w_edit) into a backward map over the whole image,
so that the detail can be resampled to where the edit moved it (``pipeline.core.warp``).

The map is a thin-plate spline through the landmarks, with the image border pinned (points along
every side with no displacement), so the background far from the face stays where it was.
"""

from __future__ import annotations

import numpy as np

#: pinned points per image side (corners included)
BORDER_ANCHORS = 6
#: the spline's smoothing (in squared pixels at the landmarks' scale): landmarks found on soft
#: renders jitter by a pixel or two, and an exact interpolant would fold the map between them
SMOOTHING = 1.0


def border_points(size: int, per_side: int = BORDER_ANCHORS) -> np.ndarray:
    """(K, 2) points (x, y) along the four sides of a size x size image, corners once."""
    t = np.linspace(0.0, size - 1.0, per_side)
    top_bottom = [(x, y) for y in (0.0, size - 1.0) for x in t]
    sides = [(x, y) for x in (0.0, size - 1.0) for y in t[1:-1]]
    return np.asarray(top_bottom + sides, dtype=np.float64)


def landmark_flow(source: np.ndarray, moved: np.ndarray, size: int, *,
                  smoothing: float = SMOOTHING) -> np.ndarray:
    """The backward map of the warp that takes ``source`` points to ``moved`` points.

    ``source``, ``moved``: (N, 2) pixel coordinates (x, y) of the same landmarks in two pictures
    of ``size`` x ``size``. Returns float32 (size, size, 2): pixel p of the moved picture comes
    from p + flow[p] of the source picture (x offset first). Exactly zero when nothing moved.
    """
    src = np.asarray(source, dtype=np.float64)
    dst = np.asarray(moved, dtype=np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2:
        raise ValueError(f"expected two (N, 2) point arrays of one shape, got {src.shape} and "
                         f"{dst.shape}")
    if np.array_equal(src, dst):
        return np.zeros((size, size, 2), np.float32)
    from scipy.interpolate import RBFInterpolator

    border = border_points(size)
    points = np.concatenate([dst, border])
    shifts = np.concatenate([src - dst, np.zeros_like(border)])
    spline = RBFInterpolator(points, shifts, kernel="thin_plate_spline", smoothing=smoothing)
    ys, xs = np.mgrid[0:size, 0:size]
    grid = np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.float64)
    return spline(grid).reshape(size, size, 2).astype(np.float32)
