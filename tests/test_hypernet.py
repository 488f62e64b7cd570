"""Hyper-network: offsets per layer, refinement loop, gradients, stage-2 freeze."""

from __future__ import annotations

import pytest
import torch

from hypernst_cli.configs import get_config
from hypernst_cli.models.hypernet import (
    DenseDelta,
    FactorizedDelta,
    HyperNetwork,
    add_offsets,
    build_hypernet,
    parse_layers,
    refine,
)
from hypernst_cli.models.stylegan2 import build_generator, count_parameters

CFG = get_config("tiny")
R = CFG.resolution
CODE = CFG.aladin.code_dim


@pytest.fixture(scope="module")
def gen():
    torch.manual_seed(0)
    g = build_generator(CFG.generator).eval()
    g.requires_grad_(False)
    return g


def _wake(h: HyperNetwork) -> HyperNetwork:
    """Untrained output layers start at zero offsets; give them weights so deltas are non-zero."""
    torch.manual_seed(1)
    with torch.no_grad():
        for m in h.modules():
            if isinstance(m, (DenseDelta, FactorizedDelta)):
                for p in m.parameters():
                    p.normal_(0, 0.02)
    return h


def _inputs(batch: int = 2, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    content = torch.rand(batch, 3, R, R, generator=g) * 2 - 1
    code_map = torch.randn(batch, CODE, R, R, generator=g)
    return content, code_map


def _wplus(gen, batch: int = 2):
    return gen.mapping(torch.randn(batch, gen.style_dim, generator=torch.Generator().manual_seed(5)))[
        :, None].expand(-1, gen.n_latent, -1)


def test_offsets_match_the_layer_specs(gen):
    h = build_hypernet(CFG, gen).eval()
    content, code_map = _inputs()
    deltas = h(content, content, code_map)
    specs = gen.layer_specs()
    assert len(deltas) == len(specs) == 14
    for d, s in zip(deltas, specs):
        assert d.shape == (2, s.out_channels, s.in_channels)
        assert torch.count_nonzero(d) == 0  # zero-initialised output layers: identity at start
    h5 = HyperNetwork(specs, resolution=R, code_dim=CODE, backbone="tiny", feature_channels=8,
                      mask_channels=8, feature_size=8, layers="0,5", start_layer=5, head_hidden=8)
    got = h5(content, content, code_map)
    assert [i for i, d in enumerate(got) if d is not None] == [0, 5]


def test_untrained_hypernet_is_the_identity(gen):
    h = build_hypernet(CFG, gen).eval()
    content, code_map = _inputs()
    w = _wplus(gen)
    with torch.no_grad():
        result = refine(gen, h, w, content, code_map, iterations=2)
    assert len(result.images) == 2
    assert (result.images[-1] - gen(w)).abs().max() <= 1e-5


def test_refine_accumulates_offsets_like_hyperstyle(gen):
    h = _wake(build_hypernet(CFG, gen)).eval()
    content, code_map = _inputs()
    w = _wplus(gen)
    with torch.no_grad():
        result = refine(gen, h, w, content, code_map, iterations=3)
        # by hand: start at G(w), feed (content, previous output), add the new deltas
        previous, acc = gen(w), None
        for t in range(3):
            acc = add_offsets(acc, h(content, previous, code_map))
            previous = gen(w, offsets=acc)
            assert (previous - result.images[t]).abs().max() <= 1e-5
    assert (result.initial - gen(w)).abs().max() == 0
    for a, b in zip(acc, result.offsets):
        assert torch.allclose(a, b, atol=1e-6)
    # each iteration changed the image: the hyper-network sees its own previous output
    assert (result.images[1] - result.images[0]).abs().max() > 1e-4
    # the style codes steer the offsets
    other = h(content, result.initial, torch.randn_like(code_map))
    same = h(content, result.initial, code_map)
    assert any((a - b).abs().max() > 1e-6 for a, b in zip(other, same))


@pytest.mark.parametrize("detach_between", [True, False])
def test_gradients_reach_the_hypernet_not_the_generator(gen, detach_between):
    h = _wake(build_hypernet(CFG, gen)).train()
    content, code_map = _inputs()
    result = refine(gen, h, _wplus(gen), content, code_map, iterations=2,
                    detach_between=detach_between)
    (result.images[-1] - content).abs().mean().backward()
    assert all(p.grad is None for p in gen.parameters())
    for name, p in h.named_parameters():
        assert p.grad is not None, name
    for part in (h.content_encoder, h.mask_encoder, h.heads, h.outputs, h.shared):
        assert sum(p.grad.abs().sum() for p in part.parameters()) > 0


def test_freeze_for_stylization_leaves_exactly_the_late_heads(gen):
    h = build_hypernet(CFG, gen)
    assert h.start_layer == 7
    h.freeze_for_stylization()
    trainable = {n for n, p in h.named_parameters() if p.requires_grad}
    # tiny: 14 layers, all 64 channels; convs 0,2,3,5,6 | 8,9,11,12 share one output layer per
    # side of the start layer; toRGB 1,4 | 7,10,13 have their own
    prefixes = [f"heads.{i}." for i in range(7, 14)] + [
        "outputs.7.", "outputs.10.", "outputs.13.", "shared.conv_64x64_late."]
    expected = {n for n, _ in h.named_parameters() if any(n.startswith(p) for p in prefixes)}
    assert trainable == expected
    assert not any(n.startswith(("content_encoder.", "heads.0.", "heads.6.", "outputs.1.",
                                 "shared.conv_64x64_early.")) for n in trainable)
    assert {int(n.split(".")[1]) for n in trainable if n.startswith("heads.")} == set(range(7, 14))
    h.train()
    assert h.training and not h.content_encoder.training  # frozen BatchNorm statistics stay put
    # the frozen heads still predict offsets (reconstruction structure kept), without gradients
    _wake(h)
    content, code_map = _inputs(1)
    deltas = h(content, content, code_map)
    assert deltas[0] is not None and not deltas[0].requires_grad
    assert deltas[7].requires_grad


def test_stylization_layers_choose_which_late_heads_train(gen):
    h = build_hypernet(CFG, gen)
    assert h.stylization_layers() == list(range(7, 14))
    assert h.stylization_layers("torgb") == [7, 10, 13]
    assert h.stylization_layers("13,7") == [7, 13]
    with pytest.raises(ValueError, match="not late tuned layers"):
        h.stylization_layers("3")
    with pytest.raises(ValueError, match="shares its output hyper-layer"):
        h.stylization_layers([8])  # 8, 9, 11, 12 share one output layer
    with pytest.raises(ValueError, match="comma-separated"):
        h.stylization_layers("colour")
    h.freeze_for_stylization("torgb")
    trainable = {n.split(".")[0] + "." + n.split(".")[1] for n, p in h.named_parameters()
                 if p.requires_grad}
    assert trainable == {"heads.7", "heads.10", "heads.13", "outputs.7", "outputs.10", "outputs.13"}


def test_paper_hypernet_shapes_on_meta():
    cfg = get_config("paper")
    with torch.device("meta"):
        g = build_generator(cfg.generator)
        h = build_hypernet(cfg, g)
        content = torch.empty(1, 3, 256, 256)
        code_map = torch.empty(1, cfg.aladin.code_dim, 256, 256)
        feats = h.content_encoder(torch.cat([content, content], 1))
        masks = h.mask_encoder(code_map)
        deltas = h(content, content, code_map, global_code=torch.empty(1, cfg.aladin.code_dim))
    assert feats.shape == (1, 256, 16, 16) and masks.shape == (1, 256, 16, 16)
    assert h.uses_global_code  # Eq. 2: H(M(s) ^ E_c(c), A(s))
    assert len(deltas) == 20 and deltas[0].shape == (1, 512, 512) and deltas[19].shape == (1, 3, 128)
    assert h.content_encoder.stem[0].in_channels == 6
    assert len(h.content_encoder.body[2]) == 6  # resnet34's layer3 has 6 basic blocks
    # HyperStyle's shared layers at 256 px: the 512x512 convs 0,2,3,5,6,8,9,11,12
    assert sorted(i for i, k in h.shared_key.items()) == [0, 2, 3, 5, 6, 8, 9, 11, 12]
    assert count_parameters(h) > count_parameters(g)


def test_parse_layers():
    assert parse_layers("all", 5) == [0, 1, 2, 3, 4]
    assert parse_layers("3, 1,3", 5) == [1, 3]
    assert parse_layers([4, 2], 5) == [2, 4]
    for bad in ("1,x", "7", ""):
        with pytest.raises(ValueError):
            parse_layers(bad, 5)


def test_info_models_lists_parameter_counts(run_cli):
    import json

    r = run_cli("--device", "cpu", "info", "--models", "--json")
    assert r.exit_code == 0, r.stderr
    counts = json.loads(r.stdout)["model_parameters"]
    assert set(counts) >= {"tiny", "compact", "paper"}
    for row in counts.values():
        assert set(row) == {"generator", "encoder", "aladin", "hypernet", "discriminator",
                            "patch_disc"}
    tiny_g = build_generator(CFG.generator)
    assert counts["tiny"]["generator"] == count_parameters(tiny_g)
    assert counts["tiny"]["hypernet"] == count_parameters(build_hypernet(CFG, tiny_g))
    # compact ships inside the package: generator + hyper-network within ~25 MB in fp16
    assert (counts["compact"]["generator"] + counts["compact"]["hypernet"]) * 2 <= 25 * 2**20
    r = run_cli("--device", "cpu", "info", "--models")
    assert r.exit_code == 0 and "parameters per network" in r.stdout


@pytest.mark.parametrize("config", ["tiny", "compact"])
def test_untrained_encoders_see_their_inputs(config):
    """At initialisation the features of different images (and of different style-code maps)
    must differ: with PyTorch's default init the convnet trunk of the small configs returned the
    same features for every image (spread 1e-4 of their size), and stage 1 then learnt to
    reconstruct from the style codes alone."""
    cfg = get_config(config)
    torch.manual_seed(0)
    h = build_hypernet(cfg, build_generator(cfg.generator)).eval()
    g = torch.Generator().manual_seed(0)
    r = cfg.resolution
    images = torch.rand(4, 6, r, r, generator=g) * 2 - 1
    code_maps = torch.randn(4, cfg.aladin.code_dim, 1, 1, generator=g).expand(-1, -1, r, r)
    with torch.no_grad():
        feats = h.content_encoder(images)
        masks = h.encode_mask(code_maps)
        x = torch.cat([feats, masks], dim=1)
        head_codes = h.heads[str(h.n_layers - 1)](x)
    for name, t in (("content", feats), ("mask", masks), ("head", head_codes)):
        spread = float(t.std(0).mean())
        size = float(t.abs().mean())
        assert spread > 0.1 * size, f"{name} features barely depend on the input ({spread:.2e} vs {size:.2e})"


def test_the_global_code_enters_every_head_and_trains_with_it(gen):
    """Eq. 2's A(s): required when configured, steers the offsets, trained in stage 2 with its head."""
    import dataclasses

    cfg = CFG.replace(hypernet=dataclasses.replace(CFG.hypernet, global_code=True))
    h = _wake(build_hypernet(cfg, gen)).train()
    content, code_map = _inputs()
    with pytest.raises(ValueError, match="global_code"):
        h(content, content, code_map)
    a = torch.randn(2, CODE, generator=torch.Generator().manual_seed(7))
    zero = h(content, content, code_map, global_code=a)
    # starts at zero: the region code map alone decides, as in a model without A(s)
    assert all(torch.equal(x, y) for x, y in zip(zero, h(content, content, code_map, global_code=-a))
               if x is not None)
    with torch.no_grad():
        for head in h.heads.values():
            head.global_proj.weight.normal_(0, 0.5)
    first = h(content, content, code_map, global_code=a)
    second = h(content, content, code_map, global_code=-a)
    assert any((x - y).abs().max() > 1e-5 for x, y in zip(first, second) if x is not None)
    sum(x.sum() for x in first if x is not None).backward()
    assert all(head.global_proj.weight.grad.abs().sum() > 0 for head in h.heads.values())
    h.freeze_for_stylization()
    trainable = {n for n, p in h.named_parameters() if p.requires_grad}
    assert "heads.13.global_proj.weight" in trainable and "heads.3.global_proj.weight" not in trainable


def test_a_pass_hook_sees_every_pass_and_gets_detached_results(gen):
    """The training form of the one loop: a hook per pass, outputs and offsets returned detached."""
    h = _wake(build_hypernet(CFG, gen)).train()
    content, code_map = _inputs()
    w = _wplus(gen)
    seen = []

    def hook(y, offsets, t):
        seen.append(t)
        (y - content).abs().mean().backward()

    result = refine(gen, h, w, content, code_map, iterations=3, on_pass=hook)
    assert seen == [0, 1, 2]
    assert all(not im.requires_grad for im in result.images)
    assert all(o is None or not o.requires_grad for o in result.offsets)
    with torch.no_grad():
        plain = refine(gen, h, w, content, code_map, iterations=3)
    for a, b in zip(plain.images, result.images):
        torch.testing.assert_close(a, b)
