"""The HyperNST hyper-network (paper 3.1-3.3): per-channel weight offsets for a frozen StyleGAN2.

Inputs, for a generator of resolution R and a feature grid of F x F (16 x 16 in the paper):

* content encoder E_c: a ResNet trunk (torchvision's resnet34/resnet18 layout, random init, no
  download) on the 6-channel concat of the content image and the current output -> F x F x
  ``feature_channels`` (the paper's 16x16x512 projected to 16x16x256);
* mask encoder E_mask: the region-arranged ALADIN code map [B, code_dim, R, R] -> F x F x
  ``mask_channels``;
* the two are concatenated (16x16x512 in the paper) and read by one refinement head per tuned
  generator layer (HyperStyle's RefinementBlock idea): stride-2 convs down to 1x1, a linear to a
  head code, and an output that emits one offset per (out, in) channel pair of that layer's
  kernel. With ``shared_heads``, layers of the same shape share the output hyper-layer
  (HyperStyle's shared-weights variant), each head keeping its own conv trunk;
* with ``global_code`` (Eq. 2's second argument, A(s)): the global ALADIN code of the style image
  [B, code_dim] enters every head, concatenated with the pooled trunk features before the head's
  last linear (written as that linear plus a per-head projection of A(s); the projection starts
  at zero, so adding it to a trained model changes nothing until it is trained).

:func:`refine` runs the iterative scheme of HyperStyle, for inference and for training alike:
start from G(w+) with no offsets; each iteration encodes (content, previous output), adds the
predicted offsets to the accumulated ones and renders again.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.nn import functional as F

from hypernst_cli.models.stylegan2 import Generator, LayerSpec, count_parameters  # noqa: F401

if TYPE_CHECKING:
    from hypernst_cli.configs import ModelConfig


# --- content encoder ---------------------------------------------------------------------------


def kaiming_init(module: nn.Module) -> None:
    """He-normal weights (LeakyReLU 0.2) and zero biases for every conv and linear of ``module``.

    PyTorch's default init shrinks a signal by about sqrt(3) per layer: through the ten plain
    convs of the ``convnet`` trunk the features of different images came out equal to 1e-4
    (a content encoder that sees nothing, and a hyper-network that learns to reconstruct from
    the style codes alone). He init keeps the signal's scale from layer to layer.
    """
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, a=0.2, nonlinearity="leaky_relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class ContentEncoder(nn.Module):
    """(content, current output) [B, 6, R, R] -> [B, feature_channels, F, F].

    ``resnet34`` / ``resnet18``: HyperStyle's trunk (a 7x7 stride-2 stem with BatchNorm and PReLU,
    then torchvision's layer1..layer4 without the max-pool: R/16 at 512 channels), then a 1x1
    projection to ``feature_channels``. ``convnet`` (alias ``tiny``): a few stride-2 convs of width
    ``width`` (doubling up to 4x), for the small configs.
    """

    def __init__(self, backbone: str, resolution: int, feature_channels: int, feature_size: int,
                 width: int = 32, in_channels: int = 6) -> None:
        super().__init__()
        self.feature_size = feature_size
        if backbone in ("resnet34", "resnet18"):
            from torchvision.models import resnet18, resnet34

            trunk = (resnet34 if backbone == "resnet34" else resnet18)(weights=None)
            self.stem = nn.Sequential(
                nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False),
                nn.BatchNorm2d(64),
                nn.PReLU(64),
            )
            self.body = nn.Sequential(trunk.layer1, trunk.layer2, trunk.layer3, trunk.layer4)
            trunk_channels = 512
        elif backbone in ("convnet", "tiny"):
            n_down = max(1, int(math.log2(resolution // feature_size)))
            layers: list[nn.Module] = []
            c = in_channels
            for i in range(n_down):
                out = min(width * 2**i, 4 * width)
                layers += [nn.Conv2d(c, out, 3, stride=2, padding=1), nn.LeakyReLU(0.2),
                           nn.Conv2d(out, out, 3, padding=1), nn.LeakyReLU(0.2)]
                c = out
            self.stem = nn.Sequential(*layers)
            self.body = nn.Sequential(nn.Conv2d(c, c, 3, padding=1), nn.LeakyReLU(0.2))
            kaiming_init(self.stem)
            kaiming_init(self.body)
            trunk_channels = c
        else:
            raise ValueError(f"unknown content encoder backbone '{backbone}' "
                             "(use resnet34, resnet18, convnet or tiny)")
        self.project = nn.Conv2d(trunk_channels, feature_channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.body(self.stem(x))
        if x.shape[-1] != self.feature_size:
            x = F.adaptive_avg_pool2d(x, self.feature_size)
        return self.project(x)


# --- mask encoder ------------------------------------------------------------------------------


class MaskEncoder(nn.Module):
    """E_mask: region-arranged style codes [B, code_dim, R, R] -> [B, mask_channels, F, F].

    The code map is piecewise constant (one ALADIN code per face region), so it is first
    area-averaged to 4F x 4F: region boundaries survive as fractional mixtures at a quarter of a
    feature cell, and the stride-2 convs that follow run on 1/16 of the pixels of a 256 px map.
    """

    def __init__(self, code_dim: int, mask_channels: int, feature_size: int, resolution: int) -> None:
        super().__init__()
        self.pooled_size = min(resolution, 4 * feature_size)
        n_down = int(math.log2(self.pooled_size // feature_size))
        hidden = mask_channels
        layers: list[nn.Module] = [nn.Conv2d(code_dim, hidden, 1), nn.LeakyReLU(0.2)]
        for _ in range(n_down):
            layers += [nn.Conv2d(hidden, hidden, 3, stride=2, padding=1), nn.LeakyReLU(0.2)]
        layers.append(nn.Conv2d(hidden, mask_channels, 3, padding=1))
        self.net = nn.Sequential(*layers)
        kaiming_init(self.net)

    def forward(self, code_map: torch.Tensor) -> torch.Tensor:
        if code_map.shape[-1] != self.pooled_size:
            code_map = F.adaptive_avg_pool2d(code_map, self.pooled_size)
        return self.net(code_map)


# --- style-conditioned content skip (not in the paper) ------------------------------------------


class ContentSkip(nn.Module):
    """The content at full resolution, processed under the style: a feature residual for the
    generator's last block (``hypernet.skip_width`` > 0; not in the paper).

    The offsets of the paper scale whole channels, and the generator sees the content only
    through W+ (and F at r_f): neither can put a line where the photo has an edge. This branch
    can: content [B, 3, R, R] -> two 3x3 convs of width w, plus one half-resolution level (a
    stride-2 conv pair, upsampled back) for strokes and dots a few pixels wide -> two 3x3 convs,
    each scaled and shifted per pixel (FiLM) by the region code map (pooled to R/4: the codes
    are constant per region) and by A(s) -> a 1x1 conv to the generator's channels at R. The
    generator adds it to its features after the last block's up conv, so the last conv and the
    toRGB, with their offsets, render it. The FiLM and output convs start at zero: a model that
    gains the branch renders as before until it is trained.

    With ``noise_channels`` > 0 (``hypernet.skip_noise``) a 3x3 conv of fixed white noise
    [1, n, R, R] (one seeded draw, the same for every image, so outputs stay deterministic) is
    added to the stem's features: a grain the FiLM'd convs can shape into strokes and dots where
    the photo is flat. The conv starts at zero (adding it changes nothing until trained).
    """

    #: the seed of the fixed noise (a constant: part of what a trained model expects)
    NOISE_SEED = 20261202

    def __init__(self, code_dim: int, out_channels: int, width: int, resolution: int,
                 noise_channels: int = 0) -> None:
        super().__init__()
        w = width
        self.code_size = max(1, resolution // 4)
        self.stem = nn.Sequential(nn.Conv2d(3, w, 3, padding=1), nn.LeakyReLU(0.2),
                                  nn.Conv2d(w, w, 3, padding=1), nn.LeakyReLU(0.2))
        self.grain = nn.Conv2d(noise_channels, w, 3, padding=1) if noise_channels > 0 else None
        # not saved with the weights: drawn again from NOISE_SEED wherever the model is built
        noise = (torch.randn(1, noise_channels, resolution, resolution,
                             generator=torch.Generator().manual_seed(self.NOISE_SEED))
                 if noise_channels > 0 else torch.zeros(0))
        self.register_buffer("noise", noise, persistent=False)
        self.down = nn.Sequential(nn.Conv2d(w, 2 * w, 3, stride=2, padding=1), nn.LeakyReLU(0.2),
                                  nn.Conv2d(2 * w, 2 * w, 3, padding=1), nn.LeakyReLU(0.2))
        self.up = nn.Conv2d(2 * w, w, 1)
        self.body = nn.ModuleList([nn.Conv2d(w, w, 3, padding=1) for _ in range(2)])
        kaiming_init(self)
        self.film = nn.ModuleList([nn.Conv2d(code_dim, 2 * w, 1) for _ in range(2)])
        self.film_global = nn.ModuleList([nn.Linear(code_dim, 2 * w) for _ in range(2)])
        self.out = nn.Conv2d(w, out_channels, 1)
        for m in [*self.film, *self.film_global, self.out, *([self.grain] if self.grain else [])]:
            nn.init.zeros_(m.weight)
            nn.init.zeros_(m.bias)

    def forward(self, content: torch.Tensor, code_map: torch.Tensor,
                global_code: torch.Tensor | None = None) -> torch.Tensor:
        x = self.stem(content)
        if self.grain is not None:
            if self.noise.shape[-2:] != x.shape[-2:]:
                raise ValueError(f"the content skip's noise is {tuple(self.noise.shape[-2:])} px, "
                                 f"the content {tuple(x.shape[-2:])}")
            x = x + self.grain(self.noise.to(x.dtype))
        half = self.down(x)
        x = x + self.up(F.interpolate(half, size=x.shape[-2:], mode="bilinear", align_corners=False))
        codes = F.adaptive_avg_pool2d(code_map.to(x.dtype), self.code_size)
        for conv, film, film_global in zip(self.body, self.film, self.film_global):
            params = film(codes)
            if global_code is not None:
                params = params + film_global(global_code.to(x.dtype))[..., None, None]
            params = F.interpolate(params, size=x.shape[-2:], mode="bilinear", align_corners=False)
            gamma, beta = params.chunk(2, dim=1)
            x = F.leaky_relu(conv(x) * (1 + gamma) + beta, 0.2)
        return self.out(x)


# --- refinement heads --------------------------------------------------------------------------


class HeadTrunk(nn.Module):
    """Per-layer trunk: stride-2 convs from F x F down to 1 x 1, then a linear to a head code.

    With ``code_dim`` > 0 the linear reads [pooled features, A(s)] (Eq. 2): written as
    ``linear(pooled) + global_proj(A(s))``, the same map, with ``global_proj`` starting at zero.
    """

    def __init__(self, in_channels: int, hidden: int, feature_size: int, code_dim: int = 0) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c = in_channels
        for _ in range(max(1, int(math.log2(feature_size)))):
            layers += [nn.Conv2d(c, hidden, 3, stride=2, padding=1), nn.LeakyReLU(0.2)]
            c = hidden
        self.convs = nn.Sequential(*layers)
        self.linear = nn.Linear(hidden, hidden)
        kaiming_init(self)
        self.global_proj = nn.Linear(code_dim, hidden) if code_dim > 0 else None
        if self.global_proj is not None:
            nn.init.zeros_(self.global_proj.weight)
            nn.init.zeros_(self.global_proj.bias)

    def forward(self, x: torch.Tensor, global_code: torch.Tensor | None = None) -> torch.Tensor:
        x = self.convs(x)
        code = self.linear(F.adaptive_avg_pool2d(x, 1).flatten(1))
        if self.global_proj is not None:
            if global_code is None:
                raise ValueError("this hyper-network reads the global style code A(s) (Eq. 2): "
                                 "pass global_code")
            code = code + self.global_proj(global_code.to(code.dtype))
        return code


class DenseDelta(nn.Module):
    """Head code -> [B, out, in] offsets with one linear (HyperStyle's per-layer output conv)."""

    def __init__(self, hidden: int, out_channels: int, in_channels: int) -> None:
        super().__init__()
        self.shape = (out_channels, in_channels)
        self.linear = nn.Linear(hidden, out_channels * in_channels)
        # start at zero offsets: an untrained head leaves the generator unchanged
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def forward(self, code: torch.Tensor) -> torch.Tensor:
        return self.linear(code).view(-1, *self.shape)


class FactorizedDelta(nn.Module):
    """Head code -> [B, out, in] through an [in, hidden] intermediate (HyperStyle's shared
    hyper-layer, per channel): 2 small matrices instead of hidden x out x in weights."""

    def __init__(self, hidden: int, out_channels: int, in_channels: int) -> None:
        super().__init__()
        self.shape = (out_channels, in_channels)
        self.hidden = hidden
        self.to_inputs = nn.Linear(hidden, in_channels * hidden)
        self.to_outputs = nn.Linear(hidden, out_channels)
        nn.init.zeros_(self.to_outputs.weight)
        nn.init.zeros_(self.to_outputs.bias)

    def forward(self, code: torch.Tensor) -> torch.Tensor:
        per_input = self.to_inputs(code).view(-1, self.shape[1], self.hidden)  # [B, in, hidden]
        return self.to_outputs(per_input).transpose(1, 2)  # [B, out, in]


def _output_layer(hidden: int, out_channels: int, in_channels: int) -> nn.Module:
    """Dense when small (toRGB layers: 3 outputs), factorized when that needs fewer weights."""
    if out_channels > hidden:
        return FactorizedDelta(hidden, out_channels, in_channels)
    return DenseDelta(hidden, out_channels, in_channels)


def parse_layers(spec: str | list[int] | tuple[int, ...], n_layers: int) -> list[int]:
    """``"all"`` or comma-separated indices (or a list) -> sorted layer indices, validated."""
    if isinstance(spec, str):
        if spec.strip().lower() == "all":
            return list(range(n_layers))
        try:
            idx = [int(s) for s in spec.split(",") if s.strip()]
        except ValueError:
            raise ValueError(f"layers must be 'all' or comma-separated integers, got '{spec}'") from None
    else:
        idx = [int(i) for i in spec]
    bad = [i for i in idx if not 0 <= i < n_layers]
    if bad or not idx:
        raise ValueError(f"layer indices {bad or idx} outside 0..{n_layers - 1}")
    return sorted(set(idx))


class HyperNetwork(nn.Module):
    """Predicts per-channel weight offsets for the tuned layers of a generator."""

    def __init__(self, layer_specs: list[LayerSpec], *, resolution: int, code_dim: int,
                 backbone: str = "resnet34", feature_channels: int = 256, mask_channels: int = 256,
                 feature_size: int = 16, layers: str | list[int] = "all", start_layer: int = 13,
                 shared_heads: bool = True, head_hidden: int = 256, backbone_width: int = 32,
                 global_code: bool = False, skip_width: int = 0, skip_noise: int = 0,
                 input_size: int = 0) -> None:
        super().__init__()
        self.specs = list(layer_specs)
        self.uses_global_code = global_code
        self.n_layers = len(self.specs)
        self.tuned = parse_layers(layers, self.n_layers)
        if not 0 <= start_layer < self.n_layers:
            raise ValueError(f"start_layer {start_layer} outside 0..{self.n_layers - 1}")
        self.start_layer = start_layer
        self.resolution = resolution
        self.code_dim = code_dim
        # the side the content encoder reads (hypernet.input_size; 0: the generator's)
        self.input_size = input_size or resolution
        self.content_encoder = ContentEncoder(backbone, self.input_size, feature_channels,
                                              feature_size, width=backbone_width)
        self.mask_encoder = MaskEncoder(code_dim, mask_channels, feature_size, resolution)
        in_channels = feature_channels + mask_channels

        # Sharing groups: conv layers of the same shape on the same side of start_layer, so the
        # stage-2 freeze never touches a module used by both frozen and trained layers.
        groups: dict[str, list[int]] = {}
        for i in self.tuned:
            s = self.specs[i]
            key = f"{s.kind}_{s.out_channels}x{s.in_channels}_{'late' if i >= start_layer else 'early'}"
            groups.setdefault(key, []).append(i)
        self.heads = nn.ModuleDict()
        self.outputs = nn.ModuleDict()  # per-layer output layers (not shared)
        self.shared = nn.ModuleDict()  # shared output layers, keyed by group
        self.shared_key: dict[int, str] = {}
        for key, members in groups.items():
            s = self.specs[members[0]]
            share = shared_heads and len(members) > 1 and s.kind == "conv"
            if share:
                self.shared[key] = FactorizedDelta(head_hidden, s.out_channels, s.in_channels)
            for i in members:
                self.heads[str(i)] = HeadTrunk(in_channels, head_hidden, feature_size,
                                               code_dim if global_code else 0)
                if share:
                    self.shared_key[i] = key
                else:
                    self.outputs[str(i)] = _output_layer(head_hidden, s.out_channels, s.in_channels)
        # the generator's channels at R: the output of the last block's up conv
        last_conv = [s for s in self.specs if s.kind == "conv"][-1]
        if skip_noise and not skip_width:
            raise ValueError("skip_noise needs the content skip (skip_width > 0)")
        self.skip = (ContentSkip(code_dim, last_conv.out_channels, skip_width, resolution,
                                 noise_channels=skip_noise)
                     if skip_width > 0 else None)

    def encode_mask(self, code_map: torch.Tensor) -> torch.Tensor:
        return self.mask_encoder(code_map)

    def forward(self, content: torch.Tensor, current: torch.Tensor | None,
                code_map: torch.Tensor | None = None, *,
                mask_features: torch.Tensor | None = None, global_code: torch.Tensor | None = None,
                skip: bool = False) -> list[torch.Tensor | None] | torch.Tensor:
        """Offsets [B, out, in] per generator layer (None for layers not tuned).

        ``content`` and ``current`` are [B, 3, R, R] in [-1, 1]; ``code_map`` is
        [B, code_dim, R, R] (or pass precomputed ``mask_features`` from :meth:`encode_mask`);
        ``global_code`` [B, code_dim] is A(s), read only with ``uses_global_code``.
        With ``skip`` (a model with the content skip): the skip's feature residual
        [B, C_R, R, R] for the generator's last block instead (reads content and code_map only;
        through forward so that a DDP wrapper sees it).
        """
        if skip:
            if self.skip is None or code_map is None:
                raise ValueError("skip=True needs a hyper-network with the content skip and the "
                                 "code map")
            return self.skip(content, code_map, global_code if self.uses_global_code else None)
        if mask_features is None:
            if code_map is None:
                raise ValueError("pass code_map or mask_features")
            mask_features = self.encode_mask(code_map)
        pair = torch.cat([content, current], dim=1)
        if pair.shape[-1] != self.input_size:  # a grown model's encoder reads the old size
            pair = F.interpolate(pair, size=(self.input_size, self.input_size), mode="area")
        features = self.content_encoder(pair)
        x = torch.cat([features, mask_features], dim=1)
        deltas: list[torch.Tensor | None] = [None] * self.n_layers
        for i in self.tuned:
            code = self.heads[str(i)](x, global_code if self.uses_global_code else None)
            out = self.shared[self.shared_key[i]] if i in self.shared_key else self.outputs[str(i)]
            deltas[i] = out(code)
        return deltas

    def stylization_layers(self, spec: str | list[int] = "late") -> list[int]:
        """The layers stage 2 trains: ``"late"`` (every tuned layer >= start_layer, the paper),
        ``"torgb"`` (the late toRGB layers only: colour, not structure) or late layer indices
        (a list, or a comma-separated string).
        A layer whose output hyper-layer is shared must come with every layer sharing it."""
        late = [i for i in self.tuned if i >= self.start_layer]
        if spec == "late":
            return late
        if spec == "torgb":
            return [i for i in late if self.specs[i].kind == "torgb"]
        if isinstance(spec, str):
            try:
                spec = [int(part) for part in spec.split(",") if part.strip()]
            except ValueError:
                raise ValueError(f"must be 'late', 'torgb' or comma-separated layer indices, "
                                 f"got '{spec}'") from None
        chosen = sorted({int(i) for i in spec})
        outside = [i for i in chosen if i not in late]
        if outside or not chosen:
            raise ValueError(f"stylization layers {outside or chosen} are not late tuned layers "
                             f"(those are {late})")
        for i in (i for i in chosen if i in self.shared_key):
            partners = [j for j, k in self.shared_key.items() if k == self.shared_key[i]]
            if not set(partners) <= set(chosen):
                raise ValueError(f"layer {i} shares its output hyper-layer with {sorted(partners)}: "
                                 "list them all")
        return chosen

    def stylization_modules(self, layers: str | list[int] | None = None) -> list[nn.Module]:
        """Modules trained in stage 2: the heads (trunk and output layer) of the stylization
        layers (default: every layer >= start_layer)."""
        mods: list[nn.Module] = []
        for i in self.stylization_layers("late" if layers is None else layers):
            mods.append(self.heads[str(i)])
            mods.append(self.shared[self.shared_key[i]] if i in self.shared_key
                        else self.outputs[str(i)])
        if self.skip is not None:  # it acts on the last block only: a stylization module
            mods.append(self.skip)
        return mods

    def freeze_for_stylization(self, layers: str | list[int] | None = None) -> None:
        """Stage 2 (paper 3.3/4.3): only the heads of layers >= ``start_layer`` keep training
        (``layers``: only those of these late layers, see :meth:`stylization_layers`).

        The content encoder and the heads of the earlier layers are frozen, and so is E_mask. The
        paper freezes "the content encoder" and trains "only the hypernetwork weight delta
        prediction modules"; E_mask is neither, and it feeds every head: left trainable, it would
        change the offsets of the frozen early layers too (their heads read its features), so the
        start layer would no longer bound what stage 2 changes, which is what the paper's
        start-layer ablation (Table 3) varies. The late heads still see the style codes through
        E_mask's (stage-1) projection and learn to turn them into stylization. The content
        encoder also stays in eval mode for its BatchNorm statistics (see :meth:`train`).
        """
        self.requires_grad_(False)
        for m in self.stylization_modules(layers):
            m.requires_grad_(True)
        self._frozen_content = True
        self.content_encoder.eval()

    def train(self, mode: bool = True) -> HyperNetwork:
        super().train(mode)
        if getattr(self, "_frozen_content", False):
            self.content_encoder.eval()
        return self


# --- the refinement loop -----------------------------------------------------------------------


@dataclass
class RefineResult:
    images: list[torch.Tensor]  # the output after each iteration, [B, 3, R, R]
    offsets: list[torch.Tensor | None]  # accumulated offsets per layer after the last iteration
    initial: torch.Tensor  # G(w+) without offsets (the starting point)
    skip: torch.Tensor | None = None  # the content skip's residual (hypernet.skip_width), else None


def add_offsets(acc: list[torch.Tensor | None] | None,
                new: list[torch.Tensor | None]) -> list[torch.Tensor | None]:
    if acc is None:
        return list(new)
    return [a if n is None else n if a is None else a + n for a, n in zip(acc, new)]


#: called after every refinement pass with (output, accumulated offsets, pass index)
PassHook = Callable[[torch.Tensor, list, int], None]


def refine(generator: Generator, hypernet: nn.Module, wplus: torch.Tensor, content: torch.Tensor,
           code_map: torch.Tensor, iterations: int = 3, initial: torch.Tensor | None = None,
           *, global_code: torch.Tensor | None = None, features: torch.Tensor | None = None,
           detach_between: bool = True, on_pass: PassHook | None = None,
           autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
           call: Callable[..., Any] | None = None) -> RefineResult:
    """HyperStyle's iterative refinement: the one loop of inference and of both training stages.

    Iteration 1 starts from ``initial`` (default: G(w+) with no offsets, computed without
    gradients as in HyperStyle); each iteration feeds (content, previous output) to the
    hyper-network and adds its offsets to the accumulated ones. ``detach_between`` (HyperStyle's
    training loop): the previous output and accumulated offsets enter the next iteration detached,
    so the loss of iteration t trains the prediction of iteration t only; set False to
    backpropagate through the whole chain. The generator's own parameters are never changed here:
    freeze them with ``generator.requires_grad_(False)``; gradients still flow through it to the
    hyper-network. ``features``: the spatial feature map F of the spatial path (rendered with
    every iteration; see models/stylegan2.py). ``global_code``: A(s) [B, code_dim] (Eq. 2).

    Training differs only in what it does after each pass: ``on_pass(output, offsets, t)``
    computes that pass's loss and backpropagates it (the outputs returned are then detached);
    ``autocast`` wraps each pass (mixed precision) and ``call(fn, *args, **kw)`` runs the
    hyper-network and generator (gradient checkpointing); ``hypernet`` may be DDP-wrapped.
    """
    if iterations < 1:
        raise ValueError("iterations must be >= 1")
    run = call or (lambda fn, *a, **kw: fn(*a, **kw))
    if initial is None:
        with torch.no_grad():
            initial = generator(wplus, features=features)
    # E_mask reads only the code map, which does not change between iterations: encode it once,
    # unless E_mask is being trained with one backward per iteration (each backward frees the
    # graph it would share)
    plain = getattr(hypernet, "module", hypernet)  # the network inside a DDP wrapper
    mask_trains = torch.is_grad_enabled() and any(p.requires_grad for p in plain.mask_encoder.parameters())
    shared_mask = None
    if not (mask_trains and detach_between):
        with torch.set_grad_enabled(mask_trains):
            shared_mask = plain.encode_mask(code_map)
    # the content skip depends on the content and the codes only: computed once, under the same
    # condition as E_mask
    skip_trains = plain.skip is not None and torch.is_grad_enabled() and any(
        p.requires_grad for p in plain.skip.parameters())
    shared_skip = None
    if plain.skip is not None and not (skip_trains and detach_between):
        with torch.set_grad_enabled(skip_trains), autocast():
            shared_skip = run(hypernet, content, None, code_map, global_code=global_code, skip=True)
    images: list[torch.Tensor] = []
    offsets: list[torch.Tensor | None] | None = None
    previous = initial
    skip = shared_skip
    for t in range(iterations):
        if detach_between and t > 0:
            previous = previous.detach()
            offsets = [o.detach() if o is not None else None for o in offsets or []]
        with autocast():
            deltas = run(hypernet, content, previous, None if shared_mask is not None else code_map,
                         mask_features=shared_mask, global_code=global_code)
            offsets = add_offsets(offsets, deltas)
            if plain.skip is not None and shared_skip is None:
                skip = run(hypernet, content, None, code_map, global_code=global_code, skip=True)
            previous = run(generator, wplus, features=features, offsets=offsets, skip=skip)
        if on_pass is not None:
            on_pass(previous, offsets, t)
            previous = previous.detach()
        images.append(previous)
    if on_pass is not None:  # their graphs were freed by the hook's backward
        offsets = [o.detach() if o is not None else None for o in offsets or []]
        skip = None if skip is None else skip.detach()
    return RefineResult(images=images, offsets=offsets or [], initial=initial, skip=skip)


# --- constructors ------------------------------------------------------------------------------


def build_hypernet(cfg: ModelConfig, generator: Generator | None = None) -> HyperNetwork:
    """The hyper-network of a config, for ``generator`` (default: the config's generator layout)."""
    if generator is None:
        from hypernst_cli.models.stylegan2 import build_generator

        with torch.device("meta"):
            specs = build_generator(cfg.generator).layer_specs()
    else:
        specs = generator.layer_specs()
    h = cfg.hypernet
    layers: str | list[int] = h.layers
    if cfg.generator.feature_resolution:
        # spatial path: the layers before the toRGB at r_f never run (F stands for them), so
        # they get no heads
        from hypernst_cli.models.stylegan2 import first_live_layer

        live = first_live_layer(cfg.generator.feature_resolution)
        layers = [i for i in parse_layers(h.layers, len(specs)) if i >= live]
    return HyperNetwork(specs, resolution=cfg.generator.resolution, code_dim=cfg.aladin.code_dim,
                        backbone=h.backbone, feature_channels=h.feature_channels,
                        mask_channels=h.mask_channels, feature_size=h.feature_size, layers=layers,
                        start_layer=h.start_layer, shared_heads=h.shared_heads,
                        head_hidden=h.head_hidden, backbone_width=h.backbone_width,
                        global_code=h.global_code, skip_width=h.skip_width,
                        skip_noise=h.skip_noise, input_size=h.input_size)
