"""e4e encoder: W+ structure (w0 + progressive deltas + latent_avg), official checkpoint layout."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from hypernst_cli.configs import EncoderConfig, get_config
from hypernst_cli.errors import UsageError, WeightsIntegrityError
from hypernst_cli.models.e4e import Encoder4Editing, IRSEUnit, stage_layout
from hypernst_cli.models.official_encoders import e4e_to_ours, infer_e4e_config

FIXTURE = Path(__file__).parent / "fixtures" / "official" / "e4e_ffhq_encode.json"


def _n_latent(resolution: int) -> int:
    return 2 * int(math.log2(resolution)) - 2


@pytest.fixture(scope="module")
def tiny() -> tuple[Encoder4Editing, torch.Tensor]:
    cfg = get_config("tiny")
    torch.manual_seed(0)
    enc = Encoder4Editing(cfg.encoder, _n_latent(cfg.resolution), cfg.generator.style_dim).eval()
    x = torch.rand(3, 3, cfg.encoder.input_size, cfg.encoder.input_size) * 2 - 1
    return enc, x


def _meta_state_dict(shapes: dict[str, list[int]]) -> dict[str, torch.Tensor]:
    with torch.device("meta"):
        return {
            k: torch.empty(s, dtype=torch.long if k.endswith("batches_tracked") else torch.float)
            for k, s in shapes.items()
        }


def test_output_shape_and_latent_count(tiny):
    enc, x = tiny
    cfg = get_config("tiny")
    with torch.no_grad():
        w = enc(x)
    assert w.shape == (3, _n_latent(cfg.resolution), cfg.generator.style_dim)
    assert len(enc.styles) == enc.n_latent == 10
    assert torch.isfinite(w).all()


def test_progressive_stages_add_deltas_one_by_one(tiny):
    enc, x = tiny
    try:
        with torch.no_grad():
            enc.latent_avg.normal_()
            enc.set_progressive_stage(0)
            w = enc(x) - enc.latent_avg
            # Stage 0 (e4e's W training): every latent is the same w0.
            assert torch.allclose(w, w[:, :1].expand_as(w), atol=1e-6)
            for stage in (1, 4, 8):
                enc.set_progressive_stage(stage)
                w_s = enc(x) - enc.latent_avg
                assert torch.allclose(w_s[:, 0], w[:, 0], atol=1e-6)  # w0 does not change
                for i in range(1, enc.n_latent):
                    same = torch.allclose(w_s[:, i], w[:, 0], atol=1e-6)
                    assert same == (i > stage), (stage, i)
    finally:
        enc.set_progressive_stage(enc.n_latent - 1)
        enc.latent_avg.zero_()
    assert enc.progressive_stage == enc.n_latent - 1
    with pytest.raises(UsageError):
        enc.set_progressive_stage(enc.n_latent)


def test_latent_avg_is_added_to_every_latent(tiny):
    enc, x = tiny
    avg = torch.randn_like(enc.latent_avg)
    try:
        with torch.no_grad():
            base = enc(x)
            enc.latent_avg.copy_(avg)
            shifted = enc(x)
    finally:
        enc.latent_avg.zero_()
    assert torch.allclose(shifted - base, avg.expand_as(base), atol=1e-5)
    assert "latent_avg" in enc.state_dict()


def test_batch_equals_one_by_one_in_eval(tiny):
    enc, x = tiny
    with torch.no_grad():
        batch = enc(x)
        single = torch.cat([enc(x[i : i + 1]) for i in range(x.shape[0])])
    assert torch.allclose(batch, single, atol=1e-5)
    assert not torch.allclose(batch[0], batch[1])  # the input matters


def test_gradients_reach_input_and_every_parameter():
    cfg = get_config("tiny")
    torch.manual_seed(1)
    enc = Encoder4Editing(cfg.encoder, _n_latent(cfg.resolution), cfg.generator.style_dim).train()
    x = (torch.rand(2, 3, 64, 64) * 2 - 1).requires_grad_()
    enc(x).square().mean().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    missing = [n for n, p in enc.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing


def test_wrong_input_size_is_a_usage_error(tiny):
    enc, _ = tiny
    with pytest.raises(UsageError, match="64, 64"):
        enc(torch.zeros(1, 3, 128, 128))


def test_stage_layouts():
    assert [n for _, n in stage_layout(EncoderConfig(depth=50))] == [3, 4, 14, 3]
    assert [c for c, _ in stage_layout(EncoderConfig(depth=100))] == [64, 128, 256, 512]
    assert sum(n for _, n in stage_layout(EncoderConfig(depth=152))) == 50
    assert stage_layout(get_config("compact").encoder) == [(16, 2), (32, 2), (64, 2), (128, 2)]
    with pytest.raises(UsageError):
        stage_layout(EncoderConfig(depth=34))
    with pytest.raises(UsageError):
        stage_layout(EncoderConfig(depth=0, blocks=(1, 1, 1)))


def test_infer_config_roundtrip_on_our_own_weights(tiny):
    enc, _ = tiny
    cfg, n_latent, style_dim = infer_e4e_config(enc.state_dict())
    assert cfg == get_config("tiny").encoder
    assert (n_latent, style_dim) == (enc.n_latent, enc.style_dim)


def test_official_ffhq_layout_loads_strictly():
    """The official e4e FFHQ checkpoint's names/shapes (fixture) load into ours with strict=True."""
    ref = json.loads(FIXTURE.read_text())
    sd = _meta_state_dict(ref["state_dict"])
    sd["decoder.style.1.weight"] = torch.empty(512, 512, device="meta")  # generator: ignored
    with torch.device("meta"):
        latent_avg = torch.empty(ref["latent_avg"])
    ours = e4e_to_ours(sd, latent_avg)
    assert not any(k.startswith(("encoder.", "decoder.")) for k in ours)
    cfg, n_latent, style_dim = infer_e4e_config(ours)
    assert cfg == EncoderConfig(depth=50, width=64, input_size=256)
    assert (n_latent, style_dim) == (ref["n_latent"], ref["style_dim"]) == (18, 512)
    with torch.device("meta"):
        model = Encoder4Editing(cfg, n_latent, style_dim)
    model.load_state_dict(ours, strict=True, assign=True)
    assert model.latent_avg.shape == (18, 512)
    # Every official entry has a counterpart of the same shape, and nothing of ours is left over.
    expected = {k.removeprefix("encoder."): v for k, v in ref["state_dict"].items()}
    expected["latent_avg"] = ref["latent_avg"]
    assert {k: list(v.shape) for k, v in model.state_dict().items()} == expected


def test_e4e_to_ours_transfers_values_and_latent_avg(tiny):
    enc, x = tiny
    official = {"encoder." + k: v.clone() for k, v in enc.state_dict().items() if k != "latent_avg"}
    for key in [k for k in official if k.endswith("num_batches_tracked")][:3]:
        del official[key]  # old checkpoints lack these; they are filled in
    avg = torch.randn(enc.style_dim)  # a single average latent is repeated over all of them
    ours = e4e_to_ours(official, avg)
    again = Encoder4Editing(get_config("tiny").encoder, enc.n_latent, enc.style_dim).eval()
    again.load_state_dict(ours, strict=True)
    with torch.no_grad():
        assert torch.allclose(again(x), enc(x) + avg, atol=1e-5)
    assert torch.equal(e4e_to_ours(official, None)["latent_avg"], torch.zeros(10, 64))


def test_e4e_to_ours_rejects_bad_input(tiny):
    enc, _ = tiny
    sd = {"encoder." + k: v for k, v in enc.state_dict().items()}
    with pytest.raises(WeightsIntegrityError, match="latent_avg"):
        e4e_to_ours(sd, torch.zeros(7, 64))
    with pytest.raises(WeightsIntegrityError, match="not an e4e encoder"):
        e4e_to_ours({"decoder.conv1.weight": torch.zeros(1)}, None)


def test_features_and_wplus_follow_the_e4e_formula(tiny):
    """c1/c2/c3 at 1/4, 1/8, 1/16; FPN merges p2 = up(c3) + lat1(c2), p1 = up(p2) + lat2(c1);
    latent 0 = w0 = styles[0](c3), latent i = w0 + styles[i](c3 | p2 | p1) for i in 1-2 | 3-6 | 7+.
    """
    enc, x = tiny
    layout = stage_layout(enc.cfg)
    with torch.no_grad():
        c1, c2, c3 = enc.features(x)
        assert c1.shape[1:] == (layout[1][0], 16, 16)
        assert c2.shape[1:] == (layout[2][0], 8, 8)
        assert c3.shape[1:] == (layout[3][0], 4, 4)

        def up(t, like):
            return F.interpolate(t, size=like.shape[-2:], mode="bilinear", align_corners=True)

        p2 = up(c3, c2) + enc.latlayer1(c2)
        p1 = up(p2, c1) + enc.latlayer2(c1)
        w0 = enc.styles[0](c3)
        expected = [w0] + [
            w0 + enc.styles[i](c3 if i < 3 else p2 if i < 7 else p1) for i in range(1, enc.n_latent)
        ]
        assert torch.allclose(enc(x), torch.stack(expected, 1), atol=1e-5)


def test_ir_se_unit_formula():
    """res = BN-conv-PReLU-conv(stride)-BN, gated by SE (sigmoid(fc2(relu(fc1(mean))))), plus a
    shortcut: every stride-th pixel (as MaxPool2d(1, stride)) or a strided 1x1 conv + BN."""
    torch.manual_seed(2)
    x = torch.randn(2, 16, 8, 8)
    for in_c, out_c in ((16, 16), (16, 32)):
        unit = IRSEUnit(in_c, out_c, stride=2).eval()
        r = unit.res_layer
        with torch.no_grad():
            res = r[4](r[3](r[2](r[1](r[0](x)))))
            se = r[5]
            gate = torch.sigmoid(se.fc2(F.relu(se.fc1(res.mean((2, 3), keepdim=True)))))
            if in_c == out_c:
                shortcut = F.max_pool2d(x, kernel_size=1, stride=2)
            else:
                shortcut = unit.shortcut_layer(x)
            assert torch.allclose(unit(x), res * gate + shortcut, atol=1e-5)
            assert unit(x).shape == (2, out_c, 4, 4)


def test_narrow_style_heads_keep_the_latent_shape_and_are_inferred():
    from hypernst_cli.configs import get_config
    from hypernst_cli.models.official_encoders import infer_e4e_config

    cfg = get_config("compact").encoder
    assert cfg.head_width == 64
    enc = Encoder4Editing(cfg, 12, 256)
    with torch.no_grad():
        assert enc(torch.randn(1, 3, 128, 128)).shape == (1, 12, 256)
    assert enc.styles[0].convs[0].weight.shape[0] == 64
    got, n_latent, style_dim = infer_e4e_config(enc.state_dict())
    assert (got, n_latent, style_dim) == (cfg, 12, 256)
