"""The style-conditioned content skip (hypernet.skip_width; not in the paper): added at zero,
then read; one path for inference, training and edits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from hypernst_cli.errors import UsageError
from hypernst_cli.pipeline.core import encode, render, stylize_tensors
from hypernst_cli.pipeline.models import INFERENCE_PARTS, load_models
from hypernst_cli.train.config import load_train_config
from hypernst_cli.train.data import make_batch
from hypernst_cli.train.extend import extend_model
from hypernst_cli.train.trainer import TrainContext
from synthetic_faces import write_prepared

CPU = TrainContext(device=torch.device("cpu"))


def inputs(seed: int = 3) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(2, 3, 64, 64, generator=g) * 2 - 1
    mask = torch.randint(0, 3, (2, 64, 64), generator=g)
    codes = torch.randn(2, 4, 32, generator=g)
    return x, mask, codes


def wake(skip: torch.nn.Module) -> None:
    """Non-zero FiLM and output convs (they start at zero), as after training."""
    with torch.no_grad():
        for name, p in skip.named_parameters():
            if name.startswith(("film", "out")):
                p.normal_(0.0, 0.2 if name.endswith("weight") else 0.05)


@pytest.fixture(scope="module")
def skip_model(tiny_model_dir, tmp_path_factory) -> Path:
    """The tiny model with the content skip added (extend) and its zero convs woken."""
    from hypernst_cli.weights.checkpoint import load_model_folder, save_model_folder

    dst = extend_model(tiny_model_dir, tmp_path_factory.mktemp("skip") / "added", skip_width=8)
    models = load_models(dst, None, "cpu", INFERENCE_PARTS)
    wake(models.hypernet.skip)
    folder = load_model_folder(dst)
    networks = dict(folder.networks)
    networks["hypernet"] = models.hypernet.state_dict()
    return save_model_folder(dst.parent / "woken", networks, folder.model_config().to_dict(),
                             folder.extra, card=folder.card)


def test_the_added_skip_renders_as_before_then_follows_content_and_style(tiny_model_dir, tmp_path):
    dst = extend_model(tiny_model_dir, tmp_path / "skip", skip_width=8)
    assert json.loads((dst / "config.json").read_text())["hypernet"]["skip_width"] == 8
    old = load_models(tiny_model_dir, None, "cpu", INFERENCE_PARTS)
    new = load_models(dst, None, "cpu", INFERENCE_PARTS)  # strict: every tensor accounted for
    assert old.hypernet.skip is None and new.hypernet.skip is not None
    x, mask, codes = inputs()
    with torch.no_grad():
        a = stylize_tensors(old.generator, old.hypernet, old.encoder, x, mask, codes)
        b = stylize_tensors(new.generator, new.hypernet, new.encoder, x, mask, codes)
        torch.testing.assert_close(a.images, b.images)  # zero at first: SRC's outputs
        assert a.skip is None and b.skip is not None and not b.skip.any()
        wake(new.hypernet.skip)
        c = stylize_tensors(new.generator, new.hypernet, new.encoder, x, mask, codes)
        other_style = stylize_tensors(new.generator, new.hypernet, new.encoder, x, mask,
                                      torch.roll(codes, 1, dims=0))
        other_content = new.hypernet(torch.flip(x, dims=[-1]), None, _map(codes, mask),
                                     skip=True)
    assert (c.images - a.images).abs().max() > 1e-3  # now it is read
    assert (other_style.skip - c.skip).abs().max() > 1e-4  # the style's codes steer it (FiLM)
    assert (other_content - c.skip).abs().max() > 1e-4  # and it follows the content
    with pytest.raises(UsageError, match="already has the content skip"):
        extend_model(dst, tmp_path / "again", skip_width=8)


def _map(codes: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    from hypernst_cli.pipeline.core import condition

    return condition(codes, mask)[0]


def test_the_skip_enters_the_last_block_only_and_is_checked(skip_model):
    m = load_models(skip_model, None, "cpu", INFERENCE_PARTS)
    G = m.generator
    w = torch.randn(1, G.n_latent, G.style_dim, generator=torch.Generator().manual_seed(0))
    side = G.channels[G.size]
    zero = torch.zeros(1, side, G.size, G.size)
    with torch.no_grad():
        plain, plain_layers = G(w, return_layer_outputs=True)
        same = G(w, skip=zero)
        moved, layers = G(w, skip=torch.randn(1, side, G.size, G.size), return_layer_outputs=True)
    torch.testing.assert_close(same, plain)
    assert (moved - plain).abs().max() > 1e-3
    n_before = len(layers) - 3  # the last block: up conv, conv, toRGB
    for a, b in zip(plain_layers[:n_before], layers[:n_before]):
        if a is not None:
            torch.testing.assert_close(a, b)
    with pytest.raises(ValueError, match="skip of shape"):
        G(w, skip=torch.zeros(1, side, G.size // 2, G.size // 2))


def test_an_edit_at_strength_0_renders_the_stylized_output(skip_model):
    """`edit` re-renders with the stylized result's offsets and skip: strength 0 is the output."""
    from hypernst_cli.pipeline.core import edit_latent

    m = load_models(skip_model, None, "cpu", INFERENCE_PARTS)
    x, mask, codes = inputs(5)
    with torch.no_grad():
        result = stylize_tensors(m.generator, m.hypernet, m.encoder, x, mask, codes)
        latent = encode(m.encoder, m.generator, x)
        direction = torch.randn(m.generator.style_dim)
        again = render(m.generator, edit_latent(m.generator, latent, direction, 0.0),
                       result.offsets, skip=result.skip)
        without = render(m.generator, latent, result.offsets)
    torch.testing.assert_close(again, result.images)
    assert (without - result.images).abs().max() > 1e-3  # the skip is part of the output


def test_stage2_trains_the_skip_and_matches_inference(skip_model, tmp_path):
    """The stylize stage trains the skip with the late heads, and its refinement loop gives what
    inference gives for the same weights (the skip computed per pass there, once here)."""
    from hypernst_cli.train.run import build_stage

    data = write_prepared(tmp_path / "data", n_content=3, n_style=2)
    options = {"model": "tiny", "data": str(data), "init": str(skip_model), "steps": 1,
               "batch_size": 2, "sample_every": 0, "checkpoint_every": 0, "iterations": 3,
               "loss.style": 0.0}
    cfg = load_train_config("stylize", overrides=[f"{k}={json.dumps(v)}" for k, v in options.items()])
    torch.manual_seed(0)
    stage = build_stage(cfg, CPU)
    H = stage.H
    assert all(p.requires_grad for p in H.skip.parameters())
    assert not any(p.requires_grad for p in H.content_encoder.parameters())
    batch = make_batch(stage.content, [0, 1])
    x, mask = batch["image"], batch["mask"]
    codes = stage.style_codes[[1, 0]]
    latent, initial = stage.start(x)
    trained = stage.refine(x, mask, codes, latent, initial, lambda y, t: (y - x).abs().mean())
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in H.skip.out.parameters())
    with torch.no_grad():
        served = stylize_tensors(stage.G, H, stage.E, x, mask, codes, iterations=3,
                                 latent=encode(stage.E, stage.G, x))
    torch.testing.assert_close(trained.images[-1], served.images, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(trained.skip, served.skip, rtol=1e-5, atol=1e-6)
    before = {k: v.clone() for k, v in H.skip.state_dict().items()}
    stage.train_step(0)
    assert any((H.skip.state_dict()[k] - v).abs().max() > 0 for k, v in before.items())


def test_noise_channels_are_added_at_zero_then_give_the_skip_a_fixed_grain(skip_model, tiny_model_dir,
                                                                         tmp_path):
    """--skip-noise N: the skip reads N channels of fixed noise (not saved: drawn from a seed,
    the same in every build), through a conv at zero; once trained the grain reaches the
    residual even where the content is flat, and the same input gives the same output."""
    dst = extend_model(skip_model, tmp_path / "noise", skip_noise=3)
    assert json.loads((dst / "config.json").read_text())["hypernet"]["skip_noise"] == 3
    old = load_models(skip_model, None, "cpu", INFERENCE_PARTS)
    new = load_models(dst, None, "cpu", INFERENCE_PARTS)
    again = load_models(dst, None, "cpu", INFERENCE_PARTS)
    assert "skip.noise" not in new.hypernet.state_dict()
    torch.testing.assert_close(new.hypernet.skip.noise, again.hypernet.skip.noise)
    x, mask, codes = inputs()
    flat = torch.zeros_like(x)
    with torch.no_grad():
        a = old.hypernet(flat, None, _map(codes, mask), skip=True)
        b = new.hypernet(flat, None, _map(codes, mask), skip=True)
        torch.testing.assert_close(a, b)  # zero at first: SRC's residual
        new.hypernet.skip.grain.weight.normal_(0.0, 0.5)
        c = new.hypernet(flat, None, _map(codes, mask), skip=True)
        d = new.hypernet(flat, None, _map(codes, mask), skip=True)
    grain = c - a
    assert grain.abs().max() > 1e-3 and grain[0].std(dim=(-1, -2)).mean() > 1e-4  # varies in space
    torch.testing.assert_close(c, d)  # deterministic
    with pytest.raises(UsageError, match="already reads noise"):
        extend_model(dst, tmp_path / "again", skip_noise=2)
    with pytest.raises(UsageError, match="needs the content skip"):
        extend_model(tiny_model_dir, tmp_path / "none", skip_noise=2)
