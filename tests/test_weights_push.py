"""`hypernst push`: the HfApi calls it makes and the model card it writes (fake HfApi)."""

from __future__ import annotations

import types

import pytest
import torch

from hypernst_cli.configs import get_config
from hypernst_cli.weights.checkpoint import save_model_folder


class FakeApi:
    instances: list[FakeApi] = []
    fail_with: Exception | None = None

    def __init__(self, endpoint=None, token=None) -> None:
        self.endpoint, self.token = endpoint, token
        self.calls: list[tuple[str, tuple, dict]] = []
        self.uploaded: dict[str, bytes] = {}
        FakeApi.instances.append(self)

    def create_repo(self, repo_id, **kwargs):
        self.calls.append(("create_repo", (repo_id,), kwargs))
        if FakeApi.fail_with is not None:
            raise FakeApi.fail_with
        return f"https://hub.example/{repo_id}"

    def create_branch(self, repo_id, **kwargs):
        self.calls.append(("create_branch", (repo_id,), kwargs))

    def upload_folder(self, **kwargs):
        self.calls.append(("upload_folder", (), kwargs))
        from pathlib import Path

        folder = Path(kwargs["folder_path"])
        self.uploaded = {p: (folder / p).read_bytes() for p in kwargs["allow_patterns"]}
        return types.SimpleNamespace(commit_url=f"https://hub.example/{kwargs['repo_id']}/commit/abc")


@pytest.fixture
def fake_api(monkeypatch):
    import huggingface_hub

    FakeApi.instances = []
    FakeApi.fail_with = None
    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    monkeypatch.setenv("HF_TOKEN", "write-token")
    return FakeApi


@pytest.fixture
def model_dir(tmp_path):
    nets = {"hypernet": {"head.weight": torch.randn(4, 4)}, "generator": {"w": torch.randn(2)}}
    return save_model_folder(
        tmp_path / "paper-run",
        nets,
        get_config("tiny").to_dict(),
        {"training": {"stage": "stylize", "iterations": 1200, "lambda2": 2.0}, "license": "cc-by-nc-4.0"},
        metrics={"lpips": {"alex": 0.412, "vgg": 0.533}, "sifid": 1.87, "seconds_per_image": 0.09},
    )


def test_push_creates_repo_uploads_and_writes_the_card(fake_api, model_dir, run_cli):
    r = run_cli("push", model_dir, "--repo-id", "me/hypernst-tiny", "--private", "--revision", "v1")
    assert r.exit_code == 0, r.stderr
    api = fake_api.instances[-1]
    assert api.token == "write-token"
    names = [c[0] for c in api.calls]
    assert names == ["create_repo", "create_branch", "upload_folder"]
    assert api.calls[0][1] == ("me/hypernst-tiny",) and api.calls[0][2]["private"] is True
    assert api.calls[1][2]["branch"] == "v1"
    upload = api.calls[2][2]
    assert upload["repo_id"] == "me/hypernst-tiny" and upload["revision"] == "v1"
    assert sorted(upload["allow_patterns"]) == ["README.md", "config.json", "metrics.json", "model.safetensors"]
    assert "https://hub.example/me/hypernst-tiny/commit/abc" in r.stdout

    card = api.uploaded["README.md"].decode()
    assert card.startswith("---\nlicense: cc-by-nc-4.0\nlibrary_name: hypernst\n")
    assert "# hypernst-tiny" in card
    assert '"resolution": 64' in card and '"style_dim": 64' in card  # the config
    assert "| iterations | 1200 |" in card and "| lambda2 | 2.0 |" in card  # the recipe
    assert "| lpips.alex | 0.412 |" in card and "| sifid | 1.87 |" in card  # the metrics
    assert "non-commercial" in card and "inherit those terms" in card
    assert "`generator` (1 tensors)" in card and "`hypernet` (1 tensors)" in card
    assert (model_dir / "README.md").read_text() == card


def test_push_keeps_an_existing_card_and_main_needs_no_branch(fake_api, model_dir, run_cli):
    (model_dir / "README.md").write_text("# my own card\n")
    r = run_cli("push", model_dir, "--repo-id", "me/m")
    assert r.exit_code == 0, r.stderr
    api = fake_api.instances[-1]
    assert [c[0] for c in api.calls] == ["create_repo", "upload_folder"]
    assert api.calls[0][2]["private"] is False and api.calls[1][2]["revision"] == "main"
    assert api.uploaded["README.md"] == b"# my own card\n"


def test_push_errors_are_exit_3(fake_api, model_dir, run_cli, tmp_path):
    import httpx2
    from huggingface_hub.errors import HfHubHTTPError

    request = httpx2.Request("POST", "https://hub.example/api/repos/create")
    fake_api.fail_with = HfHubHTTPError("403 Forbidden", response=httpx2.Response(403, request=request))
    r = run_cli("push", model_dir, "--repo-id", "me/m")
    assert r.exit_code == 3 and "HF_TOKEN" in r.stderr and r.stderr.count("\n") == 1

    r = run_cli("push", tmp_path / "nowhere", "--repo-id", "me/m")
    assert r.exit_code == 3 and "not a model folder" in r.stderr
    (tmp_path / "empty").mkdir()
    r = run_cli("push", tmp_path / "empty", "--repo-id", "me/m")
    assert r.exit_code == 3 and "model.safetensors" in r.stderr
