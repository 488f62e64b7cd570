"""StyleGAN2 generator and residual discriminator in plain PyTorch, with per-channel weight offsets.

The module and parameter names are those of rosinality/stylegan2-pytorch (``Generator`` and
``Discriminator``), so its ``g_ema`` and ``d`` checkpoints load with ``strict=True`` after
:func:`hypernst_cli.models.official.stylegan2_generator_to_ours`. The fused CUDA ops of the
original (``upfirdn2d``, ``fused_leaky_relu``) are written here with ordinary torch ops, so the same
code runs on CPU and CUDA without building an extension.

Weight offsets (HyperStyle's scheme)
------------------------------------
Every modulated conv and every toRGB layer takes an optional offset ``delta`` of shape
``[B, out, in]`` (or ``[B, out, in, 1, 1]``, or a full ``[B, out, in, k, k]``): one value per
(output channel, input channel) pair, shared by the k x k taps of the kernel. The effective weight
of sample b is ``W * (1 + delta[b])``, applied before modulation and demodulation. Each sample of a
batch has its own offsets: the grouped convolution of StyleGAN2 already builds one kernel per
sample, so offsets cost no extra convolution.

Speed
-----
The modulated convolution computes everything that scales a kernel (equalized-lr scale, style,
offset, demodulation) on the small [B, out, in] factor and touches the [B, out, in, k, k] kernel
once; the demodulation uses sum_taps(W^2) per (out, in). On a CPU the upsampling convolution runs
as four ordinary convolutions over the output phases (:func:`upsample_conv2d`), and without
autograd the noise, bias and activation update the conv output in place. The arithmetic is that
of the original formulation (tests/test_perf_generator.py compares with it, gradients included).

Layer indexing (synthesis order)
--------------------------------
``Generator.layer_specs()`` lists the layers that take offsets, in the order the image is built;
the index is HyperStyle's ``weights_deltas`` index. The mapping network and the constant input are
not counted (they have no kernel to offset)::

    0  conv1      (4 px)          1  to_rgb1   (4 px)
    then per resolution r = 8, 16, ..., R:  conv up (convs.2b), conv (convs.2b+1), toRGB (to_rgbs.b)
    with b = log2(r) - 3 at indices 2 + 3b, 3 + 3b, 4 + 3b.

So the index of a layer does not depend on the output resolution (it is anchored at 4 px): index
13 is ``to_rgbs.3``, the 64 px toRGB, for every generator of 64 px or more. A generator of
resolution R has ``3 * log2(R) - 4`` layers: 14 at 64 px, 17 at 128, 20 at 256, 26 at 1024.

The paper's "layer 13" (section 4.3: "out of 25 layers", ablated starts 3, 7, 13, 17, 22, "toRGB
layers") is read as an index into HyperStyle's 26-entry layer table (indices 0..25 of a 1024 px
StyleGAN2, whose toRGB layers are 1, 4, 7, ..., 25): "25" is the last index, 7, 13 and 22 are
toRGB layers there (16, 64 and 512 px); 3 and 17 are convs (``convs.1`` at 8 px, ``convs.11`` at
256 px), so the paper's "toRGB" remark fits only some of its own numbers, and 22 lies beyond the
20 layers of a 256 px generator (which matches its Table 3 row: best content, worst style). No
count that includes the mapping network or the constant gives 25 for 256 px. Hence:

==========  ======  ==========================================================================
resolution  layers  paper's start "layer 13" in our indexing
==========  ======  ==========================================================================
1024        26      13 = ``to_rgbs.3`` (64 px toRGB); tuned in stage 2: 13..25
256         20      13 = ``to_rgbs.3`` (64 px toRGB, i.e. R/4); tuned in stage 2: 13..19 (7 layers)
128         17      10 = ``to_rgbs.2`` (32 px = R/4 toRGB): the same last 7 layers as at 256 px
64          14      7 = ``to_rgbs.1`` (16 px = R/4 toRGB): the same last 7 layers as at 256 px
==========  ======  ==========================================================================

For 128 and 64 px (our ``compact`` and ``tiny`` configs) the literal index 13 would leave only the
last toRGB (64 px) or the last block (128 px) to stylize, so those configs keep the paper's
proportion instead: start at the R/4 toRGB, i.e. the last 7 layers (:func:`paper_start_layer`).

Spatial features (``feature_resolution`` r_f > 0; Feature-Style encoder, HFGI; not in the paper)
-------------------------------------------------------------------------------------------------
A W+ latent is 14 x 256 numbers for a 256 px image: a small generator cannot draw a given face's
detail from it. With the spatial path the encoder also gives a feature map F that takes the place
of the generator's own features at r_f, so the detail of the photo reaches the output::

    F            [B, C_f + 3, r_f, r_f]   C_f = channels[r_f] (e.g. 64 + 3 at r_f = 64 in compact256)
    F[:, :C_f]   the output of the second conv at r_f (``convs.{2b+1}``, b = log2(r_f) - 3)
    F[:, C_f:]   the RGB skip entering the toRGB at r_f: the earlier toRGBs' sum, upsampled to r_f

The split is after the block's convs and before its toRGB, and F carries the skip image too, so
``G(w, features=G_f(w)) == G(w)`` exactly (:meth:`Generator.spatial_features` is G_f) and the
earlier skips need not be recomputed. When F is given, the constant input, ``conv1``,
``to_rgb1`` and every block below r_f and the convs at r_f are SKIPPED: layers
0 .. ``first_live_layer`` - 1 and latents 0 .. ``first_live_latent`` - 1 are not read (nor their
offsets). The toRGB at r_f (layer 3 log2(r_f) - 5: 13 at r_f = 64, 10 at 32) and everything after
it run as before, modulated by W+ and by the hyper-network's offsets. At r_f = 64 that is exactly
the paper's stage-2 range (13..19 at 256 px), so the hyper-network keeps all the layers stage 2
stylizes; :func:`hypernst_cli.models.hypernet.build_hypernet` gives the skipped layers no heads.

``feature_residual`` (training) renders F = G_f(w) + residual in one call; the encoder predicts
that residual (models/e4e.py) and ``pipeline.core.encode`` adds G_f(W+). Edits move F by the
generator's own feature difference, F + G_f(w_edit) - G_f(w) (``pipeline.core.edit_latent``).
Costs at 256 px (``compact256``, docs/compact-model.md "Spatial features"): a render from F is
half the FLOPs of a render from W+ (0.98 vs 1.97 GFLOPs a 256 px image), which every refinement
pass of the hyper-network gets; encoding adds G_f once per image.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import torch
from torch import nn
from torch.nn import functional as F

if TYPE_CHECKING:
    from hypernst_cli.configs import GeneratorConfig

BLUR_KERNEL = (1, 3, 3, 1)
SQRT2 = math.sqrt(2.0)


# --- plain-torch versions of the fused ops -----------------------------------------------------


def fused_leaky_relu(x: torch.Tensor, bias: torch.Tensor | None = None,
                     negative_slope: float = 0.2, scale: float = SQRT2,
                     inplace: bool = False) -> torch.Tensor:
    """Bias add + leaky ReLU + gain sqrt(2) (keeps the activations' variance, as in StyleGAN2).

    ``inplace`` (callers that own ``x``, without autograd) overwrites ``x``: three passes over
    the activations instead of three new tensors.
    """
    if inplace and not torch.is_grad_enabled():
        if bias is not None:
            x.add_(bias.view(1, -1, *([1] * (x.ndim - 2))))
        return F.leaky_relu_(x, negative_slope).mul_(scale)
    if bias is not None:
        x = x + bias.view(1, -1, *([1] * (x.ndim - 2)))
    return F.leaky_relu(x, negative_slope) * scale


def upfirdn2d(x: torch.Tensor, kernel: torch.Tensor, up: int = 1, down: int = 1,
              pad: tuple[int, int] = (0, 0)) -> torch.Tensor:
    """Upsample (zero insertion), pad, FIR-filter with ``kernel``, downsample; per channel.

    ``pad`` = (before, after), the same for both axes; negative values crop.
    """
    b, c, h, w = x.shape
    kh, kw = kernel.shape
    if up > 1:
        x = x.reshape(b, c, h, 1, w, 1)
        x = F.pad(x, (0, up - 1, 0, 0, 0, up - 1))
        x = x.reshape(b, c, h * up, w * up)
    p0, p1 = pad
    # conv2d is a correlation: flip to apply the filter as a convolution
    weight = torch.flip(kernel, (0, 1)).to(x.dtype).view(1, 1, kh, kw).repeat(c, 1, 1, 1)
    if p0 == p1 >= 0:
        # symmetric padding: let the convolution pad (no padded copy of the input)
        return F.conv2d(x, weight, stride=down, padding=p0, groups=c)
    x = F.pad(x, (max(p0, 0), max(p1, 0), max(p0, 0), max(p1, 0)))
    if p0 < 0 or p1 < 0:
        x = x[:, :, max(-p0, 0): x.shape[2] - max(-p1, 0), max(-p0, 0): x.shape[3] - max(-p1, 0)]
    return F.conv2d(x, weight, stride=down, groups=c)


def make_kernel(k: tuple[int, ...] | list[int]) -> torch.Tensor:
    """Separable 2-D FIR kernel from a 1-D one, normalised to sum 1."""
    t = torch.tensor(k, dtype=torch.float32)
    if t.ndim == 1:
        t = t[None, :] * t[:, None]
    return t / t.sum()


class FusedLeakyReLU(nn.Module):
    def __init__(self, channel: int, bias: bool = True) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channel)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return fused_leaky_relu(x, self.bias)


class PixelNorm(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(torch.mean(x * x, dim=1, keepdim=True) + 1e-8)


class Upsample(nn.Module):
    def __init__(self, kernel: tuple[int, ...] = BLUR_KERNEL, factor: int = 2) -> None:
        super().__init__()
        self.factor = factor
        self.register_buffer("kernel", make_kernel(kernel) * factor**2)  # persistent, as upstream
        p = len(kernel) - factor
        self.pad = ((p + 1) // 2 + factor - 1, p // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return upfirdn2d(x, self.kernel, up=self.factor, pad=self.pad)


class Blur(nn.Module):
    def __init__(self, kernel: tuple[int, ...], pad: tuple[int, int], upsample_factor: int = 1) -> None:
        super().__init__()
        self.register_buffer("kernel", make_kernel(kernel) * upsample_factor**2)
        self.pad = pad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return upfirdn2d(x, self.kernel, pad=self.pad)


# --- equalized-learning-rate layers ------------------------------------------------------------


class EqualConv2d(nn.Module):
    def __init__(self, in_channel: int, out_channel: int, kernel_size: int, stride: int = 1,
                 padding: int = 0, bias: bool = True) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channel, in_channel, kernel_size, kernel_size))
        self.scale = 1 / math.sqrt(in_channel * kernel_size**2)
        self.stride = stride
        self.padding = padding
        self.bias = nn.Parameter(torch.zeros(out_channel)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.scale, bias=self.bias, stride=self.stride,
                        padding=self.padding)


class EqualLinear(nn.Module):
    def __init__(self, in_dim: int, out_dim: int, bias: bool = True, bias_init: float = 0.0,
                 lr_mul: float = 1.0, activation: str | None = None) -> None:
        super().__init__()
        # weights stored divided by lr_mul and scaled back at run time: the learning rate of this
        # layer is effectively multiplied by lr_mul (StyleGAN's mapping network uses 0.01)
        self.weight = nn.Parameter(torch.randn(out_dim, in_dim).div_(lr_mul))
        self.bias = nn.Parameter(torch.full((out_dim,), float(bias_init))) if bias else None
        self.activation = activation
        self.scale = lr_mul / math.sqrt(in_dim)
        self.lr_mul = lr_mul

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = self.bias * self.lr_mul if self.bias is not None else None
        if self.activation:
            return fused_leaky_relu(F.linear(x, self.weight * self.scale), bias)
        return F.linear(x, self.weight * self.scale, bias=bias)


# --- synthesis layers --------------------------------------------------------------------------


def _offset_factor(delta: torch.Tensor, batch: int, out_channel: int, in_channel: int,
                   kernel_size: int) -> torch.Tensor:
    """``1 + delta`` shaped [B, out, in, k|1, k|1] to multiply the [1, out, in, k, k] weight."""
    if delta.ndim == 3:
        delta = delta[..., None, None]
    if (delta.ndim != 5 or delta.shape[1:3] != (out_channel, in_channel)
            or delta.shape[3] not in (1, kernel_size) or delta.shape[4] not in (1, kernel_size)
            or delta.shape[0] not in (1, batch)):
        raise ValueError(
            f"weight offset of shape {tuple(delta.shape)} does not fit a layer with "
            f"{out_channel} outputs, {in_channel} inputs and batch {batch}: expected "
            f"[{batch}, {out_channel}, {in_channel}] (optionally with 1x1 or "
            f"{kernel_size}x{kernel_size} trailing dims)"
        )
    return 1 + delta


class ModulatedConv2d(nn.Module):
    def __init__(self, in_channel: int, out_channel: int, kernel_size: int, style_dim: int,
                 demodulate: bool = True, upsample: bool = False,
                 blur_kernel: tuple[int, ...] = BLUR_KERNEL) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.in_channel = in_channel
        self.out_channel = out_channel
        self.upsample = upsample
        if upsample:
            factor = 2
            p = (len(blur_kernel) - factor) - (kernel_size - 1)
            self.blur = Blur(blur_kernel, pad=((p + 1) // 2 + factor - 1, p // 2 + 1),
                             upsample_factor=factor)
        self.scale = 1 / math.sqrt(in_channel * kernel_size**2)
        self.padding = kernel_size // 2
        self.weight = nn.Parameter(torch.randn(1, out_channel, in_channel, kernel_size, kernel_size))
        self.modulation = EqualLinear(style_dim, in_channel, bias_init=1)
        self.demodulate = demodulate
        self.upsample_method: UpsampleMethod = "auto"  # see upsample_conv2d (not in the state dict)

    def forward(self, x: torch.Tensor, style: torch.Tensor,
                delta: torch.Tensor | None = None) -> torch.Tensor:
        batch, in_channel, height, width = x.shape
        k = self.kernel_size
        # Everything that scales a kernel (equalized-lr scale, style s_i, offset 1 + delta_oi,
        # demodulation d_o) is one factor per (sample, out, in): compute it on [B, out, in] and
        # touch the full [B, out, in, k, k] kernel once.
        factor = (self.scale * self.modulation(style)).view(batch, 1, in_channel)
        taps = None  # a per-tap offset [B|1, out, in, k, k] (rare: HyperStyle's full-kernel mode)
        if delta is not None:
            offset = _offset_factor(delta, batch, self.out_channel, in_channel, k)
            if offset.shape[3] == 1 and offset.shape[4] == 1:
                factor = factor * offset[:, :, :, 0, 0]
            else:
                taps = offset
        if taps is None:
            if self.demodulate:
                # sum over out's kernel of (W * f)^2 = sum_in f^2 * sum_taps W^2
                w_sq = self.weight[0].pow(2).sum([2, 3])  # [out, in]
                demod = torch.rsqrt((factor * factor * w_sq).sum(2) + 1e-8)  # [B, out]
                factor = factor * demod[:, :, None]
            weight = self.weight * factor[..., None, None]  # [B, out, in, k, k]
        else:
            weight = self.weight * taps * factor[..., None, None]
            if self.demodulate:
                demod = torch.rsqrt(weight.pow(2).sum([2, 3, 4]) + 1e-8)
                weight = weight * demod.view(batch, self.out_channel, 1, 1, 1)

        # one kernel per sample: a grouped convolution over the batch folded into channels
        # (groups=1 at batch 1, a plain convolution)
        x = x.reshape(1, batch * in_channel, height, width)
        weight = weight.reshape(batch * self.out_channel, in_channel, k, k)
        if self.upsample:
            out = upsample_conv2d(x, weight, groups=batch, method=self.upsample_method)
            out = out.view(batch, self.out_channel, out.shape[2], out.shape[3])
            return self.blur(out)
        out = F.conv2d(x, weight, padding=self.padding, groups=batch)
        return out.view(batch, self.out_channel, out.shape[2], out.shape[3])


UpsampleMethod = Literal["auto", "polyphase", "transpose"]


def upsample_conv2d(x: torch.Tensor, weight: torch.Tensor, groups: int = 1,
                    method: UpsampleMethod = "auto") -> torch.Tensor:
    """``conv_transpose2d(x, w, stride=2)`` with ``weight`` in conv2d layout [out, in/groups, k, k]
    (w[i, o] = weight[o, i], rosinality's layout), output 2(H - 1) + k per side.

    ``polyphase`` (the CPU default): each output phase (row parity p, column parity q) is an
    ordinary convolution of the input with the taps of that parity, kernel reversed, so the work
    is the same number of multiply-adds as the transposed convolution but on the fast conv2d path
    (PyTorch's CPU transposed convolution is ~2x slower per FLOP, and much slower when grouped).
    ``transpose``: one transposed convolution (cuDNN handles it well: the default on CUDA).
    """
    if method == "auto":
        method = "transpose" if x.device.type == "cuda" else "polyphase"
    out_ch, in_per_group, k, _ = weight.shape
    if method == "transpose":
        w = weight.view(groups, out_ch // groups, in_per_group, k, k).transpose(1, 2)
        return F.conv_transpose2d(x, w.reshape(groups * in_per_group, out_ch // groups, k, k),
                                  stride=2, groups=groups)
    if method != "polyphase":
        raise ValueError(f"unknown upsampling method '{method}' (auto, polyphase, transpose)")
    n, _, h, w_in = x.shape
    shape = (n, out_ch, 2 * (h - 1) + k, 2 * (w_in - 1) + k)
    # a 1-tap kernel leaves the odd phases empty (zeros); otherwise every pixel is written below
    out = x.new_zeros(shape) if k < 2 else x.new_empty(shape)
    # output row 2i + a receives tap a of input row i: phase p takes the taps a = p, p + 2, ...
    # in reverse order (a correlation), i.e. every other tap of the flipped kernel
    flipped = weight.flip(2, 3)
    for p in range(min(2, k)):
        for q in range(min(2, k)):
            taps = flipped[:, :, (k - 1 - p) % 2::2, (k - 1 - q) % 2::2].contiguous()
            out[:, :, p::2, q::2] = F.conv2d(
                x, taps, padding=(taps.shape[2] - 1, taps.shape[3] - 1), groups=groups)
    return out


class NoiseInjection(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        if noise is None:
            noise = x.new_empty(x.shape[0], 1, x.shape[2], x.shape[3]).normal_()
        return x + self.weight * noise


class ConstantInput(nn.Module):
    def __init__(self, channel: int, size: int = 4) -> None:
        super().__init__()
        self.input = nn.Parameter(torch.randn(1, channel, size, size))

    def forward(self, batch: int) -> torch.Tensor:
        return self.input.expand(batch, -1, -1, -1)


class StyledConv(nn.Module):
    def __init__(self, in_channel: int, out_channel: int, kernel_size: int, style_dim: int,
                 upsample: bool = False, blur_kernel: tuple[int, ...] = BLUR_KERNEL) -> None:
        super().__init__()
        self.conv = ModulatedConv2d(in_channel, out_channel, kernel_size, style_dim,
                                    upsample=upsample, blur_kernel=blur_kernel)
        self.noise = NoiseInjection()
        self.activate = FusedLeakyReLU(out_channel)

    def forward(self, x: torch.Tensor, style: torch.Tensor, noise: torch.Tensor | None = None,
                delta: torch.Tensor | None = None) -> torch.Tensor:
        out = self.conv(x, style, delta)
        if torch.is_grad_enabled():
            return self.activate(self.noise(out, noise=noise))
        # inference: ``out`` is ours, so noise, bias and activation update it in place
        if noise is None:
            noise = out.new_empty(out.shape[0], 1, out.shape[2], out.shape[3]).normal_()
        out.addcmul_(noise.to(out.dtype), self.noise.weight.to(out.dtype))
        return fused_leaky_relu(out, self.activate.bias, inplace=True)


class ToRGB(nn.Module):
    def __init__(self, in_channel: int, style_dim: int, upsample: bool = True,
                 blur_kernel: tuple[int, ...] = BLUR_KERNEL) -> None:
        super().__init__()
        if upsample:
            self.upsample = Upsample(blur_kernel)
        self.conv = ModulatedConv2d(in_channel, 3, 1, style_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))

    def forward(self, x: torch.Tensor, style: torch.Tensor, skip: torch.Tensor | None = None,
                delta: torch.Tensor | None = None) -> torch.Tensor:
        out = self.conv(x, style, delta) + self.bias
        if skip is not None:
            out = out + self.upsample(skip)
        return out


def channel_table(channel_multiplier: float = 2, max_channels: int = 512) -> dict[int, int]:
    """Channels per resolution (StyleGAN2's table), capped at ``max_channels``. A fractional
    multiplier (our small configs) narrows the high resolutions; official models use 1 or 2."""
    cm = channel_multiplier
    table = {4: 512, 8: 512, 16: 512, 32: 512, 64: 256 * cm, 128: 128 * cm, 256: 64 * cm,
             512: 32 * cm, 1024: 16 * cm}
    return {r: max(1, min(int(c), max_channels)) for r, c in table.items()}


@dataclass(frozen=True)
class LayerSpec:
    """One layer that takes a weight offset, in synthesis order (see the module docstring)."""

    index: int
    name: str  # module path: "conv1", "to_rgb1", "convs.N", "to_rgbs.N"
    kind: Literal["conv", "torgb"]
    in_channels: int
    out_channels: int
    kernel_size: int
    resolution: int  # output resolution of the layer

    @property
    def offset_shape(self) -> tuple[int, int]:
        return (self.out_channels, self.in_channels)


def layer_count(resolution: int) -> int:
    return 3 * int(math.log2(resolution)) - 4


def paper_start_layer(resolution: int) -> int:
    """The paper's stylization start ("layer 13" at 256 px) for a generator of ``resolution``.

    The R/4 toRGB layer (13 at 256 px), i.e. the last 7 layers; for 1024 px the literal index 13
    of HyperStyle's table (which that table was written for). See the module docstring.
    """
    if resolution >= 256:
        return 13
    return layer_count(resolution) - 7


class Generator(nn.Module):
    """StyleGAN2 generator (rosinality layout) with per-sample, per-layer weight offsets."""

    def __init__(self, resolution: int = 256, style_dim: int = 512, n_mlp: int = 8,
                 channel_multiplier: float = 2, lr_mlp: float = 0.01, max_channels: int = 512,
                 feature_resolution: int = 0,
                 blur_kernel: tuple[int, ...] = BLUR_KERNEL) -> None:
        super().__init__()
        log_size = int(math.log2(resolution))
        if resolution < 8 or 2**log_size != resolution or resolution > 1024:
            raise ValueError(f"StyleGAN2 resolution must be a power of two in 8..1024, got {resolution}")
        log_f = int(math.log2(feature_resolution)) if feature_resolution else 0
        if feature_resolution and (2**log_f != feature_resolution or not 8 <= feature_resolution < resolution):
            raise ValueError(f"feature_resolution must be 0 or a power of two in 8..{resolution // 2}, "
                             f"got {feature_resolution}")
        self.feature_resolution = feature_resolution
        # the block (index into to_rgbs) whose features F replaces; None = no spatial path
        self.feature_block: int | None = log_f - 3 if feature_resolution else None
        self.size = resolution
        self.style_dim = style_dim
        self.log_size = log_size
        self.style = nn.Sequential(
            PixelNorm(),
            *[EqualLinear(style_dim, style_dim, lr_mul=lr_mlp, activation="fused_lrelu")
              for _ in range(n_mlp)],
        )
        self.channels = channel_table(channel_multiplier, max_channels)
        self.input = ConstantInput(self.channels[4])
        self.conv1 = StyledConv(self.channels[4], self.channels[4], 3, style_dim,
                                blur_kernel=blur_kernel)
        self.to_rgb1 = ToRGB(self.channels[4], style_dim, upsample=False)

        self.num_layers = (log_size - 2) * 2 + 1  # noise inputs: one per StyledConv
        self.convs = nn.ModuleList()
        self.upsamples = nn.ModuleList()  # empty; kept for the upstream module layout
        self.to_rgbs = nn.ModuleList()
        self.noises = nn.Module()
        for i in range(self.num_layers):
            res = 2 ** ((i + 5) // 2)
            self.noises.register_buffer(f"noise_{i}", torch.randn(1, 1, res, res))

        in_channel = self.channels[4]
        for i in range(3, log_size + 1):
            out_channel = self.channels[2**i]
            self.convs.append(StyledConv(in_channel, out_channel, 3, style_dim, upsample=True,
                                         blur_kernel=blur_kernel))
            self.convs.append(StyledConv(out_channel, out_channel, 3, style_dim,
                                         blur_kernel=blur_kernel))
            self.to_rgbs.append(ToRGB(out_channel, style_dim))
            in_channel = out_channel
        self.n_latent = log_size * 2 - 2

    # -- layers ---------------------------------------------------------------------------------

    def synthesis_layers(self) -> list[nn.Module]:
        """The StyledConv / ToRGB modules in synthesis order (index = offset index)."""
        layers: list[nn.Module] = [self.conv1, self.to_rgb1]
        for b, to_rgb in enumerate(self.to_rgbs):
            layers += [self.convs[2 * b], self.convs[2 * b + 1], to_rgb]
        return layers

    def layer_specs(self) -> list[LayerSpec]:
        specs = [
            LayerSpec(0, "conv1", "conv", self.channels[4], self.channels[4], 3, 4),
            LayerSpec(1, "to_rgb1", "torgb", self.channels[4], 3, 1, 4),
        ]
        for b in range(len(self.to_rgbs)):
            res = 2 ** (b + 3)
            up, conv, rgb = self.convs[2 * b].conv, self.convs[2 * b + 1].conv, self.to_rgbs[b].conv
            specs += [
                LayerSpec(2 + 3 * b, f"convs.{2 * b}", "conv", up.in_channel, up.out_channel, 3, res),
                LayerSpec(3 + 3 * b, f"convs.{2 * b + 1}", "conv", conv.in_channel,
                          conv.out_channel, 3, res),
                LayerSpec(4 + 3 * b, f"to_rgbs.{b}", "torgb", rgb.in_channel, 3, 1, res),
            ]
        return specs

    # -- latents --------------------------------------------------------------------------------

    def mapping(self, z: torch.Tensor) -> torch.Tensor:
        """z [..., style_dim] -> w [..., style_dim] (e.g. [B, n_latent, D] for a mixed W+)."""
        return self.style(z.reshape(-1, self.style_dim)).view(z.shape)

    @torch.no_grad()
    def mean_latent(self, n: int = 4096, generator: torch.Generator | None = None) -> torch.Tensor:
        """Mean of ``n`` mapped random z: [1, style_dim] (the truncation centre)."""
        device = self.input.input.device
        z = torch.randn(n, self.style_dim, generator=generator,
                        device=generator.device if generator is not None else device)
        return self.style(z.to(device)).mean(0, keepdim=True)

    def make_noise(self, batch: int = 1, generator: torch.Generator | None = None) -> list[torch.Tensor]:
        device = self.input.input.device
        out = []
        for i in range(self.num_layers):
            res = 2 ** ((i + 5) // 2)
            out.append(torch.randn(batch, 1, res, res, generator=generator,
                                   device=generator.device if generator is not None else device)
                       .to(device))
        return out

    # -- spatial path ---------------------------------------------------------------------------

    @property
    def spatial(self) -> bool:
        return self.feature_block is not None

    def _require_spatial(self, what: str) -> None:
        if self.feature_block is None:
            raise ValueError(f"{what}: this generator has no spatial path (feature_resolution 0)")

    def feature_shape(self) -> tuple[int, int, int]:
        """(channels, side, side) of a spatial feature map F: the r_f features and the RGB skip."""
        self._require_spatial("feature_shape")
        r_f = self.feature_resolution
        return (self.channels[r_f] + 3, r_f, r_f)

    @property
    def first_live_layer(self) -> int:
        """The first layer (offset index) that runs when F is given: the toRGB at r_f."""
        return first_live_layer(self.feature_resolution)

    @property
    def first_live_latent(self) -> int:
        """The first W+ latent read when F is given (the toRGB's at r_f); earlier ones are not."""
        return 0 if self.feature_block is None else 3 + 2 * self.feature_block

    def spatial_features(self, wplus: torch.Tensor, *,
                         offsets: list[torch.Tensor | None] | None = None,
                         noise: list[torch.Tensor] | None = None,
                         randomize_noise: bool = False) -> torch.Tensor:
        """G_f(w): the generator's own F for latents ``wplus``, [B, C_f + 3, r_f, r_f] (the
        module docstring). ``generator(wplus, features=G_f(wplus))`` is ``generator(wplus)``."""
        self._require_spatial("spatial_features")
        wplus, offsets, noise = self._inputs(wplus, offsets, noise, randomize_noise)
        return self._synthesize(wplus, offsets, noise, stop_at_features=True)[0]

    # -- synthesis ------------------------------------------------------------------------------

    def forward(self, wplus: torch.Tensor, *, features: torch.Tensor | None = None,
                feature_residual: torch.Tensor | None = None,
                offsets: list[torch.Tensor | None] | None = None,
                noise: list[torch.Tensor] | None = None, randomize_noise: bool = False,
                return_layer_outputs: bool = False, skip: torch.Tensor | None = None
                ) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor | None]]:
        """W+ latents [B, n_latent, style_dim] (or W [B, style_dim]) -> image [B, 3, R, R].

        ``features``: a spatial feature map F [B, C_f + 3, r_f, r_f] (spatial path only): the
        layers before the toRGB at r_f are skipped and F stands for their output.
        ``feature_residual`` (same shape; training): runs every layer and adds it to G_f(w), i.e.
        renders F = G_f(w) + residual in one call.
        ``offsets``: one entry per layer of :meth:`layer_specs` (None = no offset) or None; the
        entries of skipped layers are not read.
        ``noise``: one tensor per StyledConv; else the stored noise buffers, or fresh noise when
        ``randomize_noise``. With ``return_layer_outputs`` also returns each layer's output
        (features for a conv, the running RGB skip for a toRGB; None for a skipped layer), in
        synthesis order. The image is in [-1, 1] for a trained generator (it is not clamped).
        ``skip``: a feature residual [B, C_R, R, R] added after the last block's up conv (the
        hyper-network's content skip, ``hypernet.skip_width``; not in the paper).
        """
        if features is not None and feature_residual is not None:
            raise ValueError("give features or feature_residual, not both")
        for name, value in (("features", features), ("feature_residual", feature_residual)):
            if value is not None:
                self._check_features(value, wplus.shape[0], name)
        if skip is not None:
            side = self.channels[self.size], self.size, self.size
            if tuple(skip.shape) != (wplus.shape[0], *side):
                raise ValueError(f"expected skip of shape {[wplus.shape[0], *side]}, "
                                 f"got {list(skip.shape)}")
        wplus, offsets, noise = self._inputs(wplus, offsets, noise, randomize_noise)
        image, outputs = self._synthesize(wplus, offsets, noise, features=features,
                                          residual=feature_residual, content_skip=skip)
        if return_layer_outputs:
            return image, outputs
        return image

    def _inputs(self, wplus: torch.Tensor, offsets: list[torch.Tensor | None] | None,
                noise: list[torch.Tensor] | None, randomize_noise: bool
                ) -> tuple[torch.Tensor, list[torch.Tensor | None], list[torch.Tensor | None]]:
        """Checked latents, one offset entry per layer, one noise entry per StyledConv."""
        if wplus.ndim == 2:
            wplus = wplus.unsqueeze(1).expand(-1, self.n_latent, -1)
        if wplus.ndim != 3 or wplus.shape[1:] != (self.n_latent, self.style_dim):
            raise ValueError(f"expected W+ latents [B, {self.n_latent}, {self.style_dim}], "
                             f"got {tuple(wplus.shape)}")
        n_layers = 2 + 3 * len(self.to_rgbs)
        if offsets is None:
            offsets = [None] * n_layers
        if len(offsets) != n_layers:
            raise ValueError(f"expected {n_layers} offset entries (one per layer), got {len(offsets)}")
        if noise is None:
            noise = ([None] * self.num_layers if randomize_noise else
                     [getattr(self.noises, f"noise_{i}") for i in range(self.num_layers)])
        return wplus, list(offsets), list(noise)

    def _check_features(self, features: torch.Tensor, batch: int, name: str) -> None:
        self._require_spatial(name)
        expected = (batch, *self.feature_shape())
        if tuple(features.shape) != expected:
            raise ValueError(f"expected {name} of shape {list(expected)}, "
                             f"got {list(features.shape)}")

    def _synthesize(self, wplus: torch.Tensor, offsets: list[torch.Tensor | None],
                    noise: list[torch.Tensor | None], *, features: torch.Tensor | None = None,
                    residual: torch.Tensor | None = None, stop_at_features: bool = False,
                    content_skip: torch.Tensor | None = None
                    ) -> tuple[torch.Tensor, list[torch.Tensor | None]]:
        """The synthesis loop of every entry point: (image, or F when ``stop_at_features``;
        the layer outputs)."""
        outputs: list[torch.Tensor | None] = [None] * len(offsets)
        first = 0
        if features is None:
            out = self.input(wplus.shape[0])
            out = self.conv1(out, wplus[:, 0], noise=noise[0], delta=offsets[0])
            skip = self.to_rgb1(out, wplus[:, 1], delta=offsets[1])
            outputs[0], outputs[1] = out, skip
        else:
            first = self.feature_block
            out, rgb = features[:, :-3], features[:, -3:]
        for b in range(first, len(self.to_rgbs)):
            k, i = 2 + 3 * b, 1 + 2 * b  # offset index of the block's up conv; its latent
            if features is None or b != first:
                out = self.convs[2 * b](out, wplus[:, i], noise=noise[2 * b + 1], delta=offsets[k])
                if content_skip is not None and b == len(self.to_rgbs) - 1:
                    out = out + content_skip.to(out.dtype)
                outputs[k] = out
                out = self.convs[2 * b + 1](out, wplus[:, i + 1], noise=noise[2 * b + 2],
                                            delta=offsets[k + 1])
                outputs[k + 1] = out
            if b == self.feature_block:
                # the split point: F = (features at r_f, the earlier RGB skip upsampled to r_f)
                if features is None:
                    rgb = self.to_rgbs[b].upsample(skip)
                    if stop_at_features:
                        return torch.cat([out, rgb], 1), outputs
                    if residual is not None:
                        out, rgb = out + residual[:, :-3], rgb + residual[:, -3:]
                skip = self.to_rgbs[b](out, wplus[:, i + 2], delta=offsets[k + 2]) + rgb
            else:
                skip = self.to_rgbs[b](out, wplus[:, i + 2], skip, delta=offsets[k + 2])
            outputs[k + 2] = skip
        return skip, outputs


# --- discriminator -----------------------------------------------------------------------------


class ConvLayer(nn.Sequential):
    def __init__(self, in_channel: int, out_channel: int, kernel_size: int,
                 downsample: bool = False, blur_kernel: tuple[int, ...] = BLUR_KERNEL,
                 bias: bool = True, activate: bool = True, padding: int | None = None) -> None:
        layers: list[nn.Module] = []
        if downsample:
            p = (len(blur_kernel) - 2) + (kernel_size - 1)
            layers.append(Blur(blur_kernel, pad=((p + 1) // 2, p // 2)))
            stride, pad = 2, 0
        else:
            stride, pad = 1, kernel_size // 2 if padding is None else padding
        layers.append(EqualConv2d(in_channel, out_channel, kernel_size, padding=pad,
                                  stride=stride, bias=bias and not activate))
        if activate:
            layers.append(FusedLeakyReLU(out_channel, bias=bias))
        super().__init__(*layers)


class ResBlock(nn.Module):
    def __init__(self, in_channel: int, out_channel: int,
                 blur_kernel: tuple[int, ...] = BLUR_KERNEL, downsample: bool = True) -> None:
        super().__init__()
        self.conv1 = ConvLayer(in_channel, in_channel, 3)
        self.conv2 = ConvLayer(in_channel, out_channel, 3, downsample=downsample,
                               blur_kernel=blur_kernel)
        self.skip = ConvLayer(in_channel, out_channel, 1, downsample=downsample,
                              blur_kernel=blur_kernel, activate=False, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.conv2(self.conv1(x)) + self.skip(x)) / SQRT2


class Discriminator(nn.Module):
    """StyleGAN2 residual discriminator (rosinality layout): logits [B, 1]."""

    def __init__(self, resolution: int = 256, channel_multiplier: float = 2, max_channels: int = 512,
                 blur_kernel: tuple[int, ...] = BLUR_KERNEL) -> None:
        super().__init__()
        channels = channel_table(channel_multiplier, max_channels)
        log_size = int(math.log2(resolution))
        convs: list[nn.Module] = [ConvLayer(3, channels[resolution], 1)]
        in_channel = channels[resolution]
        for i in range(log_size, 2, -1):
            out_channel = channels[2 ** (i - 1)]
            convs.append(ResBlock(in_channel, out_channel, blur_kernel))
            in_channel = out_channel
        self.convs = nn.Sequential(*convs)
        self.stddev_group = 4
        self.stddev_feat = 1
        self.final_conv = ConvLayer(in_channel + 1, channels[4], 3)
        self.final_linear = nn.Sequential(
            EqualLinear(channels[4] * 4 * 4, channels[4], activation="fused_lrelu"),
            EqualLinear(channels[4], 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.convs(x)
        batch, channel, height, width = out.shape
        # minibatch standard deviation over groups of samples (a batch not divisible by the
        # group size falls back to one group, so any batch size works)
        group = min(batch, self.stddev_group)
        if batch % group:
            group = math.gcd(batch, self.stddev_group)
        std = out.view(group, -1, self.stddev_feat, channel // self.stddev_feat, height, width)
        std = torch.sqrt(std.var(0, unbiased=False) + 1e-8)
        std = std.mean([2, 3, 4], keepdim=True).squeeze(2)
        std = std.repeat(group, 1, height, width)
        out = self.final_conv(torch.cat([out, std], 1))
        return self.final_linear(out.view(batch, -1))


# --- constructors ------------------------------------------------------------------------------


def build_generator(cfg: GeneratorConfig) -> Generator:
    return Generator(resolution=cfg.resolution, style_dim=cfg.style_dim, n_mlp=cfg.n_mlp,
                     channel_multiplier=cfg.channel_multiplier, lr_mlp=cfg.lr_mlp,
                     max_channels=cfg.max_channels, feature_resolution=cfg.feature_resolution)


def first_live_layer(feature_resolution: int) -> int:
    """The first layer that runs when F at ``feature_resolution`` is given (0 = no spatial path):
    the toRGB at r_f (13 for r_f = 64, 10 for 32), as ``Generator.first_live_layer``."""
    return 3 * int(math.log2(feature_resolution)) - 5 if feature_resolution else 0


def build_discriminator(cfg: GeneratorConfig) -> Discriminator:
    """The image discriminator for images of the generator's resolution."""
    return Discriminator(resolution=cfg.resolution, channel_multiplier=cfg.channel_multiplier,
                         max_channels=cfg.max_channels)


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (shared ones counted once); works on the meta device."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)
