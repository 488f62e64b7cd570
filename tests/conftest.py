"""Shared fixtures: ../shared/data (skips with a reason when absent) and an in-process CLI runner."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


def _shared_data_dir() -> Path:
    env = os.environ.get("HYPERNST_SHARED_DATA")
    return Path(env) if env else REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data (faces/, photos/, styles/, utkface/); skips the test when it is absent."""
    d = _shared_data_dir()
    if not (d / "faces").is_dir():
        pytest.skip(f"needs the shared data folder {d} (absent on a fresh clone without ../shared)")
    return d


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str


@pytest.fixture
def run_cli(capsys):
    """Run `hypernst ARGS...` in-process; returns exit code, stdout and stderr."""
    from hypernst_cli.cli.app import main

    def run(*args: str) -> CliResult:
        capsys.readouterr()
        with pytest.raises(SystemExit) as exc:
            main([str(a) for a in args])
        out = capsys.readouterr()
        code = exc.value.code
        return CliResult(code if isinstance(code, int) else 1, out.out, out.err)

    return run


@pytest.fixture
def python_exe() -> str:
    return sys.executable


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A complete `tiny` model folder with random weights (what unit tests run on)."""
    from hypernst_cli.configs import get_config
    from hypernst_cli.pipeline.models import INFERENCE_PARTS, init_networks, save_networks

    import torch

    cfg = get_config("tiny")
    folder = tmp_path_factory.mktemp("models") / "tiny-random"
    networks = init_networks(cfg, INFERENCE_PARTS, seed=0)
    # The hyper-network's output layers start at zero (an untrained one changes nothing); give
    # them small random weights so tests see style codes actually steer the generator.
    with torch.no_grad():
        for name, param in networks["hypernet"].named_parameters():
            if not param.any():
                param.normal_(0.0, 0.05 if name.endswith("weight") else 0.01)
    save_networks(folder, cfg, networks, note="random weights for tests")
    return folder


@pytest.fixture
def isolated_cache(tmp_path, monkeypatch) -> Path:
    """Point hypernst's cache (style codes) at a fresh folder."""
    cache = tmp_path / "hypernst-cache"
    monkeypatch.setenv("HYPERNST_CACHE", str(cache))
    return cache
