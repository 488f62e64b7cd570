"""Builders for the parts a command needs, each made once per process."""

from __future__ import annotations

from typing import Any


def face_processor(backend: str = "auto", device: Any = None) -> Any:
    from hypernst_cli.faces import FaceProcessor

    # the commands that build one have --backend, not --detector: the no-face hint names only
    # the former
    return FaceProcessor(backend=backend, device=device, options=("--backend",))

