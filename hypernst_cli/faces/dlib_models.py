"""Where dlib's model files are: the PyPI package face-recognition-models ships them.

The package's own ``__init__`` imports ``pkg_resources`` (gone from recent setuptools), so we
locate its folder without importing it.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from hypernst_cli.errors import WeightsNotFoundError

#: file names inside face_recognition_models/models/
DLIB_MODELS = {
    "landmarks68": "shape_predictor_68_face_landmarks.dat",
    "landmarks5": "shape_predictor_5_face_landmarks.dat",
    "cnn_detector": "mmod_human_face_detector.dat",
    "recognition": "dlib_face_recognition_resnet_model_v1.dat",
}


def dlib_model_path(name: str) -> Path:
    """Path of one of dlib's bundled models (keys of ``DLIB_MODELS``)."""
    if name not in DLIB_MODELS:
        raise KeyError(f"unknown dlib model '{name}'; known: {', '.join(DLIB_MODELS)}")
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise WeightsNotFoundError(
            "dlib's face models are not installed",
            hint="pip install face-recognition-models dlib-bin",
        )
    path = Path(list(spec.submodule_search_locations)[0]) / "models" / DLIB_MODELS[name]
    if not path.is_file():
        raise WeightsNotFoundError(
            f"{path}: dlib model file missing", hint="reinstall face-recognition-models"
        )
    return path
