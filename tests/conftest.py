"""Shared fixtures: real photos the repository carries (``portraits``), ../shared/data (only for
tests marked ``shared``: skips with a reason when absent), the tiny model and an in-process CLI
runner.

``--no-shared`` (or ``HYPERNST_NO_SHARED=1``, or ``HYPERNST_SHARED_DATA=/nonexistent``) runs the
suite as a fresh clone would: ../shared/data is not looked at, and the few tests marked ``shared``
are deselected and counted in the summary.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent

# The suite runs in two processes (pytest-xdist, `-n 2` in pyproject.toml) on a 2-core machine:
# one thread each (and in the CLI subprocesses they start), not two threads fighting for a core.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["OMP_NUM_THREADS"] = "1"
    os.environ["MKL_NUM_THREADS"] = "1"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--no-shared", action="store_true",
                     help="hide ../shared/data, as on a fresh clone (tests marked `shared` skip)")


_NO_SHARED = False


def pytest_configure(config: pytest.Config) -> None:
    global _NO_SHARED
    _NO_SHARED = bool(config.getoption("--no-shared")) or os.environ.get("HYPERNST_NO_SHARED") == "1"


def _shared_data_dir() -> Path | None:
    if _NO_SHARED:
        return None
    env = os.environ.get("HYPERNST_SHARED_DATA")
    return Path(env) if env else REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data (faces/, photos/, styles/, utkface/), for tests marked ``shared`` (which are
    deselected without it); skips any other test that asks for it when it is absent."""
    d = _shared_data_dir()
    if d is None:
        pytest.skip("needs ../shared/data (hidden by --no-shared)")
    if not (d / "faces").is_dir():
        pytest.skip(f"needs the shared data folder {d} (absent on a fresh clone without ../shared)")
    return d


def _shared_available() -> bool:
    d = _shared_data_dir()
    return d is not None and (d / "faces").is_dir()


_SHARED_COUNT = {"marked": 0, "deselected": 0}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``shared`` need ../shared/data: without it (a fresh clone, or --no-shared)
    they are deselected, and the count is printed at the end, not hidden among skips."""
    marked = [item for item in items if item.get_closest_marker("shared")]
    _SHARED_COUNT["marked"] = len(marked)
    if marked and not _shared_available():
        config.hook.pytest_deselected(items=marked)
        items[:] = [item for item in items if not item.get_closest_marker("shared")]
        _SHARED_COUNT["deselected"] = len(marked)


def pytest_sessionfinish(session: pytest.Session) -> None:
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # an xdist worker: its counts go to the controller's summary
        workeroutput["shared_count"] = dict(_SHARED_COUNT)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error) -> None:  # noqa: ANN001 (xdist's hook, on the controller)
    counts = getattr(node, "workeroutput", {}).get("shared_count")
    if counts:  # every worker collects the same items
        _SHARED_COUNT.update(counts)


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:  # noqa: ANN001
    marked, deselected = _SHARED_COUNT["marked"], _SHARED_COUNT["deselected"]
    where = _shared_data_dir()
    state = "hidden (--no-shared)" if where is None else (
        f"found at {where}" if _shared_available() else f"absent ({where})")
    terminalreporter.write_line(
        f"tests that need ../shared/data (marked `shared`): {marked}; ran {marked - deselected}, "
        f"deselected {deselected}; ../shared/data {state}"
    )


@pytest.fixture(scope="session")
def portraits(tmp_path_factory) -> Path:
    """Real photos in ../shared/data's layout (faces/, photos/, styles/, utkface/), derived from
    what the repository and scikit-image carry (tests/portraits.py): no ../shared needed."""
    from portraits import build_portraits

    return build_portraits(tmp_path_factory.mktemp("portraits"))


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


@pytest.fixture(scope="session")
def tiny_detail_model_dir(tiny_model_dir, tmp_path_factory) -> Path:
    """`tiny_model_dir` with the detail post-process on (strength 1, as a W+-only `compact`), so a
    test can see a step switch it off."""
    import json
    import shutil

    folder = tmp_path_factory.mktemp("models") / "tiny-detail"
    shutil.copytree(tiny_model_dir, folder)
    config = json.loads((folder / "config.json").read_text())
    config["detail"] = {**config.get("detail", {}), "strength": 1.0}
    (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    return folder


@pytest.fixture
def isolated_cache(tmp_path, monkeypatch) -> Path:
    """Point hypernst's cache (style codes) at a fresh folder."""
    cache = tmp_path / "hypernst-cache"
    monkeypatch.setenv("HYPERNST_CACHE", str(cache))
    return cache
