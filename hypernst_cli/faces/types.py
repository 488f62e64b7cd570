"""What the face pipeline passes around: a detected face and an aligned face crop.

Coordinates are (x, y) in pixels with pixel *centres* at integers (dlib's and OpenCV's convention).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


def detection_scale(height: int, width: int, side: int) -> float:
    """The scale of the copy a detector sees: at most ``side`` x ``side`` pixels in area, never
    enlarged. By area, not by the longest side: a long strip (a 512 x 4096 scan) shrunk to
    ``side`` along its length leaves its faces too small to find, at no saving over a square."""
    return min(1.0, side / float(np.sqrt(max(1, height) * max(1, width))))


@dataclass
class DetectedFace:
    """One face found in an image.

    ``box`` is (left, top, right, bottom); ``landmarks`` is (68, 2) for dlib's predictor or (5, 2)
    for RetinaFace (left eye, right eye, nose tip, left and right mouth corners, as seen in the
    image); ``score`` is the detector's confidence (its scale depends on the detector).
    """

    box: np.ndarray
    landmarks: np.ndarray
    score: float
    detector: str = ""

    @property
    def area(self) -> float:
        x0, y0, x1, y1 = (float(v) for v in self.box)
        return max(0.0, x1 - x0) * max(0.0, y1 - y0)


@dataclass
class AlignedFace:
    """An FFHQ-aligned square crop and everything needed to map it back onto its source image.

    ``transform`` is the 3x3 matrix taking crop pixel coordinates to source pixel coordinates
    (homogeneous, column vectors); ``quad`` holds the crop's corners in the source image in the order
    top-left, bottom-left, bottom-right, top-right (as in NVlabs/ffhq-dataset).
    """

    image: np.ndarray  # (S, S, 3) RGB uint8
    landmarks: np.ndarray  # in crop coordinates
    landmarks_original: np.ndarray  # in source coordinates
    box: np.ndarray  # detection box in the source (left, top, right, bottom)
    quad: np.ndarray  # (4, 2) in the source
    transform: np.ndarray  # (3, 3) crop -> source
    source_shape: tuple[int, int]  # (height, width) of the source image
    score: float = 0.0
    backend: str = ""
    detector: str = ""
    index: int = 0  # rank among the faces of the source (0 = largest)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return int(self.image.shape[0])

    def transform_for_size(self, size: int) -> np.ndarray:
        """crop -> source matrix for a crop of ``size`` pixels (e.g. a stylized output at 1024)."""
        return self.transform @ _rescale(size, self.size)

    def to_source(self, points: np.ndarray, size: int | None = None) -> np.ndarray:
        """Map (N, 2) crop points (of a crop of ``size`` pixels, default ours) into the source."""
        m = self.transform if size is None else self.transform_for_size(size)
        return apply_transform(m, points)

    def to_crop(self, points: np.ndarray) -> np.ndarray:
        """Map (N, 2) source points into this crop."""
        return apply_transform(np.linalg.inv(self.transform), points)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready record (lists of floats) of everything but the pixels."""

        def r(a: np.ndarray) -> Any:
            return np.round(np.asarray(a, dtype=np.float64), 3).tolist()

        return {
            "size": self.size,
            "index": self.index,
            "backend": self.backend,
            "detector": self.detector,
            "score": round(float(self.score), 4),
            "source_size": [int(self.source_shape[1]), int(self.source_shape[0])],
            "box": r(self.box),
            "quad": r(self.quad),
            "transform": np.asarray(self.transform, dtype=np.float64).tolist(),
            "landmarks": r(self.landmarks),
            "landmarks_original": r(self.landmarks_original),
            **self.extra,
        }


def apply_transform(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a 3x3 homogeneous transform to (N, 2) points."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    h = np.concatenate([pts, np.ones((len(pts), 1))], axis=1) @ np.asarray(matrix).T
    return h[:, :2] / h[:, 2:3]


def _rescale(new: int, old: int) -> np.ndarray:
    """Pixel coordinates of a ``new``-pixel crop -> those of the same crop at ``old`` pixels.

    Pixel edges scale (u_e = u + 0.5), so centres map as u_old = (u_new + 0.5) * old / new - 0.5.
    """
    s = old / new
    return np.array([[s, 0.0, 0.5 * s - 0.5], [0.0, s, 0.5 * s - 0.5], [0.0, 0.0, 1.0]])
