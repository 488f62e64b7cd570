"""The fast paths of the generator against a straightforward reference implementation.

The reference below is StyleGAN2's modulated convolution written the textbook way: build each
sample's full kernel (W * (1 + delta) * scale * s), demodulate it on the full [B, out, in, k, k]
tensor, run a grouped (transposed) convolution, blur, then noise + bias + leaky ReLU out of place.
The generator's own code computes the factors on [B, out, in], upsamples by polyphase
convolutions on a CPU and updates activations in place without autograd; it must agree.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest
import torch
import torch.nn.functional as F

from hypernst_cli.configs import get_config
from hypernst_cli.models.stylegan2 import (
    Generator,
    ModulatedConv2d,
    StyledConv,
    build_generator,
    fused_leaky_relu,
    upfirdn2d,
    upsample_conv2d,
)

# --- the reference -----------------------------------------------------------------------------


def reference_modconv(conv: ModulatedConv2d, x: torch.Tensor, style: torch.Tensor,
                      delta: torch.Tensor | None = None) -> torch.Tensor:
    batch, in_channel, height, width = x.shape
    k = conv.kernel_size
    s = conv.modulation(style).view(batch, 1, in_channel, 1, 1)
    weight = conv.weight
    if delta is not None:
        if delta.ndim == 3:
            delta = delta[..., None, None]
        weight = weight * (1 + delta)
    weight = conv.scale * weight * s
    if conv.demodulate:
        demod = torch.rsqrt(weight.pow(2).sum([2, 3, 4]) + 1e-8)
        weight = weight * demod.view(batch, conv.out_channel, 1, 1, 1)
    x = x.reshape(1, batch * in_channel, height, width)
    if conv.upsample:
        weight = weight.transpose(1, 2).reshape(batch * in_channel, conv.out_channel, k, k)
        out = F.conv_transpose2d(x, weight, padding=0, stride=2, groups=batch)
        out = out.view(batch, conv.out_channel, out.shape[2], out.shape[3])
        return upfirdn2d(out, conv.blur.kernel, pad=conv.blur.pad)
    weight = weight.reshape(batch * conv.out_channel, in_channel, k, k)
    out = F.conv2d(x, weight, padding=conv.padding, groups=batch)
    return out.view(batch, conv.out_channel, out.shape[2], out.shape[3])


def reference_styled_conv(layer: StyledConv, x: torch.Tensor, style: torch.Tensor,
                          noise: torch.Tensor | None = None,
                          delta: torch.Tensor | None = None) -> torch.Tensor:
    out = reference_modconv(layer.conv, x, style, delta)
    out = out + layer.noise.weight * noise
    return F.leaky_relu(out + layer.activate.bias.view(1, -1, 1, 1), 0.2) * 2**0.5


@contextlib.contextmanager
def reference_generator() -> Iterator[None]:
    """Swap the reference into every ModulatedConv2d / StyledConv for the duration."""
    mod_fwd, styled_fwd = ModulatedConv2d.forward, StyledConv.forward
    ModulatedConv2d.forward = reference_modconv  # type: ignore[method-assign]
    StyledConv.forward = reference_styled_conv  # type: ignore[method-assign]
    try:
        yield
    finally:
        ModulatedConv2d.forward = mod_fwd  # type: ignore[method-assign]
        StyledConv.forward = styled_fwd  # type: ignore[method-assign]


# --- fixtures ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gen() -> Generator:
    torch.manual_seed(0)
    g = build_generator(get_config("tiny").generator).eval()
    with torch.no_grad():  # non-zero noise strengths and biases, so every parameter matters
        for name, p in g.named_parameters():
            if name.endswith("noise.weight") or name.endswith("bias"):
                p.normal_(0, 0.1)
    return g.requires_grad_(False)


def _inputs(g: Generator, batch: int, *, full_taps: bool = False, seed: int = 3):
    gen = torch.Generator().manual_seed(seed)
    w = g.mapping(torch.randn(batch, g.n_latent, g.style_dim, generator=gen))
    offsets = []
    for s in g.layer_specs():
        shape = (batch, s.out_channels, s.in_channels)
        if full_taps and s.kind == "conv":
            shape += (s.kernel_size, s.kernel_size)
        offsets.append(0.3 * torch.randn(*shape, generator=gen))
    return w, offsets


# --- tests -------------------------------------------------------------------------------------


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("full_taps", [False, True])
@pytest.mark.parametrize("method", ["polyphase", "transpose"])
def test_fast_generator_matches_the_reference(gen, batch, full_taps, method):
    w, offsets = _inputs(gen, batch, full_taps=full_taps)
    for m in gen.modules():
        if isinstance(m, ModulatedConv2d):
            m.upsample_method = method
    try:
        with torch.inference_mode():  # the in-place activation path
            fast = gen(w, offsets=offsets)
            plain = gen(w)
        with torch.inference_mode(), reference_generator():
            ref = gen(w, offsets=offsets)
            ref_plain = gen(w)
    finally:
        for m in gen.modules():
            if isinstance(m, ModulatedConv2d):
                m.upsample_method = "auto"
    scale = ref.abs().max().item()
    assert (fast - ref).abs().max().item() < 1e-4 * max(1.0, scale)
    assert (plain - ref_plain).abs().max().item() < 1e-4 * max(1.0, ref_plain.abs().max().item())
    # the offsets really change the image (so the comparison above is not vacuous)
    assert (fast - plain).abs().mean().item() > 1e-2


def test_gradients_match_the_reference(gen):
    """Training calls the same modules with autograd: the gradients to the offsets and latents
    must be those of the reference (and the in-place path must stay out of the graph)."""
    w, offsets = _inputs(gen, 2)
    grads = []
    for ctx in (contextlib.nullcontext(), reference_generator()):
        w_ = w.clone().requires_grad_(True)
        offs = [o.clone().requires_grad_(True) for o in offsets]
        with ctx:
            img = gen(w_, offsets=offs)
        (img * torch.linspace(-1, 1, img.numel()).view_as(img)).sum().backward()
        grads.append([w_.grad] + [o.grad for o in offs])
    for fast, ref in zip(*grads):
        assert fast is not None and ref is not None
        # float32 sums in a thread-count-dependent order: ~5e-5 of the largest gradient apart
        # with 2 threads; a wrong gradient is off by its own size
        assert torch.allclose(fast, ref, rtol=1e-3, atol=1e-4 * ref.abs().max().item() + 1e-7)


@pytest.mark.parametrize("k,groups,size", [(3, 1, 5), (3, 2, 4), (4, 1, 3), (1, 2, 4), (2, 1, 6)])
def test_polyphase_upsampling_is_the_transposed_convolution(k, groups, size):
    torch.manual_seed(k * 10 + groups)
    out_per, in_per = 4, 3
    x = torch.randn(2, groups * in_per, size, size + 1)
    weight = torch.randn(groups * out_per, in_per, k, k)  # conv2d layout
    # the definition: conv_transpose2d wants [in, out/groups] per group
    w_t = weight.view(groups, out_per, in_per, k, k).transpose(1, 2).reshape(groups * in_per, out_per, k, k)
    ref = F.conv_transpose2d(x, w_t, stride=2, groups=groups)
    for method in ("polyphase", "transpose"):
        out = upsample_conv2d(x, weight, groups=groups, method=method)
        assert out.shape == ref.shape
        assert torch.allclose(out, ref, atol=1e-5), method
    with pytest.raises(ValueError, match="unknown upsampling method"):
        upsample_conv2d(x, weight, groups=groups, method="nearest")  # type: ignore[arg-type]


def test_inplace_activation_only_without_autograd():
    x = torch.randn(2, 4, 5, 5)
    bias = torch.randn(4)
    expected = F.leaky_relu(x + bias.view(1, -1, 1, 1), 0.2) * 2**0.5
    with torch.no_grad():
        y = x.clone()
        out = fused_leaky_relu(y, bias, inplace=True)
    assert out.data_ptr() == y.data_ptr() and torch.allclose(out, expected, atol=1e-6)
    y = x.clone().requires_grad_(True)
    out = fused_leaky_relu(y, bias, inplace=True)  # autograd on: a new tensor, input untouched
    assert out.data_ptr() != y.data_ptr() and torch.equal(y.detach(), x)
    assert torch.allclose(out, expected, atol=1e-6)


def test_reduced_precision_stays_within_one_grey_level(gen):
    """bf16 autocast (what CUDA runs with --precision bf16; checked here with CPU autocast, the
    same kernels' numerics) against fp32: mean difference under 1/255 of the [-1, 1] range."""
    w, offsets = _inputs(gen, 2)
    offsets = [o * 0.3 for o in offsets]
    with torch.inference_mode():
        ref = gen(w, offsets=offsets)
        norm = ref.abs().max()  # random weights: scale the image to [-1, 1] for the comparison
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = gen(w, offsets=offsets)
    assert low.dtype in (torch.bfloat16, torch.float32)
    diff = ((low.float() - ref) / norm).abs()
    assert diff.mean().item() * 127.5 < 1.0  # in 8-bit grey levels of the [-1, 1] range
