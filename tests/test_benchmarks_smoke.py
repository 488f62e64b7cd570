"""Smoke runs of the benchmark scripts (benchmarks/*.py), so they keep up with the library.

The benchmarks are run by hand and append to benchmarks/RESULTS.md; nothing else runs them, so an
API change in hypernst_cli broke them silently (``stylize_tensors(..., wplus=)``,
``refine_step``). Here:

- every script's calls into hypernst_cli are checked statically: each ``from hypernst_cli... import
  X`` must import, and each direct call of an imported function or class (``X(...)``,
  ``module.f(...)``, ``Class.method(...)``) must bind the number of positional arguments and the
  keyword names it passes (``inspect.signature(...).bind_partial``);
- every script that can run on the ``tiny`` config (or the tiny random model) in about a second
  runs its ``main()`` in-process, with tiny sizes and one repeat, on data derived from
  examples/ (no ../shared);
- the scripts that run the real CLI on the embedded model (batch_speed, thread_policy) run their
  ``main()`` with ``subprocess.run`` replaced by a check that the command line parses against the
  CLI (every command and option exists), not by a real run;
- benchmarks/heldout_eval.sh: every ``hypernst`` command and option it uses exists.

Nothing is appended to RESULTS.md: ``HYPERNST_BENCH_NO_WRITE=1`` (benchmarks/_results.py), and
each test checks the file is unchanged.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import types
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "benchmarks"
RESULTS = BENCH / "RESULTS.md"
EXAMPLES = REPO / "examples"
SCRIPTS = sorted(p for p in BENCH.glob("*.py") if not p.name.startswith("_"))

#: scripts whose main() runs here (tiny config or model, one repeat)
RUN_HERE = {"analogy_oracle", "cli_startup", "encoders_forward", "faces_speed", "generator_speed",
            "inference_precision", "models_forward", "offset_capacity", "palette_ceiling",
            "pipeline_speed", "style_codes", "train_speed"}
#: scripts whose main() runs with the CLI's subprocess replaced by a parse of its command line
RUN_WITH_CLI_PARSED = {"batch_speed", "thread_policy"}
#: scripts only checked statically, and why
STATIC_ONLY = {
    "eval_metrics": "builds LPIPS (AlexNet, VGG), SIFID (Inception) and dlib metrics: ~10 s",
}


# --- fixtures and helpers ----------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _bench_sandbox(monkeypatch, tmp_path):
    """No RESULTS.md writes, a private style-code cache, and the process state the scripts touch
    (environment, sys.path, torch's thread count) restored afterwards."""
    import torch

    monkeypatch.setenv("HYPERNST_BENCH_NO_WRITE", "1")
    monkeypatch.setenv("HYPERNST_CACHE", str(tmp_path / "hypernst-cache"))
    monkeypatch.setenv("HYPERNST_THREADS", "1")  # the scripts that follow hypernst's policy
    env, path, threads = dict(os.environ), list(sys.path), torch.get_num_threads()
    before = RESULTS.read_bytes() if RESULTS.exists() else None
    yield
    os.environ.clear()
    os.environ.update(env)
    sys.path[:] = path
    torch.set_num_threads(threads)
    after = RESULTS.read_bytes() if RESULTS.exists() else None
    assert after == before, "a benchmark smoke run wrote to benchmarks/RESULTS.md"


def _load(stem: str) -> types.ModuleType:
    """benchmarks/STEM.py as a fresh module (its sys.path inserts are undone by the sandbox)."""
    spec = importlib.util.spec_from_file_location(f"_bench_{stem}", BENCH / f"{stem}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(stem: str, monkeypatch, *argv: object, patch=None) -> object:
    """Run benchmarks/STEM.py's main() with ``argv``; ``patch(module)`` first, if given."""
    module = _load(stem)
    if patch is not None:
        patch(module)
    monkeypatch.setattr(sys, "argv", [f"{stem}.py", *map(str, argv)])
    return module.main()


def _jpeg(src: Path, dst: Path) -> Path:
    from PIL import Image

    dst.parent.mkdir(parents=True, exist_ok=True)
    Image.open(src).convert("RGB").save(dst, quality=90)
    return dst


@pytest.fixture
def bench_data(tmp_path) -> Path:
    """A small data folder in ../shared/data's layout: one photo, one style, the held-out faces
    of recipes/compact/holdout.txt (example faces under those names)."""
    data = tmp_path / "data"
    _jpeg(EXAMPLES / "content" / "face-1.png", data / "photos" / "face-1.jpg")
    (data / "styles").mkdir()
    shutil.copy(EXAMPLES / "styles" / "poster-portrait.png", data / "styles")
    (data / "faces").mkdir()
    holdout = (REPO / "recipes" / "compact" / "holdout.txt").read_text().splitlines()
    faces = [line.strip() for line in holdout if line.startswith("faces/")]
    for i, name in enumerate(faces):
        shutil.copy(EXAMPLES / "content" / f"face-{i % 3 + 1}.png", data / name)
    return data


# --- static: calls into hypernst_cli -----------------------------------------------------------


def _hypernst_bindings(tree: ast.AST) -> tuple[dict[str, object], list[str]]:
    """Names a script imports from hypernst_cli (anywhere in it) -> the objects; import errors."""
    names: dict[str, object] = {}
    errors: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "hypernst_cli":
            for alias in node.names:
                try:
                    module = importlib.import_module(node.module)
                    obj = getattr(module, alias.name, None)
                    if obj is None:  # a submodule not imported by its package
                        obj = importlib.import_module(f"{node.module}.{alias.name}")
                except Exception as exc:  # noqa: BLE001 (reported, not raised)
                    errors.append(f"line {node.lineno}: from {node.module} import {alias.name}: "
                                  f"{type(exc).__name__}: {exc}")
                    continue
                names[alias.asname or alias.name] = obj
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] != "hypernst_cli":
                    continue
                try:
                    module = importlib.import_module(alias.name)
                except Exception as exc:  # noqa: BLE001
                    errors.append(f"line {node.lineno}: import {alias.name}: {exc}")
                    continue
                if alias.asname:
                    names[alias.asname] = module
                else:
                    names["hypernst_cli"] = importlib.import_module("hypernst_cli")
    return names, errors


def _resolve(func: ast.expr, names: dict[str, object]) -> tuple[str, object] | None:
    """``X`` or ``X.a.b`` with X imported from hypernst_cli -> (its text, the object); None for
    anything else. A missing attribute raises AttributeError."""
    chain: list[str] = []
    while isinstance(func, ast.Attribute):
        chain.append(func.attr)
        func = func.value
    if not isinstance(func, ast.Name) or func.id not in names:
        return None
    obj = names[func.id]
    for attr in reversed(chain):
        obj = getattr(obj, attr)
    return ".".join([func.id, *reversed(chain)]), obj


def _call_errors(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names, errors = _hypernst_bindings(tree)
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        try:
            found = _resolve(node.func, names)
        except AttributeError as exc:
            errors.append(f"line {node.lineno}: {ast.unparse(node.func)}: {exc}")
            continue
        if found is None or not callable(found[1]):
            continue
        if any(isinstance(a, ast.Starred) for a in node.args) or \
                any(k.arg is None for k in node.keywords):
            continue  # *args / **kwargs: not checkable statically
        try:
            signature = inspect.signature(found[1])
        except (TypeError, ValueError):
            continue
        try:
            signature.bind_partial(*range(len(node.args)), **{k.arg: None for k in node.keywords})
        except TypeError as exc:
            errors.append(f"line {node.lineno}: {found[0]}{signature}: {exc}")
    return errors


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_calls_into_hypernst_cli_match_the_library(script):
    errors = _call_errors(script)
    assert not errors, f"benchmarks/{script.name} no longer matches hypernst_cli:\n" + \
        "\n".join(errors)


def test_every_benchmark_is_smoke_tested():
    """A new script must be added to one of the lists above (and run here if it can be)."""
    stems = {p.stem for p in SCRIPTS}
    covered = RUN_HERE | RUN_WITH_CLI_PARSED | set(STATIC_ONLY)
    assert stems == covered, f"not covered: {sorted(stems - covered)}; gone: {sorted(covered - stems)}"


def test_eval_metrics_metrics_have_what_the_script_uses():
    """eval_metrics.py is only checked statically: its metrics still have the methods it calls."""
    from hypernst_cli import eval as ev

    for name in ("LPIPSMetric", "SIFIDMetric", "IdentityMetric", "ColourMetric",
                 "FaceDetectionMetric"):
        cls = getattr(ev, name)
        for attr in ("to", "prepare", "title", "__call__"):
            assert hasattr(cls, attr) or attr in getattr(cls, "__dataclass_fields__", {}), \
                f"{name}.{attr}"


# --- runs on the tiny config / tiny model -------------------------------------------------------


def test_inference_precision_runs(monkeypatch):
    _run("inference_precision", monkeypatch, "--configs", "tiny", "--batches", "1", "--runs", "1",
         "--threads", "1", "--precisions", "fp32", "--no-record")


def test_models_forward_runs(monkeypatch):
    _run("models_forward", monkeypatch, "--configs", "tiny", "--runs", "1", "--threads", "1")


def test_encoders_forward_runs(monkeypatch):
    _run("encoders_forward", monkeypatch, "--configs", "tiny", "--runs", "1", "--threads", "1",
         "--no-record")


def test_generator_speed_runs(monkeypatch):
    """The "before" generator comes from git at a commit; here the current module stands in for
    it (what is smoke-tested is the timing loop and the generator API it calls)."""
    from hypernst_cli.models import stylegan2

    _run("generator_speed", monkeypatch, "--configs", "tiny", "--batches", "1", "--runs", "1",
         "--threads", "1", "--no-record",
         patch=lambda m: monkeypatch.setattr(m, "_module_at", lambda commit: stylegan2))


def test_train_speed_runs(monkeypatch):
    """One stage (the script's loop is the same for every stage; the stages are the library's,
    tested in test_train_*.py)."""
    _run("train_speed", monkeypatch, "--config", "tiny", "--device", "cpu",
         "--stages", "reconstruct", "--amp", "none", "--checkpointing", "off",
         "--batch", "1", "--steps", "1", "--warmup", "0", "--threads", "1", "--no-save")


def test_cli_startup_runs(monkeypatch):
    _run("cli_startup", monkeypatch, "--runs", "1")


def test_style_codes_runs(monkeypatch):
    _run("style_codes", monkeypatch, "--style", EXAMPLES / "styles" / "poster-portrait.png",
         "--configs", "tiny")


def test_faces_speed_runs(monkeypatch):
    _run("faces_speed", monkeypatch, "--runs", "1", "--size", "64",
         "--photo", EXAMPLES / "content" / "face-1.png")


def test_pipeline_speed_runs(monkeypatch, bench_data):
    monkeypatch.setenv("HYPERNST_SHARED_DATA", str(bench_data))
    _run("pipeline_speed", monkeypatch, "--config", "tiny", "--runs", "1", "--batches", "1",
         "--threads", "1", "--no-record")


def test_palette_ceiling_runs(monkeypatch, tiny_model_dir):
    _run("palette_ceiling", monkeypatch, "--weights", tiny_model_dir,
         "--faces", EXAMPLES / "content" / "face-1.png", EXAMPLES / "content" / "face-2.png",
         "--families", "engraving", "--draws", "1", "--limit", "1")


def test_analogy_oracle_runs(monkeypatch, tiny_model_dir):
    _run("analogy_oracle", monkeypatch, "--weights", tiny_model_dir,
         "--faces", EXAMPLES / "content" / "face-1.png", EXAMPLES / "content" / "face-2.png",
         "--families", "pastel", "--draws", "1", "--limit", "1")


def test_offset_capacity_runs(monkeypatch, tiny_model_dir, bench_data):
    _run("offset_capacity", monkeypatch, "--data", bench_data, "--weights", tiny_model_dir,
         "--families", "engraving", "--steps", "1", "--pairs", "1")


# --- the scripts that run the real CLI: their command lines must parse --------------------------


def _cli_root():
    import typer.main

    from hypernst_cli.cli.app import app

    return typer.main.get_command(app)


def _parse_cli(argv: list[str]) -> str:
    """Parse ``hypernst ARGV`` as the CLI would (click), without running it; returns the command
    name. Raises click's usage errors for an unknown command or option."""
    root = _cli_root()
    ctx = root.make_context("hypernst", list(argv))
    protected = getattr(ctx, "_protected_args", None)  # click >= 8.2; protected_args before
    rest = [*(protected if protected is not None else ctx.protected_args), *ctx.args]
    name, cmd, args = root.resolve_command(ctx, rest)
    cmd.make_context(name, args, parent=ctx)
    return name


class _FakeSubprocess:
    """Stands in for a script's ``subprocess`` module: checks each ``python -m hypernst_cli``
    command line against the CLI and answers as a successful run (``--json``: one line per
    input file with its timings)."""

    def __init__(self) -> None:
        self.commands: list[list[str]] = []

    def run(self, cmd, **kwargs):  # noqa: ANN001, ANN003
        cmd = [str(c) for c in cmd]
        assert cmd[:3] == [sys.executable, "-m", "hypernst_cli"], cmd
        name = _parse_cli(cmd[3:])
        self.commands.append(cmd)
        stdout = ""
        if "--json" in cmd:
            inputs = Path(cmd[cmd.index(name) + 1])
            files = sorted(inputs.iterdir()) if inputs.is_dir() else [inputs]
            stdout = "".join(json.dumps({"input": str(f), "status": "ok",
                                         "timings": {"total": 0.5}}) + "\n" for f in files)
            stdout += json.dumps({"summary": {"ok": len(files)}}) + "\n"
        if not kwargs.get("text"):
            stdout = stdout.encode()
        return subprocess.CompletedProcess(cmd, 0, stdout=stdout,
                                           stderr="" if kwargs.get("text") else b"")


def test_batch_speed_command_lines_parse(monkeypatch, bench_data, tiny_model_dir):
    monkeypatch.setenv("HYPERNST_SHARED_DATA", str(bench_data))
    fake = _FakeSubprocess()
    code = _run("batch_speed", monkeypatch, "--photos", "2", "--threads", "1",
                "--weights", tiny_model_dir, "--no-record",
                patch=lambda m: monkeypatch.setattr(m, "subprocess", fake))
    assert code == 0
    assert len(fake.commands) == 3 and all("stylize" in c for c in fake.commands)


def test_thread_policy_command_lines_parse(monkeypatch):
    fake = _FakeSubprocess()
    _run("thread_policy", monkeypatch, "--runs", "1", "--no-record",
         patch=lambda m: monkeypatch.setattr(m, "subprocess", fake))
    assert fake.commands and all("stylize" in c for c in fake.commands)


# --- benchmarks/heldout_eval.sh -----------------------------------------------------------------


def _hypernst_invocations(script: str) -> list[list[str]]:
    """The ``$HYPERNST ...`` command lines of a shell script (continuations joined), as argv
    with placeholders: ``$VAR`` words become ``x``, a plain array expansion one ``x``, and an
    array built by ``mapfile ... < <(repeat --flag ...; ...)`` its flags, each with an ``x``."""
    text = script.replace("\\\n", " ")
    built = {name: [w for flag in re.findall(r"\brepeat (--[\w-]+)", body) for w in (flag, "x")]
             for name, body in re.findall(r"mapfile -d '' (\w+) < <\((.*)\)", text)}
    argvs = []
    for line in (raw.strip() for raw in text.splitlines()):
        if not line.startswith("$HYPERNST "):
            continue
        argv = []
        for word in shlex.split(line, comments=True)[1:]:
            array = re.fullmatch(r"\$\{(\w+)\[@\]\}", word)
            if array:
                argv += built.get(array.group(1), ["x"])
            else:
                argv.append("x" if word.startswith("$") else word)
        argvs.append(argv)
    return argvs


def test_heldout_eval_uses_existing_commands_and_options():
    """Every hypernst command line of heldout_eval.sh parses (commands, options, their values),
    with placeholders for its files; the script itself is not run (about an hour)."""
    script = (BENCH / "heldout_eval.sh").read_text()
    if shutil.which("bash"):
        subprocess.run(["bash", "-n", str(BENCH / "heldout_eval.sh")], check=True)
    invocations = _hypernst_invocations(script)
    assert sum("--content" in argv for argv in invocations) == 1  # the arrays were expanded
    commands = [_parse_cli(argv) for argv in invocations]
    assert commands == ["align", "evaluate", "evaluate", "evaluate"], invocations
    holdout = REPO / "recipes" / "compact" / "holdout.txt"
    kinds = {line.split("/")[0] for line in holdout.read_text().splitlines()
             if line and not line.startswith("#")}
    assert {"faces", "photos", "styles"} <= kinds
