"""ALADIN-ViT style encoder: unit-norm codes, preprocessing, attention math, official layout."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from hypernst_cli.configs import AladinConfig, get_config
from hypernst_cli.errors import UsageError, WeightsIntegrityError
from hypernst_cli.models.aladin import AladinViT
from hypernst_cli.models.official_encoders import aladin_to_ours, infer_aladin_config

FIXTURE = Path(__file__).parent / "fixtures" / "official" / "aladin_vit.json"


@pytest.fixture(scope="module")
def tiny() -> AladinViT:
    torch.manual_seed(0)
    model = AladinViT(get_config("tiny").aladin).eval()
    with torch.no_grad():  # the class token starts at zero; give it content like a trained one
        model.cls_token.normal_(0, 0.5)
    return model


def _images(n: int, seed: int, size: tuple[int, int] = (80, 96)) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, *size, generator=g)


def test_codes_have_unit_norm_and_depend_on_the_input(tiny):
    cfg = get_config("tiny").aladin
    with torch.no_grad():
        codes = tiny.encode(_images(4, 0))
    assert codes.shape == (4, cfg.code_dim)
    assert torch.allclose(codes.norm(dim=1), torch.ones(4), atol=1e-5)
    assert (codes[0] - codes[1]).abs().max() > 1e-4
    with torch.no_grad():
        flat = tiny.encode(torch.full((1, 3, 64, 64), 0.5))
        noisy = tiny.encode(_images(1, 5, (64, 64)))
    assert (flat - noisy).abs().max() > 1e-4


def test_deterministic_and_batch_equals_one_by_one(tiny):
    x = _images(3, 1)
    with torch.no_grad():
        a = tiny.encode(x)
        b = tiny.encode(x)
        single = torch.cat([tiny.encode(x[i : i + 1]) for i in range(3)])
    assert torch.equal(a, b)
    assert torch.allclose(a, single, atol=1e-5)


def test_preprocess_resizes_and_normalises():
    cfg = dataclasses.replace(
        get_config("tiny").aladin, mean=(0.1, 0.5, 0.9), std=(0.2, 0.5, 0.25)
    )
    model = AladinViT(cfg)
    x = _images(2, 2, (64, 64))  # already at image_size: no resampling, just (x - mean) / std
    out = model.preprocess(x)
    mean = torch.tensor(cfg.mean).view(1, 3, 1, 1)
    std = torch.tensor(cfg.std).view(1, 3, 1, 1)
    assert torch.allclose(out, (x - mean) / std, atol=1e-6)
    big = model.preprocess(_images(1, 3, (300, 200)))
    assert big.shape == (1, 3, 64, 64)
    # Constant images stay constant through the antialiased resize.
    flat = model.preprocess(torch.full((1, 3, 100, 130), 0.7))
    assert torch.allclose(flat, ((0.7 - mean) / std).expand(1, 3, 64, 64), atol=1e-5)
    # The official transform: mean 0.5, std 0.5, so [0, 1] -> [-1, 1].
    default = AladinViT(get_config("tiny").aladin)
    ends = default.preprocess(torch.stack([torch.zeros(3, 64, 64), torch.ones(3, 64, 64)]))
    assert torch.allclose(ends[0], torch.full_like(ends[0], -1.0))
    assert torch.allclose(ends[1], torch.full_like(ends[1], 1.0))


def test_preprocess_matches_the_official_pil_transform():
    """Resize((S, S)) on the PIL image (bilinear, antialiased), ToTensor, Normalize(0.5, 0.5)."""
    import numpy as np
    from PIL import Image

    cfg = get_config("tiny").aladin
    rgb = (np.random.default_rng(0).random((150, 190, 3)) * 255).astype(np.uint8)  # noise: aliases
    ref = np.asarray(Image.fromarray(rgb).resize((cfg.image_size,) * 2, Image.BILINEAR))
    ref = torch.from_numpy(ref.astype(np.float32) / 255).permute(2, 0, 1)[None] * 2 - 1
    got = AladinViT(cfg).preprocess(torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255)
    # PIL resamples in uint8 (rounding): within about one grey level, 2/255 on the [-1, 1] scale.
    assert (got - ref).abs().max() < 0.02


def test_attention_matches_the_explicit_formula(tiny):
    """softmax(q k^T / sqrt(d_head)) v per head, heads concatenated, output projection."""
    attn = tiny.blocks[0].attn
    heads = attn.heads
    x = torch.randn(2, 17, tiny.cfg.dim)
    with torch.no_grad():
        got = attn(x)
        d = tiny.cfg.dim // heads
        outs = []
        for h in range(heads):
            sl = slice(h * d, (h + 1) * d)
            q, k, v = attn.q(x)[..., sl], attn.k(x)[..., sl], attn.v(x)[..., sl]
            weights = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(d), dim=-1)
            outs.append(weights @ v)
        expected = attn.proj(torch.cat(outs, dim=-1))
    assert torch.allclose(got, expected, atol=1e-5)


def test_forward_follows_the_documented_pipeline(tiny):
    """patch tokens + cls + positions -> blocks -> norm -> head on the cls token -> L2 norm."""
    x = tiny.preprocess(_images(2, 4, (64, 64)))
    with torch.no_grad():
        p = tiny.cfg.patch_size
        patches = x.unfold(2, p, p).unfold(3, p, p)  # [B, 3, gh, gw, p, p]
        patches = patches.permute(0, 2, 3, 1, 4, 5).reshape(2, -1, 3 * p * p)
        kernel = tiny.patch_embed.weight.reshape(tiny.cfg.dim, -1)
        tokens = patches @ kernel.T + tiny.patch_embed.bias
        tokens = torch.cat([tiny.cls_token.expand(2, -1, -1), tokens], 1) + tiny.pos_embed
        for block in tiny.blocks:
            tokens = tokens + block.attn(block.norm1(tokens))
            tokens = tokens + block.mlp.fc2(F.gelu(block.mlp.fc1(block.norm2(tokens))))
        cls = tiny.norm(tokens)[:, 0]
        code = tiny.head.fc2(F.leaky_relu(tiny.head.fc1(F.leaky_relu(cls))))
        expected = code / code.norm(dim=1, keepdim=True)
        assert torch.allclose(tiny(x), expected, atol=1e-5)


def test_gradients_reach_input_and_every_parameter():
    torch.manual_seed(1)
    model = AladinViT(get_config("tiny").aladin).train()
    x = _images(2, 6).requires_grad_()
    target = F.normalize(torch.randn(2, model.cfg.code_dim), dim=1)
    (model.encode(x) * target).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum()]
    assert not missing


def test_bad_shapes_are_usage_errors(tiny):
    with pytest.raises(UsageError, match="preprocess"):
        tiny(torch.zeros(1, 3, 80, 80))
    with pytest.raises(UsageError):
        tiny.preprocess(torch.zeros(1, 4, 64, 64))
    with pytest.raises(UsageError):
        AladinViT(AladinConfig(image_size=100, patch_size=16))


def test_official_vit_layout_loads_strictly():
    """The official ALADIN-ViT checkpoint's names/shapes (fixture) load strictly into ours."""
    ref = json.loads(FIXTURE.read_text())["state_dict"]
    with torch.device("meta"):
        sd = {k: torch.empty(s) for k, s in ref.items()}
    cfg = infer_aladin_config(sd)
    assert cfg == get_config("paper").aladin  # ViT-B/16 at 224 px, 256-d codes
    ours = aladin_to_ours(sd)
    assert len(ours) == len(sd)
    with torch.device("meta"):
        model = AladinViT(cfg)
    model.load_state_dict(ours, strict=True, assign=True)
    assert model.pos_embed.shape == (1, 197, 768)
    assert model.head.fc1.weight.shape == (512, 768)


def test_aladin_to_ours_maps_values(tiny):
    """Official names -> ours, value by value (a tiny model written with the official names)."""
    ours = tiny.state_dict()
    official = {
        "enc_style.transformer.embeddings.patch_embeddings.weight": ours["patch_embed.weight"],
        "enc_style.transformer.embeddings.patch_embeddings.bias": ours["patch_embed.bias"],
        "enc_style.transformer.embeddings.cls_token": ours["cls_token"],
        "enc_style.transformer.embeddings.position_embeddings": ours["pos_embed"],
        "enc_style.transformer.encoder.encoder_norm.weight": ours["norm.weight"],
        "enc_style.transformer.encoder.encoder_norm.bias": ours["norm.bias"],
        "enc_style.proj_head.fc1.weight": ours["head.fc1.weight"],
        "enc_style.proj_head.fc1.bias": ours["head.fc1.bias"],
        "enc_style.proj_head.fc2.weight": ours["head.fc2.weight"],
        "enc_style.proj_head.fc2.bias": ours["head.fc2.bias"],
    }
    names = {"attention_norm": "norm1", "ffn_norm": "norm2", "attn.query": "attn.q",
             "attn.key": "attn.k", "attn.value": "attn.v", "attn.out": "attn.proj",
             "ffn.fc1": "mlp.fc1", "ffn.fc2": "mlp.fc2"}
    for i in range(len(tiny.blocks)):
        for theirs, mine in names.items():
            for p in ("weight", "bias"):
                official[f"enc_style.transformer.encoder.layer.{i}.{theirs}.{p}"] = ours[
                    f"blocks.{i}.{mine}.{p}"
                ]
    mapped = aladin_to_ours(official)
    assert mapped.keys() == ours.keys()
    assert all(torch.equal(mapped[k], ours[k]) for k in ours)
    assert infer_aladin_config(official, heads=2) == tiny.cfg
    with pytest.raises(WeightsIntegrityError, match="unexpected entry"):
        aladin_to_ours({**official, "enc_style.head.weight": torch.zeros(1)})
