"""dlib face detection (HOG, or the CNN 'mmod' detector) and its 68-point landmark predictor.

The model files come from the PyPI package face-recognition-models (offline). Detection runs on a
downscaled copy of large images (the detectors only need ~80 px faces); landmarks are predicted at
full resolution from the rescaled box.
"""

from __future__ import annotations

import functools
from typing import Any

import cv2
import numpy as np

from hypernst_cli.faces.dlib_models import dlib_model_path
from hypernst_cli.faces.types import DetectedFace

DETECTORS = ("hog", "cnn")

#: Longest side of the copy the detector sees. HOG finds faces from ~80 px (40 px upsampled once).
DETECT_MAX_SIDE = {"hog": 640, "cnn": 512}
#: Images at most this long (after downscaling) are upsampled once: small photos, 256 px portraits.
UPSAMPLE_BELOW = 400


class DlibFaces:
    """Loads dlib's detector and landmark predictor once; ``detect`` finds faces with 68 points."""

    def __init__(self, detector: str = "hog") -> None:
        if detector not in DETECTORS:
            raise ValueError(f"unknown dlib detector '{detector}' (use one of {DETECTORS})")
        self.detector_name = detector
        self._detector: Any = None
        self._predictor: Any = None

    # lazy: constructing a FaceProcessor costs nothing until the first image
    @property
    def detector(self) -> Any:
        if self._detector is None:
            import dlib

            if self.detector_name == "hog":
                self._detector = dlib.get_frontal_face_detector()
            else:
                self._detector = dlib.cnn_face_detection_model_v1(
                    str(dlib_model_path("cnn_detector"))
                )
        return self._detector

    @property
    def predictor(self) -> Any:
        if self._predictor is None:
            self._predictor = _shape_predictor(str(dlib_model_path("landmarks68")))
        return self._predictor

    def _run_detector(self, image: np.ndarray, upsample: int) -> list[tuple[np.ndarray, float]]:
        found = []
        if self.detector_name == "hog":
            rects, scores, _ = self.detector.run(image, upsample, 0.0)
            for r, s in zip(rects, scores, strict=True):
                found.append((np.array([r.left(), r.top(), r.right(), r.bottom()], float), float(s)))
        else:
            for d in self.detector(image, upsample):
                r = d.rect
                found.append(
                    (np.array([r.left(), r.top(), r.right(), r.bottom()], float), float(d.confidence))
                )
        return found

    def detect_boxes(self, image: np.ndarray) -> list[tuple[np.ndarray, float]]:
        """Face boxes (left, top, right, bottom) in ``image`` coordinates, with scores."""
        height, width = image.shape[:2]
        longest = max(height, width)
        max_side = DETECT_MAX_SIDE[self.detector_name]
        scale = min(1.0, max_side / longest)
        small = _resize(image, scale)
        upsample = 1 if max(small.shape[:2]) <= UPSAMPLE_BELOW else 0
        found = self._run_detector(small, upsample)
        if not found and upsample == 0:
            # small faces in a large photo: look again at a higher resolution, upsampled
            scale = min(1.0, 2 * max_side / longest)
            found = self._run_detector(_resize(image, scale), 1)
        # box corners are pixel centres: map them back the same way as any coordinate
        return [((box + 0.5) / scale - 0.5, score) for box, score in found]

    def landmarks(self, image: np.ndarray, box: np.ndarray) -> np.ndarray:
        """68 landmarks (68, 2) of the face in ``box`` (left, top, right, bottom)."""
        import dlib

        x0, y0, x1, y1 = (int(round(v)) for v in box)
        shape = self.predictor(image, dlib.rectangle(x0, y0, x1, y1))
        return np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64)

    def detect(self, image: np.ndarray) -> list[DetectedFace]:
        """All faces, largest first, each with 68 landmarks."""
        faces = [
            DetectedFace(box=box, landmarks=self.landmarks(image, box), score=score,
                         detector=f"dlib-{self.detector_name}")
            for box, score in self.detect_boxes(image)
        ]
        faces.sort(key=lambda f: f.area, reverse=True)
        return faces


@functools.lru_cache(maxsize=2)
def _shape_predictor(path: str) -> Any:
    """dlib's predictor takes ~0.7 s to load: share it between processors of one process."""
    import dlib

    return dlib.shape_predictor(path)


def _resize(image: np.ndarray, scale: float) -> np.ndarray:
    if scale >= 0.999:
        return image
    h, w = image.shape[:2]
    size = (max(1, int(round(w * scale))), max(1, int(round(h * scale))))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)
