"""dlib's models, loaded once per process, and the dlib face backend built on them.

``dlib_model(name)`` is the one loader of dlib's models (the HOG and CNN detectors, the 5- and
68-point landmark predictors, the face-recognition ResNet): each is loaded on first use and then
shared by everything in the process (face processors, identity and face-detection metrics). The
model files come from the PyPI package face-recognition-models (offline).

``DlibFaces`` detects faces (HOG, or the CNN 'mmod' detector) with 68 landmarks. Detection runs on
a downscaled copy of large images (the detectors only need ~80 px faces); landmarks are predicted
at full resolution from the rescaled box.
"""

from __future__ import annotations

import importlib.util
import threading
from typing import Any

import numpy as np

from hypernst_cli.faces.dlib_models import dlib_model_path
from hypernst_cli.faces.types import DetectedFace, detection_scale

#: what ``dlib_model`` loads: the HOG detector is built into dlib, the others are model files
DLIB_MODEL_NAMES = ("hog_detector", "cnn_detector", "landmarks5", "landmarks68", "recognition")

_models: dict[str, Any] = {}
_models_lock = threading.Lock()


def dlib_installed() -> bool:
    return importlib.util.find_spec("dlib") is not None


def dlib_model(name: str) -> Any:
    """One of dlib's models (``DLIB_MODEL_NAMES``), loaded on first use and shared by the process.

    Loading takes up to a second each (the 68-point predictor ~0.7 s): never twice per process.
    """
    with _models_lock:
        model = _models.get(name)
        if model is None:
            model = _models[name] = _load_dlib_model(name)
        return model


def _load_dlib_model(name: str) -> Any:
    import dlib

    if name == "hog_detector":
        return dlib.get_frontal_face_detector()
    if name not in DLIB_MODEL_NAMES:
        raise KeyError(f"unknown dlib model '{name}'; known: {', '.join(DLIB_MODEL_NAMES)}")
    path = str(dlib_model_path(name))
    if name == "cnn_detector":
        return dlib.cnn_face_detection_model_v1(path)
    if name == "recognition":
        return dlib.face_recognition_model_v1(path)
    return dlib.shape_predictor(path)

DETECTORS = ("hog", "cnn")

#: The copy the detector sees has at most this side squared in pixels (``detection_scale``).
#: HOG finds faces from ~80 px (40 px upsampled once).
DETECT_MAX_SIDE = {"hog": 640, "cnn": 512}
#: Copies of at most this side squared in pixels are upsampled once: small photos, 256 px portraits.
UPSAMPLE_BELOW = 400


class DlibFaces:
    """dlib's detector and 68-point predictor (shared, see ``dlib_model``); ``detect`` finds faces
    with 68 points."""

    def __init__(self, detector: str = "hog") -> None:
        if detector not in DETECTORS:
            raise ValueError(f"unknown dlib detector '{detector}' (use one of {DETECTORS})")
        self.detector_name = detector

    # lazy: constructing a FaceProcessor costs nothing until the first image
    @property
    def detector(self) -> Any:
        return dlib_model(f"{self.detector_name}_detector")

    @property
    def predictor(self) -> Any:
        return dlib_model("landmarks68")

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
        max_side = DETECT_MAX_SIDE[self.detector_name]
        scale = detection_scale(height, width, max_side)
        small = _resize(image, scale)
        upsample = 1 if small.shape[0] * small.shape[1] <= UPSAMPLE_BELOW ** 2 else 0
        found = self._run_detector(small, upsample)
        if not found and upsample == 0:
            # small faces in a large photo: look again at a higher resolution, upsampled
            scale = detection_scale(height, width, 2 * max_side)
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


def _resize(image: np.ndarray, scale: float) -> np.ndarray:
    if scale >= 0.999:
        return image
    import cv2

    h, w = image.shape[:2]
    size = (max(1, int(round(w * scale))), max(1, int(round(h * scale))))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)
