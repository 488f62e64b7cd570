"""The cached style-code provider (pipeline/code_cache.py): memory and disk caches, cache keys,
fall-backs, and ``style_code_provider``, the one builder inference and training share."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hypernst_cli.errors import NoFaceError
from hypernst_cli.pipeline.code_cache import StyleCodeProvider, style_code_provider
from test_style_codes import CFG, CountingEncoder, synthetic_portrait


def _write(tmp_path, image, name="style.png"):
    from hypernst_cli.io import save_image

    return save_image(image, tmp_path / name)


def _cached_provider(enc, mask, tmp_path):
    """A provider with a fixed parser and a disk cache under ``tmp_path``."""
    return StyleCodeProvider(enc, lambda img: mask, CFG, model_id="fake-1", encode_size=32,
                             cache_dir=tmp_path / "cache")


def test_provider_caches_in_memory_and_on_disk(tmp_path):
    image, mask = synthetic_portrait()
    path = _write(tmp_path, image)
    enc = CountingEncoder()
    provider = StyleCodeProvider(enc, lambda img: mask, CFG, model_id="fake-1",
                                 encode_size=32, cache_dir=tmp_path / "cache")
    first = provider.for_file(path)
    assert enc.calls == 1
    again = provider.for_file(path)
    assert enc.calls == 1 and again is first
    # A new process (new provider) reads the disk cache: still no encoder call.
    enc2 = CountingEncoder()
    provider2 = StyleCodeProvider(enc2, lambda img: mask, CFG, model_id="fake-1",
                                  encode_size=32, cache_dir=tmp_path / "cache")
    cached = provider2.for_file(path)
    assert enc2.calls == 0
    assert torch.equal(cached.region_codes, first.region_codes)
    assert cached.sources == first.sources and cached.patches == first.patches
    # A changed model id or changed image bytes invalidate the cache.
    provider3 = StyleCodeProvider(enc2, lambda img: mask, CFG, model_id="fake-2",
                                  encode_size=32, cache_dir=tmp_path / "cache")
    provider3.for_file(path)
    assert enc2.calls == 1
    image2 = image.copy()
    image2[0, 0] = 0
    path2 = _write(tmp_path, image2, "style2.png")
    provider2.for_file(path2)
    assert enc2.calls == 2


def test_a_cache_that_cannot_be_written_only_costs_speed(tmp_path):
    """HYPERNST_CACHE naming a file stopped every stylize run (exit 74) after the model's work."""
    image, mask = synthetic_portrait()
    path = _write(tmp_path, image)
    (tmp_path / "cache").write_text("not a folder")
    provider = StyleCodeProvider(CountingEncoder(), lambda img: mask, CFG, model_id="fake-1",
                                 encode_size=32, cache_dir=tmp_path / "cache")
    codes = provider.for_file(path)
    assert codes.table.shape[0] == 4 and "cache" not in codes.meta


def test_codes_carry_the_images_palette_by_region_and_an_entry_without_one_is_recomputed(tmp_path):
    """The palette post-process reads each style region's colours from the same mask as the
    codes; they are cached with the codes, and a cache entry written before (no palette) is
    recomputed rather than served without one."""
    from safetensors.torch import load_file, save_file

    from hypernst_cli.io.tensors import to_tensor
    from hypernst_cli.pipeline.palette import region_quantiles

    image, mask = synthetic_portrait()
    path = _write(tmp_path, image)

    def provider(enc):
        return _cached_provider(enc, mask, tmp_path)

    enc = CountingEncoder()
    codes = provider(enc).for_file(path)
    expected = region_quantiles(to_tensor(image), torch.as_tensor(mask.astype(np.int64))[None])[0]
    torch.testing.assert_close(codes.palette, expected)
    assert not torch.equal(codes.palette[1], codes.palette[2])  # face and hair differ
    torch.testing.assert_close(provider(enc).for_file(path).palette, expected)
    assert enc.calls == 1  # from the disk cache
    entry = next((tmp_path / "cache" / "codes").iterdir())
    tensors = load_file(str(entry))
    from safetensors import safe_open

    with safe_open(str(entry), framework="pt") as fh:
        meta = fh.metadata()
    del tensors["palette"]
    save_file(tensors, str(entry), metadata=meta)  # as written before palettes were cached
    torch.testing.assert_close(provider(enc).for_file(path).palette, expected)
    assert enc.calls == 2
    # an entry of the earlier mean-and-spread palettes [N_REGIONS + 1, 2, 3] is recomputed too
    tensors = load_file(str(entry))
    tensors["palette"] = torch.zeros(4, 2, 3)
    save_file(tensors, str(entry), metadata=meta)
    torch.testing.assert_close(provider(enc).for_file(path).palette, expected)
    assert enc.calls == 3


def test_codes_carry_the_images_inks_and_an_entry_without_them_is_recomputed(tmp_path):
    """The inks (the style's two main colours per region) are cached beside the palette; an
    entry written before them is recomputed rather than served without."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    from hypernst_cli.io.tensors import to_tensor
    from hypernst_cli.pipeline.palette import region_inks

    image, mask = synthetic_portrait()
    path = _write(tmp_path, image)
    enc = CountingEncoder()
    codes = _cached_provider(enc, mask, tmp_path).for_file(path)
    expected = region_inks(to_tensor(image), torch.as_tensor(mask.astype(np.int64))[None])[0]
    torch.testing.assert_close(codes.inks, expected)
    torch.testing.assert_close(_cached_provider(enc, mask, tmp_path).for_file(path).inks, expected)
    assert enc.calls == 1  # from the disk cache, inks and all
    entry = next((tmp_path / "cache" / "codes").iterdir())
    with safe_open(str(entry), framework="pt") as fh:
        meta = fh.metadata()
    tensors = load_file(str(entry))
    del tensors["inks"]
    save_file(tensors, str(entry), metadata=meta)  # as written before inks were cached
    torch.testing.assert_close(_cached_provider(enc, mask, tmp_path).for_file(path).inks, expected)
    assert enc.calls == 2


def test_a_new_patch_sampler_misses_the_old_cache(tmp_path, monkeypatch):
    """The cache key names the sampler's version: entries whose patch positions came from another
    sampler (the same seed gives other windows) are recomputed, not reused."""
    import hypernst_cli.pipeline.code_cache as code_cache

    image, mask = synthetic_portrait()
    path = _write(tmp_path, image)

    def provider(enc):
        return _cached_provider(enc, mask, tmp_path)

    enc = CountingEncoder()
    provider(enc).for_file(path)
    key = provider(enc).cache_key("x")
    monkeypatch.setattr(code_cache, "SAMPLER_VERSION", "next")
    assert provider(enc).cache_key("x") != key
    provider(enc).for_file(path)
    assert enc.calls == 2


def test_provider_falls_back_when_the_parser_finds_no_face(tmp_path):
    image, _ = synthetic_portrait()

    def no_face(img):
        raise NoFaceError("x.png", "no face found")

    provider = StyleCodeProvider(CountingEncoder(), no_face, CFG, model_id="fake",
                                 encode_size=32)
    codes = provider.for_image(image)
    assert not codes.face_found and codes.fallbacks() == ["background", "face", "hair"]


def test_cache_keys_are_unchanged():
    """A key pinned from before the provider moved out of style_codes.py: codes cached by older
    runs (DATA/codes, the user cache) are still found."""
    provider = StyleCodeProvider(CountingEncoder(), None, CFG, model_id="aladin-0123456789abcdef",
                                 parser_id="prepared-masks", encode_size=32)
    assert provider.cache_key("0" * 64) == "fd26a07ea60bf9e4674adc186ff19f99"


class _Masks:
    """A RegionMasks: what a face processor or a prepared folder gives the builder."""

    parser_id = "test-masks"

    def __init__(self, mask: np.ndarray) -> None:
        self.mask = mask
        self.calls = 0

    def parse_image(self, image: np.ndarray) -> np.ndarray:
        self.calls += 1
        return self.mask


def test_one_builder_for_inference_and_training(tmp_path):
    from hypernst_cli.configs import get_config
    from hypernst_cli.pipeline.models import fingerprint, init_networks

    cfg = get_config("tiny")
    aladin = init_networks(cfg, ["aladin"])["aladin"].eval()
    image, mask = synthetic_portrait(cfg.aladin.image_size)
    masks = _Masks(mask)
    # training's call: ALADIN's hash computed from the module, codes under DATA/codes
    trained = style_code_provider(aladin, cfg, masks, cache_dir=tmp_path, device="cpu")
    assert trained.model_id == f"aladin-{fingerprint(aladin.state_dict())}"
    assert trained.parser_id == "test-masks" and trained.cfg == cfg.style_codes
    assert trained.encode_size == cfg.aladin.image_size and trained.cache_dir == tmp_path
    codes = trained.for_image(image, sha="a" * 64)
    assert masks.calls == 1 and codes.sources == ("patches",) * 3
    assert (tmp_path / "codes" / f"{trained.cache_key('a' * 64)}.safetensors").is_file()
    # inference's call: the hash load_models already computed (the same for the same weights),
    # another seed; it finds the same cache entry only when the settings match
    loaded = style_code_provider(aladin, cfg, masks, cache_dir=tmp_path, device="cpu",
                                 aladin_id=fingerprint(aladin.state_dict()))
    assert loaded.cache_key("a" * 64) == trained.cache_key("a" * 64)
    again = loaded.for_image(image, sha="a" * 64)
    assert loaded.computed == 0 and torch.equal(again.table, codes.table)
    # the run's report counts style images encoded and read from disk (a face's own codes,
    # encoded without a content hash, are not a style image)
    assert (trained.computed_styles, trained.from_disk) == (1, 0)
    assert (loaded.computed_styles, loaded.from_disk) == (0, 1)
    trained.for_image(image, mask=mask)
    assert (trained.computed, trained.computed_styles) == (2, 1)
    reseeded = style_code_provider(aladin, cfg, masks, cache_dir=None, device="cpu", seed=123)
    assert reseeded.cfg.seed == 123 and reseeded.cache_key("a" * 64) != trained.cache_key("a" * 64)
    # no masks: no parser, every region falls back to the global code
    plain = style_code_provider(aladin, cfg, None, cache_dir=None, device="cpu")
    assert plain.parser is None and plain.parser_id == "none"
    assert plain.for_image(image).fallbacks() == ["background", "face", "hair"]


def test_prepare_and_the_training_stages_share_the_cache(tiny_model_dir, tmp_path):
    """`hypernst prepare --weights` caches the codes exactly where, and under the keys, the
    hyper-network stages look for them: the stage encodes nothing."""
    import json

    from hypernst_cli.train.config import load_train_config
    from hypernst_cli.train.prepare import cache_codes
    from hypernst_cli.train.run import build_stage
    from hypernst_cli.train.trainer import TrainContext
    from synthetic_faces import write_prepared

    data = write_prepared(tmp_path / "data", n_content=3, n_style=2)
    info = cache_codes(data, str(tiny_model_dir), None, torch.device("cpu"))
    assert info["codes_computed"] == info["codes_images"] == 5
    options = {"model": "tiny", "data": str(data), "init": str(tiny_model_dir), "steps": 1,
               "batch_size": 2, "sample_every": 0, "checkpoint_every": 0}
    cfg = load_train_config("reconstruct",
                            overrides=[f"{k}={json.dumps(v)}" for k, v in options.items()])
    stage = build_stage(cfg, TrainContext(device=torch.device("cpu")))
    assert stage.code_provider.model_id == info["codes_model"]
    assert stage.code_provider.computed == 0 and stage.all_codes.shape[:2] == (5, 4)


def test_a_style_served_from_the_cache_is_still_an_input_no_output_may_replace(tmp_path,
                                                                               monkeypatch):
    """A style whose codes come from the disk cache is never decoded, and decoding is what
    marks a file as an input: ``stylize ... -o STYLE --overwrite`` once replaced the style
    image with its own output."""
    from hypernst_cli.errors import OutputError
    from hypernst_cli.io import save_image
    from hypernst_cli.io import atomic

    image, mask = synthetic_portrait()
    path = _write(tmp_path, image)
    _cached_provider(CountingEncoder(), mask, tmp_path).for_file(path)  # fills the disk cache
    monkeypatch.setattr(atomic, "_PROTECTED", set())  # a new run: nothing read yet
    enc = CountingEncoder()
    _cached_provider(enc, mask, tmp_path).for_file(path)
    assert enc.calls == 0  # served from the cache
    with pytest.raises(OutputError, match="overwrite an input"):
        save_image(np.zeros_like(image), path)


def test_a_missing_or_folder_style_is_an_input_error(tmp_path):
    from hypernst_cli.errors import InputError

    image, mask = synthetic_portrait()
    provider = _cached_provider(CountingEncoder(), mask, tmp_path)
    with pytest.raises(InputError, match="no such file"):
        provider.for_file(tmp_path / "missing.png")
    with pytest.raises(InputError, match="a folder"):
        provider.for_file(tmp_path)
