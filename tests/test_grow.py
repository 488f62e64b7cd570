"""Growing a trained model to a higher resolution (train/extend.py --resolution) and training only
its new blocks (the autoencoder stage's ``train_from_layer``), on `tiny` (64 px -> 128 px)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch.nn import functional as F

from hypernst_cli.errors import UsageError
from hypernst_cli.pipeline.core import condition, encode, render
from hypernst_cli.pipeline.models import INFERENCE_PARTS, load_models
from hypernst_cli.train.config import load_train_config
from hypernst_cli.train.extend import extend_model
from hypernst_cli.train.trainer import TrainContext
from synthetic_faces import write_prepared

CPU = TrainContext(device=torch.device("cpu"))


@pytest.fixture(scope="module")
def grown(tiny_model_dir, tmp_path_factory) -> tuple[Path, Path]:
    """(the tiny model with the spatial path and the content skip, the same grown to 128 px)."""
    root = tmp_path_factory.mktemp("grow")
    src = extend_model(tiny_model_dir, root / "src", feature_resolution=16, skip_width=8)
    return src, extend_model(src, root / "grown", resolution=128)


def test_the_grown_model_renders_the_source_upsampled_until_trained(grown):
    src, dst = grown
    cfg = json.loads((dst / "config.json").read_text())
    assert cfg["generator"]["resolution"] == 128 and cfg["hypernet"]["input_size"] == 64
    assert cfg["generator"]["feature_resolution"] == 16
    assert cfg["description"].endswith("(grown from 64 to 128 px)")
    old = load_models(src, None, "cpu", INFERENCE_PARTS)
    new = load_models(dst, None, "cpu", INFERENCE_PARTS)  # strict: every tensor accounted for
    assert new.generator.size == 128 and new.generator.n_latent == old.generator.n_latent + 2
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 64, 64, generator=g) * 2 - 1
    mask = torch.randint(0, 3, (2, 64, 64), generator=g)
    codes = torch.randn(2, 4, 32, generator=g)
    with torch.no_grad():
        # the encoder's new latents start as copies of its last one
        w_old, w_new = old.encoder(x), new.encoder(x)
        n = w_old.shape[1]
        torch.testing.assert_close(w_new[:, :n], w_old)
        torch.testing.assert_close(w_new[:, n:], w_old[:, -1:].expand(-1, 2, -1))
        # the new blocks add nothing: the old image through the generator's skip upsampling
        latent = encode(old.encoder, old.generator, x)
        grown_latent = encode(new.encoder, new.generator, x)
        torch.testing.assert_close(grown_latent.features, latent.features)
        image = render(new.generator, grown_latent)
        assert image.shape[-1] == 128
        upsampled = new.generator.to_rgbs[-1].upsample(render(old.generator, latent))
        torch.testing.assert_close(image, upsampled)
        # the hyper-network reads 128 px inputs at its old size: the same offsets for the old
        # layers; the new layers' offsets scale the zero toRGB weights (nothing changes yet), and
        # the moved skip adds nothing yet
        up = lambda t: F.interpolate(t, scale_factor=2, mode="nearest")  # noqa: E731
        code_map, global_code = condition(codes, mask)
        big_map, _ = condition(codes, up(mask[:, None].float())[:, 0].long())
        a = old.hypernet(x, x, code_map, global_code=global_code)
        b = new.hypernet(up(x), up(x), big_map, global_code=global_code)
        skip = new.hypernet(up(x), None, big_map, global_code=global_code, skip=True)
        stylized = render(new.generator, grown_latent, b)
        before = render(old.generator, latent, a)
    for i, offsets in enumerate(a):
        if offsets is not None:
            torch.testing.assert_close(b[i], offsets, rtol=1e-4, atol=1e-5)
    assert len(b) == len(a) + 3 and all(b[i] is not None for i in range(len(a), len(b)))
    assert (before - render(old.generator, latent)).abs().max() > 1e-3  # the offsets act
    torch.testing.assert_close(stylized, new.generator.to_rgbs[-1].upsample(before),
                               rtol=1e-4, atol=1e-4)
    assert skip.shape[-1] == 128 and not skip.any()


def test_growing_refuses_what_it_cannot_do_and_drops_what_follows_the_resolution(grown, tmp_path):
    from hypernst_cli.weights.checkpoint import load_model_folder, save_model_folder

    src, _ = grown
    for bad in (64, 32, 96):
        with pytest.raises(UsageError, match="power of two above"):
            extend_model(src, tmp_path / f"bad{bad}", resolution=bad)
    folder = load_model_folder(src)
    networks = dict(folder.networks)
    networks["directions"] = {"age": torch.zeros(folder.model_config().generator.style_dim)}
    with_directions = save_model_folder(tmp_path / "with-directions", networks,
                                        folder.model_config().to_dict(), folder.extra)
    dst = load_model_folder(extend_model(with_directions, tmp_path / "grown", resolution=128))
    assert "directions" not in dst.networks and "hypernet" in dst.networks
    assert "dropped" in (dst.card or "")


def test_train_from_layer_trains_only_the_new_blocks(grown, tmp_path):
    from hypernst_cli.train.run import build_stage

    _, dst = grown
    data = write_prepared(tmp_path / "data", n_content=3, n_style=2)
    first = 14  # the 128 px block of a grown 64 px generator: up conv, conv, toRGB = 14..16

    def stage_with(layer: int):
        options = {"model": "tiny", "data": str(data), "init": str(dst), "steps": 2,
                   "batch_size": 2, "sample_every": 0, "checkpoint_every": 0,
                   "train_from_layer": layer, "adv_start": 100, "loss.lpips": 0.0}
        cfg = load_train_config("autoencoder",
                                overrides=[f"{k}={json.dumps(v)}" for k, v in options.items()])
        return build_stage(cfg, CPU)

    stage = stage_with(first)
    layers = stage.G.synthesis_layers()
    assert len(layers) == 17
    before_g = [{k: v.clone() for k, v in layer.state_dict().items()} for layer in layers]
    before_e = {k: v.clone() for k, v in stage.E.state_dict().items()}
    for step in range(2):
        stage.train_step(step)
    for i, (layer, before) in enumerate(zip(layers, before_g)):
        moved = any((layer.state_dict()[k] - v).abs().max() > 0 for k, v in before.items())
        assert moved == (i >= first), f"layer {i}"
    for k, v in stage.E.state_dict().items():  # BatchNorm statistics included
        torch.testing.assert_close(v, before_e[k])
    with pytest.raises(UsageError, match="train_from_layer 17"):
        stage_with(17)
    assert stage_with(-3).train_from == -3  # counted from the end: the same block
    assert [p.requires_grad for p in stage.G.parameters()] == [
        p.requires_grad for p in stage_with(-3).G.parameters()]
