"""e4e encoder (Tov et al. 2021): an image -> a W+ latent of the StyleGAN2 generator.

Structure (parameter names follow omertov/encoder4editing, so its checkpoints load after only
stripping the ``encoder.`` prefix, see ``official_encoders.e4e_to_ours``):

- ``input_layer``: 3x3 conv, BatchNorm, PReLU.
- ``body``: IR-SE units (``IRSEUnit``) in four stages, each starting with a stride-2 unit, so the
  stage outputs are at 1/4, 1/8 (c1), 1/16 ... of the input; e4e uses the ends of stages 2, 3 and 4
  as fine (c1), middle (c2) and coarse (c3) features.
- ``latlayer1``/``latlayer2``: 1x1 lateral convs of a feature pyramid; the coarse map is upsampled
  and added to the lateral projection of the finer one (FPN).
- ``styles``: one ``GradualStyleBlock`` per latent: stride-2 convs down to 1x1, then an equalized
  linear layer. Latents 0-2 read the coarse map, 3-6 the middle one, 7+ the fine one.

Output: w0 (from ``styles[0]``) repeated over all latents, plus a delta for latents
1..``progressive_stage`` (e4e's progressive training; all by default), plus ``latent_avg``
(pSp's ``start_from_latent_avg``: the encoder predicts an offset from the average latent).

Spatial path (``feature_shape`` given; not in e4e): ``feature_head`` maps the pyramid level at
the generator's r_f (p1 at 1/4 of the input, p2 at 1/8, c3 at 1/16; another side is resized from
p1) to a feature RESIDUAL [B, C_f + 3, r_f, r_f]: the spatial map is F = G_f(W+) + residual
(``pipeline.core.encode``; shapes in models/stylegan2.py). Its last conv starts at zero, so a new
head starts from the plain W+ reconstruction, and the residual's size is what training
regularises to keep W+ meaningful (train/autoencoder.py).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from hypernst_cli.configs import EncoderConfig
from hypernst_cli.errors import UsageError

# Units per stage of the standard IR-SE trunks (ArcFace's IR-50/100/152, as e4e's get_blocks).
STANDARD_DEPTHS: dict[int, tuple[int, int, int, int]] = {
    50: (3, 4, 14, 3),
    100: (3, 13, 30, 3),
    152: (3, 8, 36, 3),
}
MAX_CHANNELS = 512
COARSE_END = 3  # latents [0, 3) read the coarse (1/16) features
MIDDLE_END = 7  # latents [3, 7) the middle (1/8) ones, the rest the fine (1/4) ones
SE_REDUCTION = 16


def stage_layout(cfg: EncoderConfig) -> list[tuple[int, int]]:
    """(channels, units) of the four trunk stages described by ``cfg``."""
    if cfg.depth:
        if cfg.depth not in STANDARD_DEPTHS:
            raise UsageError(
                f"encoder depth {cfg.depth} is not supported",
                hint="use 50, 100 or 152, or depth 0 with a custom 'blocks' layout",
            )
        units = STANDARD_DEPTHS[cfg.depth]
    else:
        units = tuple(cfg.blocks)
        if len(units) != 4 or min(units) < 1:
            raise UsageError(
                f"encoder blocks {units!r} must list four stages of at least one unit each"
            )
    if cfg.width < 1:
        raise UsageError(f"encoder width must be positive, got {cfg.width}")
    return [(min(cfg.width * 2**i, MAX_CHANNELS), n) for i, n in enumerate(units)]


class SEModule(nn.Module):
    """Squeeze-and-excitation: channel gates from globally pooled features."""

    def __init__(self, channels: int, reduction: int = SE_REDUCTION) -> None:
        super().__init__()
        hidden = max(channels // reduction, 1)
        self.fc1 = nn.Conv2d(channels, hidden, 1, bias=False)
        self.fc2 = nn.Conv2d(hidden, channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = F.adaptive_avg_pool2d(x, 1)
        gate = torch.sigmoid(self.fc2(F.relu(self.fc1(gate))))
        return x * gate


class IRSEUnit(nn.Module):
    """bottleneck_IR_SE: BN-conv-PReLU-conv(stride)-BN-SE residual branch plus a shortcut.

    The shortcut is a strided 1x1 conv + BN when the channel count changes, else plain subsampling
    (the original uses MaxPool2d(kernel 1, stride), i.e. taking every stride-th pixel).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        if in_channels == out_channels:
            self.shortcut_layer = None
        else:
            self.shortcut_layer = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )
        self.res_layer = nn.Sequential(
            nn.BatchNorm2d(in_channels),
            nn.Conv2d(in_channels, out_channels, 3, 1, 1, bias=False),
            nn.PReLU(out_channels),
            nn.Conv2d(out_channels, out_channels, 3, stride, 1, bias=False),
            nn.BatchNorm2d(out_channels),
            SEModule(out_channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.shortcut_layer is None:
            shortcut = x[:, :, :: self.stride, :: self.stride]
        else:
            shortcut = self.shortcut_layer(x)
        return self.res_layer(x) + shortcut


class EqualLinear(nn.Module):
    """Linear layer with StyleGAN2's equalized learning rate (weights scaled at run time)."""

    def __init__(self, in_dim: int, out_dim: int, lr_mul: float = 1.0) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_dim, in_dim) / lr_mul)
        self.bias = nn.Parameter(torch.zeros(out_dim))
        self.scale = lr_mul / math.sqrt(in_dim)
        self.lr_mul = lr_mul

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight * self.scale, self.bias * self.lr_mul)


class GradualStyleBlock(nn.Module):
    """A square feature map -> one latent: log2(spatial) stride-2 convs to 1x1, then a linear.

    The convs are ``hidden`` wide (e4e: the latent width, so official checkpoints have
    hidden == out_channels); small configs narrow them.
    """

    def __init__(self, in_channels: int, out_channels: int, spatial: int,
                 hidden: int | None = None) -> None:
        super().__init__()
        hidden = hidden or out_channels
        n_convs = int(math.log2(spatial))
        if 2**n_convs != spatial or n_convs < 1:
            raise UsageError(f"style head input size {spatial} must be a power of two >= 2")
        layers: list[nn.Module] = []
        for i in range(n_convs):
            layers += [
                nn.Conv2d(in_channels if i == 0 else hidden, hidden, 3, 2, 1),
                nn.LeakyReLU(0.01),
            ]
        self.convs = nn.Sequential(*layers)
        self.linear = EqualLinear(hidden, out_channels)
        self.hidden = hidden

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.convs(x)
        return self.linear(x.reshape(x.shape[0], self.hidden))


def upsample_add(top: torch.Tensor, lateral: torch.Tensor) -> torch.Tensor:
    """FPN merge: bilinearly resize the coarser map to the lateral one's size and add."""
    up = F.interpolate(top, size=lateral.shape[-2:], mode="bilinear", align_corners=True)
    return up + lateral


class Encoder4Editing(nn.Module):
    """e4e: images [B, 3, S, S] in [-1, 1] -> W+ latents [B, n_latent, style_dim]."""

    def __init__(self, cfg: EncoderConfig, n_latent: int, style_dim: int,
                 feature_shape: tuple[int, int] | None = None) -> None:
        """``feature_shape``: (channels C_f, side r_f) of the generator's features that the
        spatial head's F replaces; None = W+ only (e4e)."""
        super().__init__()
        if cfg.input_size % 64 or cfg.input_size < 64:
            raise UsageError(
                f"encoder input_size {cfg.input_size} must be a multiple of 64",
                hint="the trunk downsamples by 16 and the coarse head needs at least 4x4 features",
            )
        if n_latent < 1 or style_dim < 1:
            raise UsageError(f"invalid latent shape ({n_latent}, {style_dim})")
        self.cfg = cfg
        self.n_latent = n_latent
        self.style_dim = style_dim
        layout = stage_layout(cfg)
        width = layout[0][0]
        self.input_layer = nn.Sequential(
            nn.Conv2d(3, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.PReLU(width)
        )
        units: list[nn.Module] = []
        self.stage_ends: list[int] = []  # index in ``body`` of each stage's last unit
        in_channels = width
        for channels, n_units in layout:
            for i in range(n_units):
                units.append(IRSEUnit(in_channels, channels, 2 if i == 0 else 1))
                in_channels = channels
            self.stage_ends.append(len(units) - 1)
        self.body = nn.Sequential(*units)

        top = layout[3][0]
        coarse = cfg.input_size // 16  # side of c3; c2 is twice that, c1 four times
        self.styles = nn.ModuleList()
        for i in range(n_latent):
            spatial = coarse if i < COARSE_END else coarse * 2 if i < MIDDLE_END else coarse * 4
            self.styles.append(GradualStyleBlock(top, style_dim, spatial, cfg.head_width or None))
        self.latlayer1 = nn.Conv2d(layout[2][0], top, 1)
        self.latlayer2 = nn.Conv2d(layout[1][0], top, 1)
        self.feature_head: nn.Sequential | None = None
        self.feature_side = 0
        if feature_shape is not None:
            channels, side = feature_shape
            hidden = cfg.feature_width or channels
            self.feature_side = side
            self.feature_head = nn.Sequential(
                nn.Conv2d(top, hidden, 3, 1, 1), nn.LeakyReLU(0.2),
                nn.Conv2d(hidden, hidden, 3, 1, 1), nn.LeakyReLU(0.2),
                nn.Conv2d(hidden, channels + 3, 1),  # features + the RGB skip
            )
            nn.init.zeros_(self.feature_head[-1].weight)
            nn.init.zeros_(self.feature_head[-1].bias)

        # Offsets are predicted from the generator's average latent (set from its checkpoint).
        self.register_buffer("latent_avg", torch.zeros(n_latent, style_dim))
        # How many deltas are active (e4e's progressive stage); n_latent - 1 means all of them.
        self.progressive_stage = n_latent - 1

    def set_progressive_stage(self, stage: int) -> None:
        if not 0 <= stage < self.n_latent:
            raise UsageError(f"progressive stage {stage} is outside [0, {self.n_latent - 1}]")
        self.progressive_stage = stage

    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Trunk outputs (c1, c2, c3) at 1/4, 1/8 and 1/16 of the input side."""
        x = self.input_layer(x)
        taps = {self.stage_ends[1]: 0, self.stage_ends[2]: 1, self.stage_ends[3]: 2}
        feats: list[torch.Tensor] = [x, x, x]
        for i, unit in enumerate(self.body):
            x = unit(x)
            if i in taps:
                feats[taps[i]] = x
        return feats[0], feats[1], feats[2]

    def forward(self, x: torch.Tensor, *, with_features: bool = False
                ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor | None]:
        """W+ [B, n_latent, style_dim]; with ``with_features`` the pair (W+, feature residual
        [B, C_f + 3, r_f, r_f], or None without a spatial head)."""
        size = self.cfg.input_size
        if x.ndim != 4 or x.shape[1] != 3 or x.shape[2] != size or x.shape[3] != size:
            raise UsageError(
                f"e4e expects images of shape [B, 3, {size}, {size}], got {list(x.shape)}",
                hint="resize the aligned face to the encoder's input_size first",
            )
        c1, c2, c3 = self.features(x)
        pyramid: dict[str, torch.Tensor] = {}

        def p2() -> torch.Tensor:
            if "p2" not in pyramid:
                pyramid["p2"] = upsample_add(c3, self.latlayer1(c2))
            return pyramid["p2"]

        def p1() -> torch.Tensor:
            if "p1" not in pyramid:
                pyramid["p1"] = upsample_add(p2(), self.latlayer2(c1))
            return pyramid["p1"]

        w0 = self.styles[0](c3)
        latents = [w0]
        active = min(self.progressive_stage, self.n_latent - 1)
        for i in range(1, self.n_latent):
            if i > active:
                latents.append(w0)
                continue
            feats = c3 if i < COARSE_END else p2() if i < MIDDLE_END else p1()
            latents.append(w0 + self.styles[i](feats))
        wplus = torch.stack(latents, dim=1) + self.latent_avg
        if not with_features:
            return wplus
        if self.feature_head is None:
            return wplus, None
        levels = {c3.shape[-1]: lambda: c3, c2.shape[-1]: p2, c1.shape[-1]: p1}
        level = levels[self.feature_side]() if self.feature_side in levels else F.interpolate(
            p1(), size=(self.feature_side, self.feature_side), mode="bilinear", align_corners=False)
        return wplus, self.feature_head(level)

    def explain_state_mismatch(self, state: dict[str, torch.Tensor]) -> str | None:
        """A one-line reason when ``state`` and this encoder disagree about the spatial head."""
        has_head = any(k.startswith("feature_head.") for k in state)
        if self.feature_head is not None and not has_head:
            return ("the config has the spatial path (generator.feature_resolution "
                    f"{self.feature_side}) but the encoder weights have no feature head "
                    "(feature_head.*): they were trained without it")
        if self.feature_head is None and has_head:
            return ("the encoder weights have a spatial feature head (feature_head.*) but the "
                    "config has no spatial path (generator.feature_resolution 0)")
        return None
