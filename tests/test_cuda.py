"""CUDA-only: the shipped model gives on a GPU what it gives on the CPU (skipped without one).

The face and style are the repository's own example images; the face's regions are the mask of
a drawn test face (tests/synthetic_faces.py), so no face detector is needed (the GPU machine may
have none)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from synthetic_faces import drawn_face

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def stylized_on(device: str) -> torch.Tensor:
    from hypernst_cli.io.images import load_image
    from hypernst_cli.io.tensors import to_tensor
    from hypernst_cli.pipeline.code_cache import style_code_provider
    from hypernst_cli.pipeline.core import resize, stylize_tensors
    from hypernst_cli.pipeline.models import INFERENCE_PARTS, load_models

    models = load_models(None, "compact", torch.device(device), INFERENCE_PARTS)
    size = models.config.resolution
    provider = style_code_provider(models.aladin, models.config, None, cache_dir=None,
                                   device=device)
    style = load_image(EXAMPLES / "exemplars" / "pencil-drawing.png")
    codes = provider.for_image(style).table  # no parser: every region takes the global code
    face = resize(to_tensor(load_image(EXAMPLES / "content" / "face-1.png")), size)
    mask = torch.from_numpy(drawn_face(np.random.default_rng(0), size)[1]).long()[None]
    with torch.no_grad():
        out = stylize_tensors(models.generator, models.hypernet, models.encoder,
                              face.to(device), mask.to(device), codes[None].to(device),
                              iterations=models.config.hypernet.iterations)
    return out.images.float().cpu()


def test_the_shipped_model_stylizes_alike_on_cuda():
    on_cpu, on_gpu = stylized_on("cpu"), stylized_on("cuda")
    assert on_cpu.shape == on_gpu.shape
    # [-1, 1] images; 0.01 is about 1.3 grey levels on average (cuDNN's TF32 convolutions and
    # other kernels round differently, the picture must be the same)
    diff = (on_cpu - on_gpu).abs()
    assert diff.mean() < 0.01, float(diff.mean())
    assert torch.quantile(diff.flatten(), 0.99) < 0.1, float(diff.max())
