"""SIFID (single-image FID, Shaham et al. 2019, SinGAN) between the style and the output.

Each image's Inception-v3 feature map of an early block is taken as a set of vectors, one per
spatial position; SIFID is the Fréchet distance between the Gaussians fitted to the two sets.

Facts followed (SinGAN's SIFID code, pytorch-fid's inception.py):
- inputs are RGB in [0, 1] scaled to [-1, 1]; no resizing (SinGAN's Inception builds with
  ``resize_input=False``: the statistics are of the image at its own size);
- the weights are the FID Inception (pytorch-fid's ``pt_inception-2015-12-05-6726825d.pth``), whose
  first layers are torchvision's ``BasicConv2d`` (conv without bias, BatchNorm eps 0.001, ReLU);
  the names below match its state dict so the real file loads strictly;
- Fréchet distance ``|mu1 - mu2|^2 + tr(S1 + S2 - 2 sqrt(S1 S2))`` with ``scipy.linalg.sqrtm``;
  when the product is singular, ``eps`` is added to both diagonals; a negligible imaginary part
  of the root is dropped, a large one is an error.

Layers: ``"pool1"`` (default): the 64 channels after the first max-pool (pytorch-fid's block 0).
``"conv4a"``: the 192 channels of Conv2d_4a_3x3, just before the second pooling, which is what
SinGAN's script computes by default (``dims=192``).
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import nn

from hypernst_cli.errors import UsageError
from hypernst_cli.io.tensors import to_tensor
from hypernst_cli.eval.metrics import (
    Metric,
    array_key,
    check_image,
    load_state_dict,
    resolve_backbone,
    take_tensor,
)

ENTRY = "sifid-inception"
HUB_FILE = "pt_inception-2015-12-05-6726825d.pth"
RANDOM_NOTE = "random Inception weights: the values only exercise the code, they are not SIFID"

Layer = Literal["pool1", "conv4a"]


# --- the network: the first layers of Inception-v3 ----------------------------------------------


class BasicConv2d(nn.Module):
    """Conv (no bias) + BatchNorm (eps 0.001, as TensorFlow's Inception) + ReLU."""

    def __init__(
        self, in_ch: int, out_ch: int, kernel_size: int, stride: int = 1, padding: int = 0
    ):
        super().__init__()
        self.conv = nn.Conv2d(
            in_ch, out_ch, kernel_size, stride=stride, padding=padding, bias=False
        )
        self.bn = nn.BatchNorm2d(out_ch, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.bn(self.conv(x)))


class InceptionStem(nn.Module):
    """Inception-v3 up to the first max-pool (``pool1``), or on to Conv2d_4a_3x3 (``conv4a``)."""

    def __init__(self, layer: Layer = "pool1"):
        super().__init__()
        self.layer = layer
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, 3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, 3, padding=1)
        if layer == "conv4a":
            self.Conv2d_3b_1x1 = BasicConv2d(64, 80, 1)
            self.Conv2d_4a_3x3 = BasicConv2d(80, 192, 3)

    @property
    def channels(self) -> int:
        return 192 if self.layer == "conv4a" else 64

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: (N, 3, H, W) in [0, 1]."""
        x = 2 * x - 1
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = nn.functional.max_pool2d(x, kernel_size=3, stride=2)
        if self.layer == "conv4a":
            x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
        return x


def stem_state(state: dict[str, torch.Tensor], stem: InceptionStem, path: Path | str) -> dict:
    """The stem's tensors from a full FID Inception state dict (the rest of the file is unused)."""
    own = stem.state_dict()
    picked = {}
    for key, param in own.items():
        if key not in state and key.endswith("num_batches_tracked"):
            picked[key] = param  # older files carry no counter; it is unused
            continue
        picked[key] = take_tensor(state, key, param, path, "pytorch-fid's Inception weights")
    return picked


# --- statistics and the Fréchet distance --------------------------------------------------------


def feature_statistics(
    stem: InceptionStem, image: np.ndarray, device: torch.device | str = "cpu"
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of the stem's features over the spatial positions of one image."""
    x = to_tensor(image, unit=True)
    with torch.no_grad():
        feats = stem(x.to(device))[0]
    c, h, w = feats.shape
    if h * w < 2:
        raise UsageError(f"image of {image.shape[1]}x{image.shape[0]} is too small for SIFID")
    act = feats.reshape(c, h * w).T.double().cpu().numpy()
    return act.mean(axis=0), np.cov(act, rowvar=False)


def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray, eps: float = 1e-6
) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2)."""
    from scipy import linalg

    mu1, mu2 = np.atleast_1d(mu1), np.atleast_1d(mu2)
    sigma1, sigma2 = np.atleast_2d(sigma1), np.atleast_2d(sigma2)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise ValueError("the two Gaussians have different dimensions")
    diff = mu1 - mu2
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", linalg.LinAlgWarning)
        covmean = linalg.sqrtm(sigma1 @ sigma2)
    singular = any(issubclass(w.category, linalg.LinAlgWarning) for w in caught)
    if singular or not np.isfinite(covmean).all():
        # A (nearly) singular product (dead feature channels): nudge both covariances, as the
        # FID reference code does when the root is not finite.
        offset = np.eye(sigma1.shape[0]) * eps
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", linalg.LinAlgWarning)
            covmean = linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(f"imaginary component {np.max(np.abs(covmean.imag))} in sqrtm")
        covmean = covmean.real
    value = float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))
    # Rounding can leave a tiny negative number for identical statistics; a distance is >= 0.
    return max(value, 0.0)


# --- the metric ---------------------------------------------------------------------------------


class SIFIDMetric(Metric):
    """SIFID between the style image and the output (0 = same feature statistics).

    ``weights``: ``None`` looks for the FID Inception locally (unavailable when absent), a path
    loads that file, ``"random"`` uses seeded random weights (tests only; reports say so).
    """

    name = "sifid"
    title = "SIFID"
    reference = "style"
    fmt = "{:.3f}"
    paper = True

    def __init__(
        self,
        *,
        weights: str | Path | None = None,
        layer: Layer = "pool1",
        seed: int = 0,
        cache_size: int = 256,
    ) -> None:
        super().__init__()
        if layer not in ("pool1", "conv4a"):
            raise UsageError(f"unknown SIFID layer '{layer}'", hint="use pool1 or conv4a")
        self.layer = layer
        self.seed = seed
        self.random_weights = weights == "random"
        self.weights_path: Path | None = None
        self._device: torch.device | str = "cpu"
        self._stem: InceptionStem | None = None
        self._cache: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._cache_size = cache_size
        if layer == "conv4a":
            self.title = "SIFID (conv4a)"
        resolve_backbone(self, weights, ENTRY, HUB_FILE, RANDOM_NOTE)

    @property
    def source(self) -> str:
        if self.random_weights:
            return f"random Inception (seed {self.seed})"
        return str(self.weights_path) if self.weights_path else "missing"

    def to(self, device: torch.device | str) -> SIFIDMetric:
        self._device = device
        if self._stem is not None:
            self._stem.to(device)
        return self

    def prepare(self) -> None:
        if self.available and self._stem is None:
            self._stem = self._build().to(self._device)

    def _build(self) -> InceptionStem:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            stem = InceptionStem(self.layer)
        if not self.random_weights:
            assert self.weights_path is not None
            state = load_state_dict(self.weights_path)
            stem.load_state_dict(stem_state(state, stem, self.weights_path), strict=True)
        return stem.eval().requires_grad_(False)

    def statistics(
        self, image: np.ndarray, *, cached: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        self.prepare()
        assert self._stem is not None
        if not cached:
            return feature_statistics(self._stem, image, self._device)
        key = array_key(image)
        if key not in self._cache:
            if len(self._cache) >= self._cache_size:
                self._cache.pop(next(iter(self._cache)))
            self._cache[key] = feature_statistics(self._stem, image, self._device)
        return self._cache[key]

    def __call__(self, reference: np.ndarray, output: np.ndarray) -> float | None:
        if not self.available:
            return None
        # A style is compared with many outputs: its statistics are computed once.
        mu1, s1 = self.statistics(check_image(reference, "style"), cached=True)
        mu2, s2 = self.statistics(check_image(output, "output"))
        value = frechet_distance(mu1, s1, mu2, s2)
        return value if math.isfinite(value) else None
