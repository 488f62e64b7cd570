"""The cached style-code provider (pipeline/code_cache.py): memory and disk caches, cache keys,
fall-backs."""

from __future__ import annotations

import torch

from hypernst_cli.errors import NoFaceError
from hypernst_cli.pipeline.code_cache import StyleCodeProvider
from test_style_codes import CFG, CountingEncoder, synthetic_portrait


def _write(tmp_path, image, name="style.png"):
    from hypernst_cli.io import save_image

    return save_image(image, tmp_path / name)


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


def test_a_new_patch_sampler_misses_the_old_cache(tmp_path, monkeypatch):
    """The cache key names the sampler's version: entries whose patch positions came from another
    sampler (the same seed gives other windows) are recomputed, not reused."""
    import hypernst_cli.pipeline.code_cache as code_cache

    image, mask = synthetic_portrait()
    path = _write(tmp_path, image)

    def provider(enc):
        return StyleCodeProvider(enc, lambda img: mask, CFG, model_id="fake-1", encode_size=32,
                                 cache_dir=tmp_path / "cache")

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

