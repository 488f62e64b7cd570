"""Builders for the parts a command needs, each made once per process."""

from __future__ import annotations

from typing import Any

from hypernst_cli.pipeline.code_cache import StyleCodeProvider


def face_processor(backend: str = "auto", device: Any = None) -> Any:
    from hypernst_cli.faces import FaceProcessor

    return FaceProcessor(backend=backend, device=device)


def parser_id(faces: Any) -> str:
    """Identifies the region parser in cache keys (different parsers give different codes)."""
    return f"{faces.backend}-{faces.parser_kind if faces.backend == 'facexlib' else 'landmarks'}"


def make_style_code_provider(models: Any, faces: Any, *, seed: int | None = None,
                             cache: bool = True) -> StyleCodeProvider:
    """A provider over loaded models (needs the ``aladin`` network) and a face processor."""
    import dataclasses

    from hypernst_cli.info import cache_dir

    cfg = models.config.style_codes
    if seed is not None:
        cfg = dataclasses.replace(cfg, seed=seed)
    aladin = models.aladin
    return StyleCodeProvider(
        aladin.encode,
        faces.parse_image,
        cfg,
        model_id=f"aladin-{models.model_id('aladin')}",
        parser_id=parser_id(faces),
        encode_size=models.config.aladin.image_size,
        cache_dir=cache_dir() if cache else None,
        device=models.device,
    )


def style_code_provider(*, weights: str | None, config: str, device: str, backend: str,
                        seed: int | None = None, cache: bool = True) -> StyleCodeProvider:
    """Load ALADIN and the face processor, and wrap them in a cached provider."""
    from hypernst_cli.device import resolve_device
    from hypernst_cli.pipeline.models import load_models

    dev = resolve_device(device)
    models = load_models(weights, config, dev, parts=("aladin",))
    return make_style_code_provider(models, face_processor(backend, dev), seed=seed, cache=cache)
