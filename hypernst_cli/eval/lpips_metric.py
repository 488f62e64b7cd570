"""LPIPS (Zhang et al. 2018) between the content and the output: the paper's content metric.

The ``lpips`` package ships its linear heads, but takes its AlexNet / VGG16 backbone from
torchvision's ImageNet weights, which it would download. We build it with a random trunk
(``pnet_rand=True``: no download) and load the backbone's ``features.*`` tensors ourselves from a
local file: the registry entry ``lpips-alexnet-backbone`` / ``lpips-vgg16-backbone``, or torch hub's
cache (``alexnet-owt-7be5be79.pth``, ``vgg16-397923af.pth``), the files torchvision itself uses.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from hypernst_cli.errors import UsageError, WeightsIntegrityError
from hypernst_cli.eval.metrics import (
    Metric,
    array_key,
    check_image,
    load_state_dict,
    resolve_backbone,
    take_tensor,
)

if TYPE_CHECKING:
    import torch

#: net -> (registry entry, torchvision's file name in the hub cache)
BACKBONES: dict[str, tuple[str, str]] = {
    "alex": ("lpips-alexnet-backbone", "alexnet-owt-7be5be79.pth"),
    "vgg": ("lpips-vgg16-backbone", "vgg16-397923af.pth"),
}
_TITLES = {"alex": "LPIPS (Alexnet)", "vgg": "LPIPS (VGG)"}
_SLICE_KEY = re.compile(r"^slice\d+\.(\d+)\.(\w+)$")

RANDOM_NOTE = "random backbone weights: the values only exercise the code, they are not LPIPS"


class LPIPSMetric(Metric):
    """LPIPS v0.1 distance between content and output (0 = identical; larger = less similar).

    ``weights``: ``None`` looks for the backbone locally (unavailable when absent), a path loads
    that file, ``"random"`` uses a seeded random backbone (tests only; reports say so).
    ``size``: resize both images to size x size first (``None``: the content's size; the output is
    resized to it when they differ).
    """

    reference = "content"
    fmt = "{:.6f}"
    paper = True

    def __init__(
        self,
        net: Literal["alex", "vgg"] = "alex",
        *,
        weights: str | Path | None = None,
        seed: int = 0,
        size: int | None = None,
    ) -> None:
        super().__init__()
        if net not in BACKBONES:
            raise UsageError(f"unknown LPIPS network '{net}'", hint="use alex or vgg")
        self.net = net
        self.name = f"lpips_{net}"
        self.title = _TITLES[net]
        self.seed = seed
        self.size = size
        self._device: str | torch.device = "cpu"
        self._model: torch.nn.Module | None = None
        self._feature_cache: list[tuple[tuple[str, tuple[int, int]], list[torch.Tensor]]] = []
        self.weights_path: Path | None = None
        self.random_backbone = weights == "random"
        entry, hub_file = BACKBONES[net]
        resolve_backbone(self, weights, entry, hub_file, RANDOM_NOTE)
        try:
            import lpips  # noqa: F401
        except ImportError:
            self.available = False
            self.missing_hint = "the lpips package is not installed: pip install lpips"

    @property
    def source(self) -> str:
        if self.random_backbone:
            return f"random backbone (seed {self.seed})"
        return str(self.weights_path) if self.weights_path else "missing"

    def to(self, device: torch.device | str) -> LPIPSMetric:
        self._device = device
        self._feature_cache = []
        if self._model is not None:
            self._model.to(device)
        return self

    def prepare(self) -> None:
        if self.available and self._model is None:
            self._model = self._build().to(self._device)

    def _build(self) -> torch.nn.Module:
        import lpips
        import torch

        # pnet_rand: torchvision builds an untrained trunk, so nothing is downloaded; the seed makes
        # the random trunk reproducible when that is what we want.
        with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.manual_seed(self.seed)
            model = lpips.LPIPS(net=self.net, pretrained=True, pnet_rand=True, verbose=False)
        if not self.random_backbone:
            assert self.weights_path is not None
            model.net.load_state_dict(
                backbone_state(load_state_dict(self.weights_path), model.net, self.weights_path)
            )
        model.eval()
        for p in model.parameters():
            p.requires_grad_(False)
        return model

    def _input(self, image: np.ndarray, size: tuple[int, int] | None) -> torch.Tensor:
        import torch.nn.functional as F

        from hypernst_cli.io.tensors import to_tensor

        x = to_tensor(image).to(self._device)
        if size is not None and tuple(x.shape[-2:]) != size:
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
        return x

    def _features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Unit-normalised trunk activations, as inside ``lpips.LPIPS.forward`` (v0.1)."""
        import lpips

        assert self._model is not None
        outs = self._model.net.forward(self._model.scaling_layer(x))
        return [lpips.normalize_tensor(o) for o in outs]

    def _content_features(self, image: np.ndarray, size: tuple[int, int]) -> list[torch.Tensor]:
        # A content is compared with every method's output and, in grid order, every style in a
        # row: keeping its last features halves the work. Only a couple are kept (VGG's are big).
        key = (array_key(image), size)
        for k, feats in self._feature_cache:
            if k == key:
                return feats
        feats = self._features(self._input(image, size))
        self._feature_cache = [(key, feats), *self._feature_cache[:1]]
        return feats

    def __call__(self, reference: np.ndarray, output: np.ndarray) -> float | None:
        if not self.available:
            return None
        import torch

        self.prepare()
        assert self._model is not None
        check_image(reference, "content")
        check_image(output, "output")
        size = (self.size, self.size) if self.size else tuple(reference.shape[:2])
        with torch.no_grad():
            f0 = self._content_features(reference, size)
            f1 = self._features(self._input(output, size))
            # LPIPS: per layer, the learned channel weights of the squared feature differences,
            # averaged over positions; summed over layers.
            total = sum(
                lin((a - b) ** 2).mean(dim=(2, 3))
                for lin, a, b in zip(self._model.lins, f0, f1, strict=True)
            )
        return float(total.item())

    def reference_distance(self, reference: np.ndarray, output: np.ndarray) -> float:
        """The same distance through ``lpips.LPIPS.forward`` itself (no cache), for checks."""
        import torch

        self.prepare()
        assert self._model is not None
        size = (self.size, self.size) if self.size else tuple(reference.shape[:2])
        with torch.no_grad():
            d = self._model(self._input(reference, size), self._input(output, size))
        return float(d.item())


def backbone_state(
    state: dict[str, torch.Tensor], trunk: torch.nn.Module, path: Path
) -> dict[str, torch.Tensor]:
    """Map torchvision's ``features.{i}.{param}`` onto lpips' ``slice{k}.{i}.{param}`` names.

    lpips splits torchvision's ``features`` Sequential into slices but keeps each layer's index,
    so the index alone says where a tensor goes. Every trunk tensor must be found with the right
    shape; the classifier tensors of the file are not needed.
    """
    mapped = {}
    for key, param in trunk.state_dict().items():
        m = _SLICE_KEY.match(key)
        if m is None:
            raise WeightsIntegrityError(f"unexpected LPIPS trunk parameter '{key}'")
        src = f"features.{m.group(1)}.{m.group(2)}"
        mapped[key] = take_tensor(state, src, param, path,
                                  "a torchvision backbone of this network")
    return mapped
