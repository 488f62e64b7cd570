"""The one checkpoint format (safetensors + config) and the one resolution order."""

from __future__ import annotations

import json

import pytest
import torch
from hub_stub import write_registry

from hypernst_cli.configs import get_config
from hypernst_cli.errors import WeightsIntegrityError, WeightsNotFoundError
from hypernst_cli.weights import registry as registry_mod
from hypernst_cli.weights.checkpoint import (
    MODEL_FILE,
    load_model_folder,
    load_state_dict_strict,
    load_tensors,
    resolve_weights,
    save_model_file,
    save_model_folder,
    save_tensors,
)


def _networks() -> dict[str, dict[str, torch.Tensor]]:
    g = torch.nn.Linear(4, 3)
    return {
        "generator": {k: v.clone() for k, v in g.state_dict().items()},
        "encoder": {"conv.weight": torch.randn(2, 3, 3, 3), "latent_avg": torch.randn(1, 8)},
    }


def test_save_and_load_tensors_roundtrip_with_metadata(tmp_path):
    base = torch.arange(12.0)
    tensors = {"a": base[:6], "b": base[6:], "tied": base[:6], "half": torch.ones(2, dtype=torch.float16)}
    path = save_tensors(tmp_path / "x.safetensors", tensors, {"note": "hi", "cfg": {"k": [1, 2]}, "n": 3})
    loaded, meta = load_tensors(path)
    assert set(loaded) == set(tensors)
    for k in tensors:
        assert torch.equal(loaded[k], tensors[k]) and loaded[k].dtype == tensors[k].dtype
    assert meta == {"note": "hi", "cfg": {"k": [1, 2]}, "n": 3}
    assert [p.name for p in tmp_path.iterdir()] == ["x.safetensors"]  # no temp file left


@pytest.mark.parametrize("content", [b"", b"not safetensors at all", None])
def test_invalid_or_truncated_file_is_an_integrity_error_naming_it(tmp_path, content):
    path = tmp_path / "broken.safetensors"
    if content is None:  # a real file cut short
        save_tensors(path, {"w": torch.randn(64, 64)})
        path.write_bytes(path.read_bytes()[:-100])
    else:
        path.write_bytes(content)
    with pytest.raises(WeightsIntegrityError) as exc:
        load_tensors(path)
    assert exc.value.exit_code == 3 and "broken.safetensors" in exc.value.one_line()
    assert "\n" not in exc.value.one_line()


@pytest.mark.parametrize("zipped", [True, False])
def test_an_official_pytorch_checkpoint_given_as_weights_says_to_convert_it(tmp_path, zipped):
    """An official .pt where our safetensors weights were expected (``train.assemble DST MODEL
    aladin.pt``, ``-w stylegan2.pt``) said "not a valid safetensors file ... download it again":
    it is a checkpoint to convert, not a broken download."""
    path = tmp_path / "official.pt"
    torch.save({"state_dict": {"w": torch.zeros(2)}}, path, _use_new_zipfile_serialization=zipped)
    with pytest.raises(WeightsIntegrityError) as exc:
        load_tensors(path)
    line = exc.value.one_line()
    assert "a PyTorch checkpoint (pickle), not safetensors" in line
    assert "hypernst convert" in line and "download it again" not in line


def test_model_folder_roundtrip(tmp_path):
    config = get_config("tiny").to_dict()
    nets = _networks()
    folder = save_model_folder(
        tmp_path / "m", nets, config, {"training": {"stage": 2}}, metrics={"lpips_alex": 0.41},
        card="# card\n",
    )
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "config.json", "metrics.json",
                                                       "model.safetensors"]
    tensors, meta = load_tensors(folder / "model.safetensors")
    assert "generator.weight" in tensors and "encoder.conv.weight" in tensors
    assert meta["config"] == json.loads(json.dumps(config)) and meta["format"] == "hypernst"

    model = load_model_folder(folder)
    assert set(model.networks) == {"generator", "encoder"}
    for net, state in nets.items():
        for k, v in state.items():
            assert torch.equal(model.networks[net][k], v)
    assert model.extra == {"training": {"stage": 2}}
    assert model.metrics == {"lpips_alex": 0.41} and model.card == "# card\n"
    assert model.model_config() == get_config("tiny")


def test_single_file_model_carries_its_config(tmp_path):
    config = get_config("tiny").to_dict()
    path = save_model_file(tmp_path / "tiny.safetensors", _networks(), config)
    model = load_model_folder(path)
    assert model.model_config() == get_config("tiny")
    assert set(model.networks) == {"generator", "encoder"}


def test_tensors_that_do_not_match_the_record_are_refused(tmp_path):
    folder = save_model_folder(tmp_path / "m", _networks(), {"name": "tiny"})
    tensors, meta = load_tensors(folder / "model.safetensors")
    del tensors["encoder.latent_avg"]
    save_tensors(folder / "model.safetensors", tensors, meta)
    with pytest.raises(WeightsIntegrityError, match="do not match the recorded networks"):
        load_model_folder(folder)

    save_tensors(tmp_path / "flat.safetensors", {"weight": torch.zeros(1)}, {"config": {}})
    with pytest.raises(WeightsIntegrityError, match="no network prefix"):
        load_model_folder(tmp_path / "flat.safetensors")

    save_tensors(tmp_path / "noconfig.safetensors", {"g.w": torch.zeros(1)})
    with pytest.raises(WeightsIntegrityError, match="no model config"):
        load_model_folder(tmp_path / "noconfig.safetensors")


def test_strict_module_load_names_the_file(tmp_path):
    module = torch.nn.Linear(4, 3)
    folder = save_model_folder(tmp_path / "m", _networks(), {"name": "tiny"})
    model = load_model_folder(folder)
    load_state_dict_strict(module, model.networks["generator"], str(folder))  # matches
    with pytest.raises(WeightsIntegrityError) as exc:
        load_state_dict_strict(torch.nn.Linear(5, 3), model.networks["generator"], str(folder))
    assert str(folder) in exc.value.one_line() and exc.value.exit_code == 3
    with pytest.raises(WeightsIntegrityError, match="Missing key"):
        load_state_dict_strict(module, {"weight": torch.zeros(3, 4)}, str(folder))


# --- resolution order ------------------------------------------------------------------------------


@pytest.fixture
def registry_env(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HYPERNST_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(registry_mod, "EMBEDDED_DIR", tmp_path / "embedded")
    write_registry(
        tmp_path / "weights.toml",
        [
            dict(name="tiny-model", kind="model", configs=["tiny"], url="https://example.org/t.safetensors",
                 filename="t.safetensors"),
            dict(name="tiny-gen", kind="generator", configs=["tiny"], url="https://example.org/g.safetensors",
                 filename="g.safetensors"),
        ],
        monkeypatch,
    )
    return registry_mod.load_registry()


def _place_download(entry, tmp_path):
    """Put a valid model file where a URL download of ``entry`` lands."""
    dest = registry_mod.url_download_path(entry)
    dest.parent.mkdir(parents=True)
    save_model_file(dest, _networks(), get_config("tiny").to_dict())
    return dest


def test_resolution_order(registry_env, tmp_path):
    # 4. nothing anywhere: the one clear message, exit 3
    with pytest.raises(WeightsNotFoundError) as exc:
        resolve_weights(None, "tiny")
    assert exc.value.exit_code == 3
    assert exc.value.one_line() == (
        "no weights found for config tiny (run `hypernst download tiny-model` or pass --weights)"
    )
    # a config nothing publishes: the message says so instead of suggesting a useless download
    with pytest.raises(WeightsNotFoundError) as exc:
        resolve_weights(None, "paper")
    assert "no published model exists" in exc.value.one_line()
    assert "hypernst train" in exc.value.one_line()

    # 3. the embedded model
    embedded = save_model_folder(tmp_path / "embedded" / "tiny", _networks(), get_config("tiny").to_dict())
    assert resolve_weights(None, "tiny") == registry_mod_resolved(embedded, "embedded")

    # 2b. a downloaded model of the config wins over the embedded one (kinds: model only)
    gen = _place_download(registry_env["tiny-gen"], tmp_path)
    assert resolve_weights(None, "tiny").origin == "embedded"
    assert resolve_weights(None, "tiny", kinds=("generator",)).path == gen
    dl = _place_download(registry_env["tiny-model"], tmp_path)
    found = resolve_weights(None, "tiny")
    assert (found.path, found.origin, found.entry) == (dl, "downloaded", "tiny-model")

    # 2a. a registry name
    found = resolve_weights("tiny-gen", "tiny")
    assert (found.path, found.origin) == (gen, "registry")

    # 1. --weights PATH beats everything
    other = save_model_folder(tmp_path / "mine", _networks(), {"name": "tiny"})
    assert resolve_weights(str(other), "tiny").origin == "path"
    assert resolve_weights(str(other / "model.safetensors"), "tiny").path == other / "model.safetensors"


def registry_mod_resolved(path, origin):
    from hypernst_cli.weights.checkpoint import ResolvedWeights

    return ResolvedWeights(path, origin)


def test_resolution_errors_are_clear(registry_env, tmp_path):
    cases = [
        ("tiny-gen", "weights 'tiny-gen' are not on this machine (run `hypernst download tiny-gen`)"),
        (str(tmp_path / "missing" / "model.safetensors"), "no such weights file or folder"),
        ("tiny-gne", "unknown weights 'tiny-gne' (did you mean tiny-gen"),
    ]
    for spec, words in cases:
        with pytest.raises(WeightsNotFoundError) as exc:
            resolve_weights(spec, "tiny")
        assert words in exc.value.one_line() and exc.value.exit_code == 3


def test_a_name_with_no_direct_download_says_how_to_make_it_usable():
    """`--weights aladin-vit` said "download it from ... and pass it with --weights", but the
    official file is not in our format: it needs `hypernst convert` first."""
    with pytest.raises(WeightsNotFoundError) as exc:
        resolve_weights("aladin-vit", "paper")
    line = exc.value.one_line()
    assert "download aladinVIT_bamfg_64.47.pt from https://github.com/DanRuta/ALADIN/releases" in line
    assert "run `hypernst convert aladin aladinVIT_bamfg_64.47.pt -o DIR`, then pass DIR with " \
           "--weights" in line, line


def test_registry_validation(tmp_path):
    from hypernst_cli.errors import WeightsError

    bad = [
        dict(name="a", kind="spaceship", filename="x"),
        dict(name="a", kind="generator", filename="x", sha256="abc"),
        dict(name="a", kind="generator", filename="x", converter="magic"),
        dict(name="a", kind="generator", filename="x", repo_id="o/r", url="https://x"),
    ]
    for entry in bad:
        with pytest.raises(WeightsError):
            registry_mod.load_registry(write_registry(tmp_path / "w.toml", [entry]))
    dup = [dict(name="a", kind="generator", filename="x"), dict(name="a", kind="e4e", filename="y")]
    with pytest.raises(WeightsError, match="duplicate"):
        registry_mod.load_registry(write_registry(tmp_path / "w.toml", dup))


def test_shipped_registry_is_valid_and_complete():
    entries = registry_mod.load_registry(registry_mod.REGISTRY_FILE)
    required = {
        "facexlib-detection-retinaface-resnet50", "facexlib-parsing-bisenet",
        "facexlib-parsing-parsenet", "lpips-alexnet-backbone", "lpips-vgg16-backbone",
        "sifid-inception", "stylegan2-ffhq-1024", "e4e-ffhq-1024", "aladin-vit",
        "interfacegan-age", "interfacegan-pose", "interfacegan-smile",
    }
    assert required <= set(entries)
    for entry in entries.values():
        assert entry.license, entry.name
        assert entry.source_type != "manual" or entry.homepage, entry.name
    # torchvision-style names carry the sha256 prefix; the registry records exactly that prefix
    for name in ("lpips-alexnet-backbone", "lpips-vgg16-backbone", "sifid-inception"):
        e = entries[name]
        assert e.filename.rsplit("-", 1)[-1] == f"{e.sha256_prefix}.pth" and e.url.endswith(e.filename)
    assert (registry_mod.PACKAGE_DIR / "weights.toml").resolve() == registry_mod.REGISTRY_FILE.resolve()


def test_bundled_dlib_and_lpips_files_match_their_pins():
    from hypernst_cli.weights.download import verify_present

    entries = registry_mod.load_registry(registry_mod.REGISTRY_FILE)
    bundled = [e for e in entries.values() if e.source_type == "bundled"]
    assert {e.name for e in bundled} >= {"dlib-landmarks68", "dlib-recognition"}
    for entry in bundled:
        if entry.size > 50_000_000:  # the 95 MB landmark model: checked by size only (speed)
            path, status = registry_mod.locate(entry)
            assert status == "bundled" and path.stat().st_size == entry.size
            continue
        result = verify_present(entry)
        assert result.status == "ok", (entry.name, result.detail)


def test_info_shows_resolution_order_and_bundled():
    from hypernst_cli.info import collect_info

    data = collect_info("cpu")
    assert data["weights_resolution_order"] == [
        "--weights PATH", "registry NAME", "downloaded (HF cache)", "embedded"
    ]
    status = {w["name"]: w["status"] for w in data["weights"]}
    assert status["dlib-landmarks68"] == "bundled"


def test_export_keeps_inference_networks_in_fp16(run_cli, tiny_model_dir, tmp_path):
    import torch

    from hypernst_cli.pipeline.models import INFERENCE_PARTS, load_models

    out = tmp_path / "shipped"
    r = run_cli("weights", "export", tiny_model_dir, "-o", out)
    assert r.exit_code == 0, r.stderr
    exported = load_model_folder(out)
    assert set(exported.networks) == set(INFERENCE_PARTS)
    assert all(t.dtype == torch.float16 for n in exported.networks.values() for t in n.values()
               if t.is_floating_point())
    src = (tiny_model_dir / MODEL_FILE).stat().st_size
    assert (out / MODEL_FILE).stat().st_size < 0.6 * src
    # loads into the fp32 modules and gives (nearly) the same images
    full = load_models(str(tiny_model_dir), None, torch.device("cpu"), ["generator"])
    half = load_models(str(out), None, torch.device("cpu"), ["generator"])
    w = torch.randn(1, full.generator.n_latent, 64)
    with torch.no_grad():
        diff = (full.generator(w) - half.generator(w)).abs().mean().item()
    assert next(half.generator.parameters()).dtype == torch.float32
    assert diff < 1 / 255


def test_export_records_only_the_networks_it_ships(tiny_model_dir, tmp_path):
    """A training run's metrics and card list its discriminators; the exported folder drops
    them, so neither record may claim them (everything else travels unchanged)."""
    import torch

    from hypernst_cli.pipeline.models import INFERENCE_PARTS
    from hypernst_cli.weights.checkpoint import export_model_folder, save_model_folder

    src = load_model_folder(tiny_model_dir)
    networks = {**src.networks, "discriminator": {"weight": torch.zeros(2)}}
    card = "# run\n\n## Networks\n\n" + "".join(f"- `{n}`: trained\n" for n in sorted(networks)) \
        + "\n## Notes\n\n- kept\n"
    save_model_folder(tmp_path / "run", networks, src.config, src.extra,
                      metrics={"networks": {n: "trained" for n in networks}, "steps": 5}, card=card)
    export_model_folder(tmp_path / "run", tmp_path / "out")
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert set(metrics["networks"]) == set(INFERENCE_PARTS) and metrics["steps"] == 5
    exported = load_model_folder(tmp_path / "out").card
    assert "- `discriminator`:" not in exported and "`discriminator` left out" in exported
    assert all(f"- `{n}`: trained" in exported for n in INFERENCE_PARTS)
    assert exported.endswith("## Notes\n\n- kept\n")
