"""The spatial-feature path (generator.feature_resolution): shapes, what F replaces, consistency
with the plain W+ render, edits, strict loading, configs, the CLI's latents and training (tiny)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from hypernst_cli.configs import ModelConfig, get_config
from hypernst_cli.errors import UsageError, WeightsIntegrityError
from hypernst_cli.pipeline.core import Latent, edit_latent, edit_wplus, encode, render
from hypernst_cli.pipeline.models import INFERENCE_PARTS, init_networks, save_networks


def spatial_config(r_f: int = 32) -> ModelConfig:
    """``tiny`` (64 px) with the spatial path at ``r_f``."""
    tiny = get_config("tiny")
    return tiny.replace(name=f"tiny-spatial{r_f}",
                        generator=dataclasses.replace(tiny.generator, feature_resolution=r_f))


def networks(cfg: ModelConfig, seed: int = 0) -> dict:
    nets = init_networks(cfg, INFERENCE_PARTS, seed=seed)
    for net in nets.values():
        net.eval().requires_grad_(False)
    head = getattr(nets["encoder"], "feature_head", None)
    if head is not None:  # a trained head's residual is not zero (a new one's is)
        torch.manual_seed(seed + 1)
        head[-1].weight.normal_(0, 0.05)
    return nets


def latents(gen: torch.nn.Module, batch: int = 2, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, gen.n_latent, gen.style_dim, generator=g)


def late_offsets(gen: torch.nn.Module, batch: int, start: int, scale: float = 0.3) -> list:
    g = torch.Generator().manual_seed(5)
    return [None if s.index < start else torch.randn(batch, *s.offset_shape, generator=g) * scale
            for s in gen.layer_specs()]


# --- shapes ------------------------------------------------------------------------------------


@pytest.mark.parametrize("r_f", [16, 32])
def test_shapes_of_f_and_of_the_outputs(r_f):
    cfg = spatial_config(r_f)
    nets = networks(cfg)
    gen, enc = nets["generator"], nets["encoder"]
    channels = gen.channels[r_f]
    assert gen.feature_shape() == (channels + 3, r_f, r_f)
    # the first layer / latent that runs on F: the toRGB at r_f
    assert gen.layer_specs()[gen.first_live_layer].name == f"to_rgbs.{int(np.log2(r_f)) - 3}"
    assert gen.first_live_latent == 3 + 2 * (int(np.log2(r_f)) - 3)
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        wplus, residual = enc(x, with_features=True)
        assert enc(x).shape == wplus.shape == (2, gen.n_latent, gen.style_dim)
        assert residual.shape == (2, channels + 3, r_f, r_f)
        latent = encode(enc, gen, x)
        assert latent.features.shape == (2, channels + 3, r_f, r_f)
        assert torch.allclose(latent.features, gen.spatial_features(wplus) + residual)
        assert render(gen, latent).shape == (2, 3, 64, 64)
    # the hyper-network has heads only for the layers that run on F
    assert nets["hypernet"].tuned == list(range(gen.first_live_layer, len(gen.layer_specs())))


def test_without_the_path_nothing_changes():
    nets = networks(get_config("tiny"))
    gen, enc = nets["generator"], nets["encoder"]
    assert not gen.spatial and enc.feature_head is None
    x = torch.rand(1, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        wplus, residual = enc(x, with_features=True)
        assert residual is None
        latent = encode(enc, gen, x)
        assert latent.features is None and torch.equal(latent.wplus, wplus)
        assert torch.equal(render(gen, latent), gen(wplus))
        with pytest.raises(ValueError, match="no spatial path"):
            gen(wplus, features=torch.zeros(1, 67, 32, 32))
    assert nets["hypernet"].tuned == list(range(len(gen.layer_specs())))


def test_wrong_feature_shape_is_refused():
    gen = networks(spatial_config(32))["generator"]
    w = latents(gen, 1)
    with pytest.raises(ValueError, match=r"expected features of shape \[1, 67, 32, 32\]"):
        gen(w, features=torch.zeros(1, 67, 16, 16))


# --- what F replaces ---------------------------------------------------------------------------


def test_f_replaces_the_early_layers():
    gen = networks(spatial_config(32))["generator"]
    w = latents(gen)
    g = torch.Generator().manual_seed(3)
    features = torch.randn(2, *gen.feature_shape(), generator=g)
    with torch.no_grad():
        base = gen(w, features=features)
        # another F: another image
        assert (gen(w, features=features * 1.5) - base).abs().mean() > 1e-2
        # the latents of the skipped layers are not read ...
        skipped = w.clone()
        skipped[:, : gen.first_live_latent] += torch.randn_like(skipped[:, : gen.first_live_latent])
        assert torch.equal(gen(skipped, features=features), base)
        # ... but they are without F, and the first live latent is read with F
        assert (gen(skipped) - gen(w)).abs().mean() > 1e-3
        live = w.clone()
        live[:, gen.first_live_latent] += 1.0
        assert (gen(live, features=features) - base).abs().mean() > 1e-3
        # offsets of skipped layers are not read; those of the live layers are
        n = len(gen.layer_specs())
        early = late_offsets(gen, 2, 0)
        early[gen.first_live_layer:] = [None] * (n - gen.first_live_layer)
        assert torch.equal(gen(w, features=features, offsets=early), base)
        tuned = gen(w, features=features, offsets=late_offsets(gen, 2, gen.first_live_layer))
        assert (tuned - base).abs().mean() > 1e-3
        _, outputs = gen(w, features=features, return_layer_outputs=True)
    assert outputs[: gen.first_live_layer] == [None] * gen.first_live_layer
    assert all(o is not None for o in outputs[gen.first_live_layer:])


@pytest.mark.parametrize("grad", [False, True])
def test_f_of_the_generator_renders_the_plain_w_plus_image(grad):
    gen = networks(spatial_config(32))["generator"]
    w = latents(gen)
    offsets = late_offsets(gen, 2, gen.first_live_layer)
    with torch.set_grad_enabled(grad):
        own = gen.spatial_features(w)
        for offs in (None, offsets):
            plain = gen(w, offsets=offs)
            assert torch.allclose(gen(w, features=own, offsets=offs), plain, atol=1e-5)
        # the training form (one call): F = G_f(w) + residual
        residual = torch.randn_like(own) * 0.1
        assert torch.allclose(gen(w, feature_residual=torch.zeros_like(own)), gen(w), atol=1e-5)
        assert torch.allclose(gen(w, feature_residual=residual),
                              gen(w, features=own + residual), atol=1e-5)
        assert (gen(w, feature_residual=residual) - gen(w)).abs().mean() > 1e-3


def test_skipping_the_early_layers_is_cheaper():
    from torch.utils.flop_counter import FlopCounterMode

    gen = networks(spatial_config(32))["generator"]
    w = latents(gen, 1)

    def flops(**kwargs: object) -> int:
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            gen(w, **kwargs)
        return counter.get_total_flops()

    features = gen.spatial_features(w)
    assert flops(features=features) < 0.8 * flops()


# --- edits -------------------------------------------------------------------------------------


def test_edit_moves_f_by_the_generators_feature_difference():
    gen = networks(spatial_config(32))["generator"]
    w = latents(gen)
    direction = torch.randn(gen.style_dim, generator=torch.Generator().manual_seed(9))
    with torch.no_grad():
        own = gen.spatial_features(w)
        # F = G_f(w): the edit is exactly the plain W+ edit
        edited = edit_latent(gen, Latent(w, own), direction, 1.5)
        plain = gen(edit_wplus(w, direction, 1.5))
        assert torch.allclose(render(gen, edited), plain, atol=1e-5)
        assert (plain - gen(w)).abs().mean() > 1e-3  # a real edit
        # any F: it moves by G_f(w_edit) - G_f(w), so the edit of F + r is the plain edit + r
        residual = torch.randn_like(own) * 0.2
        moved = edit_latent(gen, Latent(w, own + residual), direction, 1.5)
        assert torch.allclose(moved.features - residual, edited.features, atol=1e-5)
        assert torch.allclose(moved.wplus, edited.wplus)
        assert torch.allclose(render(gen, moved), gen(edited.wplus, feature_residual=residual),
                              atol=1e-5)
        # strength 0 is no edit; a W+-only latent gets the plain edit
        assert torch.allclose(edit_latent(gen, Latent(w, own + residual), direction, 0).features,
                              own + residual)
        assert edit_latent(gen, w, direction, 1.5).features is None


# --- configs and strict loading ----------------------------------------------------------------


def test_old_configs_without_the_fields_load_and_bad_values_are_refused():
    data = get_config("compact").to_dict()
    del data["generator"]["feature_resolution"]
    del data["encoder"]["feature_width"]
    cfg = ModelConfig.from_dict(data)
    assert cfg.generator.feature_resolution == 0 and cfg == get_config("compact")
    assert get_config("paper").generator.feature_resolution == 0
    data["generator"]["feature_resolution"] = 32
    assert ModelConfig.from_dict(data).generator.feature_resolution == 32
    for bad in (48, 4, 128, 256):  # not a power of two, too small, not below 128 px
        data["generator"]["feature_resolution"] = bad
        with pytest.raises(UsageError, match="feature_resolution"):
            ModelConfig.from_dict(data)


def test_compact256_is_a_256_px_spatial_config_within_budget():
    from hypernst_cli.models.stylegan2 import count_parameters

    cfg = get_config("compact256")
    assert cfg.resolution == 256 and cfg.generator.feature_resolution == 64
    assert cfg.detail.strength == 0 and cfg.encoder.input_size == 256
    assert get_config("compact").resolution == 128 and get_config("compact").detail.strength == 1
    assert ModelConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    with torch.device("meta"):
        nets = {n: init_networks(cfg, [n])[n] for n in INFERENCE_PARTS}
    fp16_mb = sum(count_parameters(n) for n in nets.values()) * 2 / 2**20
    assert fp16_mb <= 40, fp16_mb
    assert nets["hypernet"].tuned == list(range(13, 20))  # the paper's stage-2 layers
    assert nets["generator"].feature_shape() == (67, 64, 64)


def test_strict_loading_names_a_missing_or_unexpected_feature_head(tmp_path):
    from hypernst_cli.pipeline.models import load_models

    spatial, plain = spatial_config(32), get_config("tiny")
    # weights without the head, under a config that wants it
    save_networks(tmp_path / "a", spatial, networks(plain))
    with pytest.raises(WeightsIntegrityError) as exc:
        load_models(str(tmp_path / "a"), None, torch.device("cpu"), ["encoder"])
    message = str(exc.value)
    assert "no feature head" in message and "feature_resolution 32" in message
    assert "\n" not in message
    # a head the config does not have
    save_networks(tmp_path / "b", plain, networks(spatial))
    with pytest.raises(WeightsIntegrityError, match="has no spatial path"):
        load_models(str(tmp_path / "b"), None, torch.device("cpu"), ["encoder"])
    # matching ones load, the F head included
    nets = networks(spatial)
    save_networks(tmp_path / "c", spatial, nets)
    loaded = load_models(str(tmp_path / "c"), None, torch.device("cpu"), INFERENCE_PARTS)
    assert torch.equal(loaded.encoder.feature_head[-1].weight, nets["encoder"].feature_head[-1].weight)


# --- the pipeline and the CLI ------------------------------------------------------------------


@pytest.fixture(scope="module")
def spatial_model_dir(tmp_path_factory) -> Path:
    """A tiny model folder with the spatial path at 32 px and random weights (a non-zero F head,
    hyper-network outputs that steer the generator)."""
    cfg = spatial_config(32)
    nets = networks(cfg)
    with torch.no_grad():
        for name, param in nets["hypernet"].named_parameters():
            if not param.any():
                param.normal_(0.0, 0.05 if name.endswith("weight") else 0.01)
    folder = tmp_path_factory.mktemp("spatial") / "tiny-spatial"
    save_networks(folder, cfg, nets)
    return folder


def _image(path: Path) -> np.ndarray:
    from hypernst_cli.io import load_image

    return load_image(path).astype(np.int64)


def test_pipeline_passes_f_through_every_render(spatial_model_dir, portraits):
    from hypernst_cli.pipeline.stylize import HyperNSTPipeline

    photo = sorted((portraits / "photos").glob("*.jpg"))[0]
    pipe = HyperNSTPipeline.load(weights=str(spatial_model_dir), config="tiny", device="cpu",
                                 backend="dlib", seed=0)
    face = pipe.prepare(photo)[0]
    gen = pipe.models.generator
    assert face.features is not None and face.features.shape == gen.feature_shape()
    result = pipe.generate([face], face.own_codes.table)
    assert torch.equal(result.features[0], face.features)
    with torch.no_grad():
        assert torch.allclose(result.initial, render(gen, face.latent), atol=1e-5)
        plain = gen(face.wplus[None])
    assert (result.initial - plain).abs().mean() > 1e-3  # F, not W+ alone, was rendered
    # an edit of strength 0 renders the unedited result; a W+-only latent renders G_f(W+)
    direction = torch.randn(gen.style_dim)
    same = pipe.render_edit(face, direction, 0.0, result)
    assert torch.allclose(same, result.images, atol=1e-5)
    w_only = pipe.prepare_image(face.photo, latent=face.wplus)[0]
    with torch.no_grad():
        assert torch.allclose(w_only.features[None], gen.spatial_features(face.wplus[None]))
    with pytest.raises(UsageError, match="features have shape"):
        pipe.prepare_image(face.photo, latent=Latent(face.wplus, face.features[:, :8]))


def test_a_latent_with_f_is_refused_by_a_model_without_the_path(tiny_model_dir, portraits):
    from hypernst_cli.pipeline.stylize import HyperNSTPipeline

    photo = sorted((portraits / "photos").glob("*.jpg"))[0]
    pipe = HyperNSTPipeline.load(weights=str(tiny_model_dir), config="tiny", device="cpu",
                                 backend="dlib", seed=0)
    wplus = torch.zeros(10, 64)
    assert pipe.prepare(photo, latent=Latent(wplus))[0].features is None
    with pytest.raises(UsageError, match="no spatial path"):
        pipe.prepare(photo, latent=Latent(wplus, torch.zeros(67, 32, 32)))


def test_invert_saves_f_and_latent_reloads_it(run_cli, spatial_model_dir, portraits,
                                              isolated_cache, tmp_path):
    from hypernst_cli.weights.checkpoint import load_tensors, save_tensors

    photo = sorted((portraits / "photos").glob("*.jpg"))[2]
    style = portraits / "styles" / "neon.png"
    cpu = ("--device", "cpu")
    r = run_cli(*cpu, "invert", photo, "-o", tmp_path / "inv", "-w", spatial_model_dir)
    assert r.exit_code == 0, r.stderr
    latent = tmp_path / "inv" / f"{photo.stem}.latent.safetensors"
    tensors, _ = load_tensors(latent)
    assert tuple(tensors["features"].shape) == (67, 32, 32)
    assert tuple(tensors["wplus"].shape) == (10, 64)

    def stylize(name: str, *extra: object) -> np.ndarray:
        out = tmp_path / f"{name}.png"
        r = run_cli(*cpu, "stylize", photo, style, "-o", out, "-w", spatial_model_dir, *extra)
        assert r.exit_code == 0, r.stderr
        return _image(out)

    inverted = stylize("inverted")
    assert np.abs(stylize("reloaded", "--latent", latent) - inverted).mean() < 0.5
    # an older latent file (W+ only) still loads: F = G_f(W+), another image than with its F
    old = tmp_path / "old.latent.safetensors"
    save_tensors(old, {"wplus": tensors["wplus"]}, {"format": "hypernst-latent"})
    assert np.abs(stylize("old", "--latent", old) - inverted).mean() > 0.5
    # edit takes the latent with F: strength 0 is the reconstruction
    direction = tmp_path / "smile.safetensors"
    from hypernst_cli.weights.checkpoint import save_model_file

    save_model_file(direction, {"directions": {"smile": torch.randn(1, 64) * 3}}, {})
    r = run_cli(*cpu, "edit", photo, "-d", direction, "--strength", "-2..2", "--steps", "3",
                "-o", tmp_path / "edit", "-w", spatial_model_dir, "--latent", latent)
    assert r.exit_code == 0, r.stderr
    frames = [_image(tmp_path / "edit" / f"{photo.stem}_smile_{i:02d}.png") for i in range(3)]
    recon = _image(tmp_path / "inv" / f"{photo.stem}_reconstruction.png")
    assert np.abs(frames[1] - recon).mean() < 0.5
    assert np.abs(frames[0] - frames[1]).mean() > 1.0


# --- training ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def synthetic_data(tmp_path_factory) -> Path:
    """A prepared folder of smooth random 64 px images with masks (2 content, 2 style)."""
    from PIL import Image

    root = tmp_path_factory.mktemp("spatial-data")
    g = torch.Generator().manual_seed(0)
    for split in ("content", "style"):
        (root / split).mkdir()
        for i in range(2):
            coarse = torch.rand(1, 3, 8, 8, generator=g)
            image = torch.nn.functional.interpolate(coarse, size=64, mode="bilinear")[0]
            image = (image + 0.1 * torch.rand(3, 64, 64, generator=g)).clamp(0, 1)
            Image.fromarray((image.permute(1, 2, 0).numpy() * 255).astype(np.uint8)).save(
                root / split / f"{split}{i}.png")
            mask = np.zeros((64, 64), np.uint8)
            mask[16:48, 16:48] = 1
            mask[:10] = 2
            Image.fromarray(mask).save(root / split / f"{split}{i}.mask.png")
    return root


def _train(stage: str, data: Path, run_dir: Path, model: Path, **options: object) -> Path:
    from hypernst_cli.train.config import load_train_config
    from hypernst_cli.train.run import run_training
    from hypernst_cli.train.trainer import TrainContext

    base = {"model": str(model), "data": str(data), "steps": 3, "batch_size": 2, "log_every": 1,
            "sample_every": 0, "checkpoint_every": 0, **options}
    cfg = load_train_config(stage, overrides=[f"{k}={json.dumps(v)}" for k, v in base.items()])
    return run_training(cfg, run_dir, progress=False, ctx=TrainContext(device=torch.device("cpu")))


def test_autoencoder_trains_the_f_head_and_stage1_renders_f(synthetic_data, spatial_model_dir,
                                                             tmp_path, monkeypatch):
    from hypernst_cli.models.stylegan2 import Generator
    from hypernst_cli.pipeline.models import load_models
    from hypernst_cli.train.trainer import read_metrics

    config = tmp_path / "config.json"
    config.write_text(json.dumps(spatial_config(32).to_dict()))

    def head_after(plain_fraction: float, name: str) -> torch.Tensor:
        final = _train("autoencoder", synthetic_data, tmp_path / name, config,
                       plain_fraction=plain_fraction, **{"loss.adv": 0.0})
        rows = read_metrics(tmp_path / name)
        assert all(np.isfinite(r["feature"]) for r in rows)
        enc = load_models(str(final), None, torch.device("cpu"), ["encoder"]).encoder
        return enc.feature_head[-1].weight

    # a new head starts at zero (F = G_f(W+)): trained with F it moves ...
    assert head_after(0.0, "with-f").abs().sum() > 0
    # ... rendered from W+ alone (every sample plain) it gets no gradient and stays at zero
    assert head_after(1.0, "plain").abs().sum() == 0

    # stage 1 renders every refinement pass from F
    seen: list[bool] = []
    forward = Generator.forward

    def spy(self, wplus, **kwargs):
        seen.append(kwargs.get("features") is not None)
        return forward(self, wplus, **kwargs)

    monkeypatch.setattr(Generator, "forward", spy)
    _train("reconstruct", synthetic_data, tmp_path / "rec", config, init=str(spatial_model_dir),
           steps=1, iterations=2)
    assert seen and all(seen), seen
