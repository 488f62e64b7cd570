"""facexlib networks: RetinaFace (detection, 5 landmarks) and BiSeNet / ParseNet (face parsing).

The networks are built from facexlib's own classes and their weights are loaded from the files the
weights registry locates (``hypernst download facexlib-...`` puts them in the Hugging Face cache).
facexlib's ``init_*_model`` helpers are never called: they download from the internet.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from hypernst_cli.errors import WeightsIntegrityError, WeightsNotFoundError
from hypernst_cli.faces.regions import BACKGROUND, FACE, HAIR
from hypernst_cli.faces.types import DetectedFace, detection_scale

DETECTION_WEIGHTS = "facexlib-detection-retinaface-resnet50"
PARSING_WEIGHTS = {"bisenet": "facexlib-parsing-bisenet", "parsenet": "facexlib-parsing-parsenet"}

# CelebAMask-HQ part names in the order each network predicts them (facexlib's inference scripts).
BISENET_CLASSES = (
    "background", "skin", "l_brow", "r_brow", "l_eye", "r_eye", "eye_g", "l_ear", "r_ear",
    "ear_r", "nose", "mouth", "u_lip", "l_lip", "neck", "neck_l", "cloth", "hair", "hat",
)  # fmt: skip
PARSENET_CLASSES = (
    "background", "skin", "nose", "eye_g", "l_eye", "r_eye", "l_brow", "r_brow", "l_ear",
    "r_ear", "mouth", "u_lip", "l_lip", "hair", "hat", "ear_r", "neck_l", "neck", "cloth",
)  # fmt: skip

# The paper's three regions (3.5.1): small parts join the face; a hat covers the hair's place;
# neck, necklace and clothes are not face or hair, so they go with the background.
PART_TO_REGION = {
    "background": BACKGROUND, "skin": FACE, "l_brow": FACE, "r_brow": FACE, "l_eye": FACE,
    "r_eye": FACE, "eye_g": FACE, "l_ear": FACE, "r_ear": FACE, "ear_r": FACE, "nose": FACE,
    "mouth": FACE, "u_lip": FACE, "l_lip": FACE, "neck": BACKGROUND, "neck_l": BACKGROUND,
    "cloth": BACKGROUND, "hair": HAIR, "hat": HAIR,
}  # fmt: skip

PARSE_SIZE = 512  # both parsers were trained on 512 x 512 faces
DETECT_MAX_SIDE = 640


def region_lut(classes: tuple[str, ...]) -> np.ndarray:
    """Lookup table: parser class index -> region label."""
    return np.array([PART_TO_REGION[name] for name in classes], dtype=np.uint8)


def weights_path(name: str) -> Path | None:
    """The local file of a registry entry, or None when it is absent (never downloads)."""
    from hypernst_cli.errors import WeightsError
    from hypernst_cli.weights.registry import load_registry, locate

    try:
        entry = load_registry().get(name)
    except WeightsError:  # no readable registry: nothing can be located either
        return None
    if entry is None:
        return None
    path, _ = locate(entry)
    return path


def require_weights(name: str) -> Path:
    path = weights_path(name)
    if path is None:
        raise WeightsNotFoundError(
            f"facexlib weights '{name}' are not on this machine",
            hint=f"run: hypernst download {name} (or use --backend dlib)",
        )
    return path


def facexlib_available(parser: str = "bisenet") -> bool:
    """True when both the detection and the parsing weights are present locally."""
    return weights_path(DETECTION_WEIGHTS) is not None and weights_path(PARSING_WEIGHTS[parser]) is not None


def load_state_dict(path: Path) -> dict[str, Any]:
    """A state dict from safetensors, or from a .pth read with ``weights_only=True`` (no code runs)."""
    import torch

    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt, truncated, or a pickle with foreign globals
        raise WeightsIntegrityError(f"{path}: cannot read the weights ({exc})") from exc
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise WeightsIntegrityError(f"{path}: not a state dict")
    # checkpoints saved from DataParallel prefix every key with 'module.'
    return {k.removeprefix("module."): v for k, v in state.items()}


def _load_into(model: Any, path: Path) -> Any:
    try:
        model.load_state_dict(load_state_dict(path), strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise WeightsIntegrityError(f"{path}: weights do not fit the network ({first})") from exc
    return model.eval()


def build_retinaface(device: Any, weights: Path | None = None) -> Any:
    """RetinaFace-ResNet50 on ``device``; random init when ``weights`` is None (tests)."""
    from facexlib.detection.retinaface import RetinaFace

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torchvision's 'pretrained' deprecation (we pass False)
        model = RetinaFace(network_name="resnet50", half=False, device=device)
    if weights is not None:
        _load_into(model, weights)
    return model.to(device).eval()


def build_parser(kind: str, device: Any, weights: Path | None = None) -> Any:
    """BiSeNet (19 classes) or ParseNet (512 px, 19 classes); random init when ``weights`` is None."""
    if kind == "bisenet":
        from facexlib.parsing.bisenet import BiSeNet

        model = BiSeNet(num_class=19)
    elif kind == "parsenet":
        from facexlib.parsing.parsenet import ParseNet

        model = ParseNet(in_size=PARSE_SIZE, out_size=PARSE_SIZE, parsing_ch=19)
    else:
        raise ValueError(f"unknown face parser '{kind}' (bisenet or parsenet)")
    if weights is not None:
        _load_into(model, weights)
    return model.to(device).eval()


def retinaface_rows_to_faces(rows: np.ndarray, scale: float = 1.0) -> list[DetectedFace]:
    """RetinaFace's (N, 15) rows [x0, y0, x1, y1, score, 5 x (x, y)] -> faces, in the coordinates
    of an image ``scale`` times larger than the one detected on, largest first."""
    faces = []
    for row in np.asarray(rows, dtype=np.float64).reshape(-1, 15):
        box = (row[:4] + 0.5) * scale - 0.5
        landmarks = (row[5:15].reshape(5, 2) + 0.5) * scale - 0.5
        faces.append(DetectedFace(box=box, landmarks=landmarks, score=float(row[4]),
                                  detector="retinaface"))
    faces.sort(key=lambda f: f.area, reverse=True)
    return faces


class FacexlibFaces:
    """RetinaFace detection + BiSeNet/ParseNet parsing, loaded once, lazily."""

    def __init__(self, device: Any, parser: str = "bisenet", *, threshold: float = 0.8) -> None:
        if parser not in PARSING_WEIGHTS:
            raise ValueError(f"unknown face parser '{parser}' (bisenet or parsenet)")
        self.device = device
        self.parser_kind = parser
        self.threshold = threshold
        self._detector: Any = None
        self._parser: Any = None

    @property
    def detector(self) -> Any:
        if self._detector is None:
            self._detector = build_retinaface(self.device, require_weights(DETECTION_WEIGHTS))
        return self._detector

    @property
    def parser(self) -> Any:
        if self._parser is None:
            weights = require_weights(PARSING_WEIGHTS[self.parser_kind])
            self._parser = build_parser(self.parser_kind, self.device, weights)
        return self._parser

    def detect(self, image: np.ndarray) -> list[DetectedFace]:
        """Faces with 5 landmarks, largest first (detection on a copy of at most 640 x 640 px
        in area)."""
        import torch

        h, w = image.shape[:2]
        scale = detection_scale(h, w, DETECT_MAX_SIDE)
        small = image if scale >= 1.0 else cv2.resize(
            image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA
        )
        bgr = np.ascontiguousarray(small[..., ::-1])  # RetinaFace subtracts BGR means
        with torch.no_grad():
            rows = self.detector.detect_faces(bgr, conf_threshold=self.threshold)
        return retinaface_rows_to_faces(rows, scale=1.0 / scale)

    def parse(self, image: np.ndarray) -> np.ndarray:
        """Region labels (H, W) uint8 of an aligned face crop."""
        import torch

        h, w = image.shape[:2]
        x = cv2.resize(image, (PARSE_SIZE, PARSE_SIZE), interpolation=cv2.INTER_LINEAR)
        x = x.astype(np.float32) / 255.0
        if self.parser_kind == "bisenet":  # ImageNet statistics
            x = (x - np.array([0.485, 0.456, 0.406], np.float32)) / np.array(
                [0.229, 0.224, 0.225], np.float32
            )
        else:  # ParseNet: [-1, 1]
            x = (x - 0.5) / 0.5
        t = torch.from_numpy(x.transpose(2, 0, 1).copy())[None].to(self.device)
        with torch.no_grad():
            logits = self.parser(t)[0]
        return logits_to_regions(logits[0].float().cpu().numpy(), self.parser_kind, (h, w))


def logits_to_regions(logits: np.ndarray, kind: str, size: tuple[int, int]) -> np.ndarray:
    """(19, h, w) parser logits -> (H, W) region labels: argmax, class -> region, resize (nearest)."""
    classes = BISENET_CLASSES if kind == "bisenet" else PARSENET_CLASSES
    parts = np.asarray(logits).argmax(axis=0)
    regions = region_lut(classes)[parts]
    h, w = size
    if regions.shape != (h, w):
        regions = cv2.resize(regions, (w, h), interpolation=cv2.INTER_NEAREST)
    return regions.astype(np.uint8)
