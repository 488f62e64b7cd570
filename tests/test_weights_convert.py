"""`hypernst convert`: official files -> safetensors; pickles are never executed."""

from __future__ import annotations

import argparse
import os
import sys
import types

import numpy as np
import pytest
import torch
from hub_stub import write_registry

from hypernst_cli.configs import AladinConfig, EncoderConfig, GeneratorConfig
from hypernst_cli.weights.checkpoint import load_model_folder, load_state_dict_strict, resolve_weights

MARKER_NAME = "pickle-was-executed"


class RunsACommand:
    """Unpickling this calls os.system (what a malicious checkpoint does)."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class CustomThing:
    """A harmless class that is simply not on the allow-list."""

    def __init__(self) -> None:
        self.value = 3


def _one_line_error(r) -> str:
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    return lines[0]


# --- directions: files in InterFaceGAN's layout ---------------------------------------------------


def save_as_if_on_cuda(tensor: torch.Tensor, path) -> None:
    """``torch.save`` of ``tensor`` as a CUDA machine writes it (storage location ``cuda:0``),
    made without CUDA: the location string in the pickle is rewritten."""
    import io
    import zipfile

    buf = io.BytesIO()
    torch.save(tensor, buf)
    src = zipfile.ZipFile(io.BytesIO(buf.getvalue()))
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as dst:
        for info in src.infolist():
            data = src.read(info.filename)
            if info.filename.endswith("data.pkl"):
                assert data.count(b"X\x03\x00\x00\x00cpu") == 1
                data = data.replace(b"X\x03\x00\x00\x00cpu", b"X\x06\x00\x00\x00cuda:0")
            dst.writestr(info.filename, data)


@pytest.fixture
def interfacegan(tmp_path):
    """Directions as HyperNST's repository ships them: age and smile (1, 512) saved on a CPU, pose
    (1, 18, 512) saved from CUDA (random unit vectors)."""
    folder = tmp_path / "interfacegan"
    folder.mkdir()
    gen = torch.Generator().manual_seed(0)
    for name, shape in (("age", (1, 512)), ("smile", (1, 512)), ("pose", (1, 18, 512))):
        v = torch.randn(shape, generator=gen)
        v = v / v.norm(dim=-1, keepdim=True)
        if name == "pose":
            save_as_if_on_cuda(v, folder / "pose.pt")
        else:
            torch.save(v, folder / f"{name}.pt")
    with pytest.raises(RuntimeError, match="CUDA"):  # what a plain torch.load does without CUDA
        torch.load(folder / "pose.pt", weights_only=True)
    return folder


def check_directions_convert_keeping_values(folder, run_cli, tmp_path) -> None:
    for name in ("age", "pose", "smile"):  # pose.pt was saved from CUDA
        src = folder / f"{name}.pt"
        dst = tmp_path / f"{name}.safetensors"
        r = run_cli("convert", "directions", src, "-o", dst)
        assert r.exit_code == 0, r.stderr
        source = torch.load(src, map_location="cpu", weights_only=True)
        model = load_model_folder(dst)
        converted = model.networks["directions"][name]
        assert converted.dtype == source.dtype and torch.equal(converted, source)
        assert model.extra["converter"] == "directions"
        assert model.extra["directions"][name]["space"] == ("w+" if source.ndim == 3 else "w")
    assert load_model_folder(tmp_path / "age.safetensors").networks["directions"]["age"].shape == (1, 512)


def test_convert_directions_keeps_values(interfacegan, run_cli, tmp_path):
    check_directions_convert_keeping_values(interfacegan, run_cli, tmp_path)


@pytest.mark.shared
def test_convert_the_real_interfacegan_files(shared_data, run_cli, tmp_path):
    """The files themselves (../shared/reference/interfacegan, next to ../shared/data)."""
    folder = shared_data.parent / "reference" / "interfacegan"
    assert (folder / "age.pt").is_file(), f"{folder} is missing"
    check_directions_convert_keeping_values(folder, run_cli, tmp_path)


def test_convert_npy_direction_and_refuse_object_arrays(run_cli, tmp_path):
    boundary = np.random.default_rng(0).standard_normal((1, 512)).astype(np.float32)
    np.save(tmp_path / "stylegan_ffhq_age_w_boundary.npy", boundary)
    r = run_cli("convert", "directions", tmp_path / "stylegan_ffhq_age_w_boundary.npy",
                "-o", tmp_path / "age", "--name", "age")
    assert r.exit_code == 0, r.stderr
    model = load_model_folder(tmp_path / "age")
    assert np.array_equal(model.networks["directions"]["age"].numpy(), boundary)

    np.save(tmp_path / "evil.npy", np.array([CustomThing()], dtype=object), allow_pickle=True)
    r = run_cli("convert", "directions", tmp_path / "evil.npy", "-o", tmp_path / "evil.safetensors")
    assert r.exit_code == 3 and "object array" in _one_line_error(r)
    assert not (tmp_path / "evil.safetensors").exists()


# --- pickles that name other globals are refused, never executed ---------------------------------------


@pytest.mark.parametrize("zip_format", [True, False])
def test_malicious_pickle_is_refused_and_not_executed(run_cli, tmp_path, zip_format):
    marker = tmp_path / MARKER_NAME
    src = tmp_path / "evil.pt"
    torch.save({"g_ema": {"w": torch.zeros(1)}, "payload": RunsACommand(str(marker))}, src,
               _use_new_zipfile_serialization=zip_format)
    for kind in ("stylegan2", "directions", "facexlib"):
        r = run_cli("convert", kind, src, "-o", tmp_path / "out")
        assert r.exit_code == 3, r.stderr
        line = _one_line_error(r)
        assert "refusing to unpickle" in line and "posix.system" in line and "evil.pt" in line
    assert not marker.exists()
    assert not (tmp_path / "out").exists()


def test_custom_class_is_refused_by_name(run_cli, tmp_path):
    src = tmp_path / "custom.pt"
    torch.save({"state_dict": {"encoder.w": torch.zeros(1)}, "opts": CustomThing()}, src)
    r = run_cli("convert", "e4e", src, "-o", tmp_path / "out")
    assert r.exit_code == 3 and f"{__name__}.CustomThing" in _one_line_error(r)


def test_not_a_checkpoint_is_exit_3(run_cli, tmp_path):
    (tmp_path / "junk.pt").write_bytes(b"\x00junk" * 10)
    r = run_cli("convert", "stylegan2", tmp_path / "junk.pt", "-o", tmp_path / "out")
    assert r.exit_code == 3 and "not a PyTorch checkpoint (neither a zip" in _one_line_error(r)
    r = run_cli("convert", "stylegan2", tmp_path / "nope.pt", "-o", tmp_path / "out")
    assert r.exit_code == 2 and "no such file" in _one_line_error(r)
    r = run_cli("convert", "warp-drive", tmp_path / "junk.pt", "-o", tmp_path / "out")
    assert r.exit_code == 2 and "unknown converter" in _one_line_error(r)


# --- model converters: the plumbing, with stand-in mapping modules ----------------------------------


def _rename(prefix: str):
    return lambda sd, *rest: {f"{prefix}{k.replace('.', '_')}": v.clone() for k, v in sd.items()}


class _Holder(torch.nn.Module):
    """A module whose parameters carry exactly the given names (stands in for our networks)."""

    def __init__(self, state: dict[str, torch.Tensor]) -> None:
        super().__init__()
        for name, tensor in state.items():
            self.register_buffer(name, torch.zeros_like(tensor))


@pytest.fixture
def fake_mappings(monkeypatch):
    calls: dict[str, object] = {}
    official = types.ModuleType("hypernst_cli.models.official")
    official.stylegan2_generator_to_ours = _rename("g_")
    official.stylegan2_discriminator_to_ours = _rename("d_")
    official.infer_generator_config = lambda sd: GeneratorConfig(resolution=64, style_dim=8, n_mlp=2)
    encoders = types.ModuleType("hypernst_cli.models.official_encoders")

    def e4e_to_ours(sd, latent_avg):
        calls["e4e_latent_avg"] = latent_avg
        return {**_rename("e_")(sd), "latent_avg": latent_avg.clone()}

    encoders.e4e_to_ours = e4e_to_ours
    encoders.infer_e4e_config = lambda sd: EncoderConfig(depth=0, blocks=(1, 1), width=8, input_size=64)
    encoders.aladin_to_ours = _rename("a_")
    encoders.infer_aladin_config = lambda sd: AladinConfig(image_size=64, dim=16, depth=1, heads=2,
                                                           mlp_dim=32, code_dim=8)
    monkeypatch.setitem(sys.modules, "hypernst_cli.models.official", official)
    monkeypatch.setitem(sys.modules, "hypernst_cli.models.official_encoders", encoders)
    return calls


def _rosinality_like() -> dict:
    g = {"style.1.weight": torch.randn(8, 8), "convs.0.conv.weight": torch.randn(1, 4, 4, 3, 3)}
    return {
        "g_ema": g,
        "g": {k: v + 1 for k, v in g.items()},
        "d": {"convs.0.0.weight": torch.randn(4, 3, 1, 1), "final_linear.1.bias": torch.randn(1)},
        "latent_avg": torch.randn(8),
        "args": argparse.Namespace(size=64, latent=8, n_mlp=2, channel_multiplier=2, lr=0.002),
    }


def test_convert_stylegan2_plumbing(fake_mappings, run_cli, tmp_path):
    ckpt = _rosinality_like()
    torch.save(ckpt, tmp_path / "550000.pt")
    r = run_cli("convert", "stylegan2", tmp_path / "550000.pt", "-o", tmp_path / "sg2")
    assert r.exit_code == 0, r.stderr
    model = load_model_folder(tmp_path / "sg2")
    assert set(model.networks) == {"generator", "discriminator", "stats"}
    gen = model.networks["generator"]
    assert torch.equal(gen["g_style_1_weight"], ckpt["g_ema"]["style.1.weight"])  # g_ema, not g
    load_state_dict_strict(_Holder(gen), gen, str(tmp_path / "sg2"))
    load_state_dict_strict(_Holder(model.networks["discriminator"]), model.networks["discriminator"], "d")
    assert torch.equal(model.networks["stats"]["latent_avg"], ckpt["latent_avg"])
    assert model.config["generator"]["resolution"] == 64 and model.config["name"] == "550000"
    assert model.extra["source_args"]["size"] == 64 and model.extra["source_args"]["lr"] == 0.002
    assert model.model_config().generator == GeneratorConfig(resolution=64, style_dim=8, n_mlp=2)

    torch.save({"nothing": torch.zeros(1)}, tmp_path / "plain.pt")
    r = run_cli("convert", "stylegan2", tmp_path / "plain.pt", "-o", tmp_path / "x")
    assert r.exit_code == 3 and "no 'g_ema' entry" in _one_line_error(r)


def test_convert_e4e_plumbing_keeps_options(fake_mappings, run_cli, tmp_path):
    sd = {"encoder.body.0.weight": torch.randn(4, 3, 3, 3), "encoder.styles.0.bias": torch.randn(8),
          "decoder.style.1.weight": torch.randn(8, 8)}
    latent_avg = torch.randn(18, 8)
    opts = {"encoder_type": "Encoder4Editing", "stylegan_size": 1024, "start_from_latent_avg": True,
            "lpips_lambda": 0.8, "progressive_steps": [0, 20000, 22000]}
    torch.save({"state_dict": sd, "latent_avg": latent_avg, "opts": opts}, tmp_path / "e4e_ffhq_encode.pt")
    r = run_cli("convert", "e4e", tmp_path / "e4e_ffhq_encode.pt", "-o", tmp_path / "e4e.safetensors")
    assert r.exit_code == 0, r.stderr
    model = load_model_folder(tmp_path / "e4e.safetensors")
    assert set(model.networks) == {"encoder", "generator"}
    enc = model.networks["encoder"]
    assert torch.equal(enc["e_body_0_weight"], sd["encoder.body.0.weight"])  # 'encoder.' stripped
    assert torch.equal(enc["latent_avg"], latent_avg) and torch.equal(fake_mappings["e4e_latent_avg"], latent_avg)
    load_state_dict_strict(_Holder(enc), enc, "e4e")
    assert model.extra["source_opts"] == opts
    assert model.config["encoder"]["blocks"] == [1, 1] and model.config["generator"]["style_dim"] == 8


def test_convert_aladin_and_facexlib_plumbing(fake_mappings, run_cli, tmp_path):
    torch.save({"enc_style.patch_embed.weight": torch.randn(16, 3, 16, 16)}, tmp_path / "aladin.pt")
    assert run_cli("convert", "aladin", tmp_path / "aladin.pt", "-o", tmp_path / "al").exit_code == 0
    model = load_model_folder(tmp_path / "al")
    assert list(model.networks["aladin"]) == ["a_enc_style_patch_embed_weight"]
    assert model.config["aladin"]["code_dim"] == 8

    state = {"module.body.conv1.weight": torch.randn(4, 3, 3, 3), "module.bbox.bias": torch.randn(4)}
    torch.save(state, tmp_path / "detection_Resnet50_Final.pth")
    r = run_cli("convert", "facexlib", tmp_path / "detection_Resnet50_Final.pth", "-o", tmp_path / "det")
    assert r.exit_code == 0, r.stderr
    det = load_model_folder(tmp_path / "det").networks["detector"]
    assert set(det) == {"body.conv1.weight", "bbox.bias"}  # DataParallel prefix removed
    assert torch.equal(det["bbox.bias"], state["module.bbox.bias"])


def test_registry_name_is_converted_on_first_use(interfacegan, tmp_path, monkeypatch):
    """`--weights interfacegan-age` finds the downloaded .pt and returns our converted folder."""
    from hypernst_cli.weights.registry import load_registry, url_download_path

    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    url = "https://example.org/age.pt"
    write_registry(tmp_path / "w.toml", [dict(name="interfacegan-age", kind="directions", url=url,
                                                filename="age.pt", converter="directions")], monkeypatch)
    dest = url_download_path(load_registry()["interfacegan-age"])
    dest.parent.mkdir(parents=True)
    dest.write_bytes((interfacegan / "age.pt").read_bytes())
    found = resolve_weights("interfacegan-age", "ffhq1024")
    assert found.origin == "registry" and found.path.is_dir()
    age = load_model_folder(found.path).networks["directions"]["age"]
    assert torch.equal(age, torch.load(interfacegan / "age.pt", weights_only=True))
    assert resolve_weights("interfacegan-age", "ffhq1024").path == found.path  # converted once
