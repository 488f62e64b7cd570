"""StyleGAN2 in plain torch: upfirdn2d, weight offsets, layer indexing, official layouts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from hypernst_cli.configs import config_names, get_config
from hypernst_cli.errors import WeightsIntegrityError
from hypernst_cli.models.official import (
    infer_generator_config,
    stylegan2_discriminator_to_ours,
    stylegan2_generator_to_ours,
)
from hypernst_cli.models.stylegan2 import (
    Discriminator,
    Generator,
    build_discriminator,
    build_generator,
    layer_count,
    make_kernel,
    paper_start_layer,
    upfirdn2d,
)

FIXTURES = Path(__file__).parent / "fixtures" / "official"


@pytest.fixture(scope="module")
def gen() -> Generator:
    torch.manual_seed(0)
    g = build_generator(get_config("tiny").generator).eval()
    # random non-zero noise strengths and biases, so every parameter matters
    with torch.no_grad():
        for name, p in g.named_parameters():
            if name.endswith("noise.weight") or name.endswith("bias"):
                p.normal_(0, 0.1)
    g.requires_grad_(False)
    return g


def _wplus(g: Generator, batch: int, seed: int = 1) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return g.mapping(torch.randn(batch, g.n_latent, g.style_dim, generator=gen))


def _offsets(g: Generator, batch: int, start: int = 0, seed: int = 2, scale: float = 0.3):
    gen = torch.Generator().manual_seed(seed)
    return [None if s.index < start else
            scale * torch.randn(batch, s.out_channels, s.in_channels, generator=gen)
            for s in g.layer_specs()]


def _naive_upfirdn(x: np.ndarray, k: np.ndarray, up: int, down: int, pad: tuple[int, int]):
    """Textbook definition on one 2-D channel: zero-insert, pad, convolve (flipped), decimate."""
    h, w = x.shape
    u = np.zeros((h * up, w * up))
    u[::up, ::up] = x
    p0, p1 = pad
    u = np.pad(u, ((max(p0, 0), max(p1, 0)), (max(p0, 0), max(p1, 0))))
    u = u[max(-p0, 0): u.shape[0] - max(-p1, 0), max(-p0, 0): u.shape[1] - max(-p1, 0)]
    kh, kw = k.shape
    oh, ow = u.shape[0] - kh + 1, u.shape[1] - kw + 1
    out = np.zeros((oh, ow))
    kf = k[::-1, ::-1]
    for i in range(oh):
        for j in range(ow):
            out[i, j] = (u[i:i + kh, j:j + kw] * kf).sum()
    return out[::down, ::down]


@pytest.mark.parametrize("up,down,pad", [(2, 1, (2, 1)), (1, 1, (1, 1)), (1, 2, (1, 1)),
                                         (1, 2, (2, 2)), (2, 1, (-1, 0))])
def test_upfirdn2d_matches_the_definition(up, down, pad):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 7, 7)).astype(np.float32)
    k = rng.random((4, 4)).astype(np.float32)
    out = upfirdn2d(torch.from_numpy(x), torch.from_numpy(k), up=up, down=down, pad=pad).numpy()
    for b in range(2):
        for c in range(3):
            ref = _naive_upfirdn(x[b, c].astype(np.float64), k.astype(np.float64), up, down, pad)
            assert out[b, c].shape == ref.shape
            np.testing.assert_allclose(out[b, c], ref, atol=1e-5)


def test_upsample_filter_keeps_a_flat_image_flat():
    # [1,3,3,1] with gain up^2: a constant image upsampled stays the same constant inside
    x = torch.full((1, 1, 6, 6), 0.7)
    y = upfirdn2d(x, make_kernel([1, 3, 3, 1]) * 4, up=2, pad=(2, 1))
    assert y.shape[-1] == 12
    assert torch.allclose(y[..., 2:-2, 2:-2], torch.tensor(0.7), atol=1e-6)


def test_layer_specs_follow_the_synthesis_order(gen):
    specs = gen.layer_specs()
    assert len(specs) == layer_count(64) == 14
    assert [s.name for s in specs[:7]] == ["conv1", "to_rgb1", "convs.0", "convs.1", "to_rgbs.0",
                                           "convs.2", "convs.3"]
    assert [s.index for s in specs] == list(range(14))
    modules = dict(gen.named_modules())
    for s in specs:
        w = modules[s.name].conv.weight
        assert w.shape[1:3] == (s.out_channels, s.in_channels) and w.shape[-1] == s.kernel_size
        assert (s.kind == "torgb") == s.name.startswith("to_rgb")
    assert specs[13].name == "to_rgbs.3" and specs[13].resolution == 64


def test_paper_layer_13_mapping_and_configs():
    assert [layer_count(r) for r in (64, 128, 256, 1024)] == [14, 17, 20, 26]
    assert [paper_start_layer(r) for r in (64, 128, 256, 1024)] == [7, 10, 13, 13]
    with torch.device("meta"):
        g256 = Generator(256)
    assert g256.layer_specs()[13].name == "to_rgbs.3"  # the 64 px toRGB
    for name in config_names():
        cfg = get_config(name)
        assert cfg.hypernet.start_layer == paper_start_layer(cfg.resolution), name
    assert get_config("paper").hypernet.start_layer == 13


def test_zero_offsets_equal_the_plain_generator(gen):
    w = _wplus(gen, 2)
    plain = gen(w)
    zeros = [torch.zeros(2, s.out_channels, s.in_channels) for s in gen.layer_specs()]
    assert (gen(w, offsets=zeros) - plain).abs().max() <= 1e-5
    zeros5 = [z[..., None, None] for z in zeros]
    assert (gen(w, offsets=zeros5) - plain).abs().max() <= 1e-5
    assert plain.shape == (2, 3, 64, 64)


def test_offsets_from_layer_k_leave_earlier_layers_unchanged(gen):
    w = _wplus(gen, 2)
    k = 7
    _, plain = gen(w, return_layer_outputs=True)
    image, tuned = gen(w, offsets=_offsets(gen, 2, start=k), return_layer_outputs=True)
    assert len(plain) == len(tuned) == 14
    for i in range(k):
        assert torch.equal(plain[i], tuned[i]), i
    for i in range(k, 14):
        assert not torch.allclose(plain[i], tuned[i]), i
    assert torch.equal(image, tuned[-1])


def test_batched_offsets_equal_one_sample_at_a_time(gen):
    w = _wplus(gen, 3)
    offs = _offsets(gen, 3)
    batched = gen(w, offsets=offs)
    for b in range(3):
        single = gen(w[b:b + 1], offsets=[o[b:b + 1] for o in offs])
        assert (single - batched[b:b + 1]).abs().max() <= 1e-5
    # and the samples really differ from each other's offsets
    swapped = gen(w[:1], offsets=[o[1:2] for o in offs])
    assert (swapped - batched[:1]).abs().max() > 1e-3


def test_offset_is_a_multiplicative_weight_change(gen):
    w = _wplus(gen, 1)
    specs = gen.layer_specs()
    _, outs = gen(w, return_layer_outputs=True)
    # delta = -1 on the last toRGB removes its conv: the image is bias + upsampled previous skip
    offs = [None] * len(specs)
    offs[-1] = -torch.ones(1, 3, specs[-1].in_channels)
    image = gen(w, offsets=offs)
    expected = gen.to_rgbs[-1].bias + gen.to_rgbs[-1].upsample(outs[-4])
    assert (image - expected).abs().max() <= 1e-5
    # a per-output-channel scale is undone by demodulation: a no-op on a modulated conv
    offs = [None] * len(specs)
    offs[3] = (torch.rand(1, specs[3].out_channels, 1) * 2).expand(-1, -1, specs[3].in_channels)
    assert (gen(w, offsets=offs) - gen(w)).abs().max() <= 1e-4


def test_bad_offsets_and_latents_are_rejected(gen):
    w = _wplus(gen, 1)
    offs = [None] * 14
    offs[0] = torch.zeros(1, 5, 5)
    with pytest.raises(ValueError, match="does not fit"):
        gen(w, offsets=offs)
    with pytest.raises(ValueError, match="one per layer"):
        gen(w, offsets=[None])
    with pytest.raises(ValueError, match="W\\+ latents"):
        gen(torch.zeros(1, 3, gen.style_dim))


def test_gradients_flow_through_the_frozen_generator(gen):
    w = _wplus(gen, 2)
    offs = [torch.zeros(2, s.out_channels, s.in_channels, requires_grad=True)
            for s in gen.layer_specs()]
    gen(w, offsets=offs).square().mean().backward()
    assert all(o.grad is not None and o.grad.abs().sum() > 0 for o in offs)
    assert all(p.grad is None for p in gen.parameters())


def test_noise_modes_and_mean_latent(gen):
    w = _wplus(gen, 1)
    assert torch.equal(gen(w), gen(w))  # stored noise buffers: deterministic
    assert not torch.equal(gen(w, randomize_noise=True), gen(w, randomize_noise=True))
    noise = gen.make_noise(1, torch.Generator().manual_seed(3))
    assert torch.equal(gen(w, noise=noise), gen(w, noise=noise))
    a = gen.mean_latent(64, torch.Generator().manual_seed(0))
    b = gen.mean_latent(64, torch.Generator().manual_seed(0))
    assert a.shape == (1, gen.style_dim) and torch.equal(a, b)
    # a W latent [B, D] is the same as W+ with that latent repeated
    single = gen.mapping(torch.randn(1, gen.style_dim))
    assert torch.equal(gen(single), gen(single[:, None].expand(-1, gen.n_latent, -1)))


def test_discriminator_forward_any_batch():
    torch.manual_seed(0)
    d = build_discriminator(get_config("tiny").generator)
    for batch in (1, 3, 4, 6):
        assert d(torch.randn(batch, 3, 64, 64)).shape == (batch, 1)


# --- official layouts --------------------------------------------------------------------------


def _fixture(name: str) -> dict[str, list[int]]:
    return json.loads((FIXTURES / name).read_text())["tensors"]


def _synthetic(shapes: dict[str, list[int]], prefix: str = "") -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return {prefix + k: torch.randn(*v, generator=gen) if np.prod(v) < 2_000_000
            else torch.zeros(*v) for k, v in shapes.items()}


@pytest.mark.parametrize("fixture,resolution", [("stylegan2_g_ema_256.json", 256),
                                                ("stylegan2_g_ema_1024.json", 1024)])
def test_official_generator_layout_loads_strictly(fixture, resolution):
    shapes = _fixture(fixture)
    with torch.device("meta"):
        ours = Generator(resolution, 512, 8, channel_multiplier=2)
    assert {k: list(v.shape) for k, v in ours.state_dict().items()} == shapes
    sd = stylegan2_generator_to_ours(_synthetic(shapes, prefix="module."))
    result = ours.load_state_dict(sd, strict=True, assign=True)
    assert not result.missing_keys and not result.unexpected_keys
    assert torch.equal(ours.conv1.conv.weight, sd["conv1.conv.weight"])
    cfg = infer_generator_config(sd)
    assert (cfg.resolution, cfg.style_dim, cfg.n_mlp, cfg.channel_multiplier,
            cfg.max_channels) == (resolution, 512, 8, 2, 512)


def test_official_discriminator_layout_loads_strictly():
    shapes = _fixture("stylegan2_d_256.json")
    torch.manual_seed(0)
    ours = Discriminator(256, channel_multiplier=2)
    assert {k: list(v.shape) for k, v in ours.state_dict().items()} == shapes
    sd = stylegan2_discriminator_to_ours(_synthetic(shapes))
    ours.load_state_dict(sd, strict=True)
    assert torch.equal(ours.final_linear[1].weight, sd["final_linear.1.weight"])
    # the FIR kernels are persistent buffers upstream too: the official values match ours
    assert torch.equal(Discriminator(256).convs[1].conv2[0].kernel,
                       make_kernel([1, 3, 3, 1]))


def test_config_inference_on_our_configs_and_rejections():
    for name in config_names():
        cfg = get_config(name).generator
        with torch.device("meta"):
            sd = build_generator(cfg).state_dict()
        got = infer_generator_config(sd)
        assert (got.resolution, got.style_dim, got.n_mlp) == (cfg.resolution, cfg.style_dim, cfg.n_mlp)
        assert got.max_channels == cfg.max_channels
        with torch.device("meta"):
            again = build_generator(got).state_dict()
        assert {k: v.shape for k, v in again.items()} == {k: v.shape for k, v in sd.items()}
    d_shapes = _fixture("stylegan2_d_256.json")
    with pytest.raises(WeightsIntegrityError, match="not a StyleGAN2 generator"):
        stylegan2_generator_to_ours({k: torch.zeros(1) for k in d_shapes})
    with pytest.raises(WeightsIntegrityError, match="not a StyleGAN2 discriminator"):
        stylegan2_discriminator_to_ours({k: torch.zeros(1) for k in _fixture("stylegan2_g_ema_256.json")})
