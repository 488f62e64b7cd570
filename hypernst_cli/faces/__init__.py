"""Face detection, FFHQ alignment, 3-region parsing and paste-back.

The public entry point is ``FaceProcessor`` (imported lazily, so that ``hypernst_cli.faces.regions``
stays free of numpy / dlib / OpenCV for light callers)::

    from hypernst_cli.faces import FaceProcessor
    fp = FaceProcessor(backend="auto", detector="hog")
    aligned = fp.align_largest(image, 256)   # AlignedFace: crop, landmarks, quad, transform
    labels = fp.parse(aligned)               # (256, 256) uint8: 0 background, 1 face, 2 hair
    photo = fp.paste_back(image, stylized, aligned)
"""

from __future__ import annotations

from typing import Any

_LAZY = {
    "FaceProcessor": "hypernst_cli.faces.processor",
    "AlignedFace": "hypernst_cli.faces.types",
    "DetectedFace": "hypernst_cli.faces.types",
    "paste_back": "hypernst_cli.faces.paste",
    "overlay": "hypernst_cli.faces.visual",
    "colorize": "hypernst_cli.faces.visual",
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'hypernst_cli.faces' has no attribute '{name}'")
