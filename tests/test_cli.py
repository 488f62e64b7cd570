"""The CLI shell: help without torch, info, and the error model (one line, exit codes)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from PIL import Image

from hypernst_cli.cli.app import app


def _commands() -> list[str]:
    import typer.main

    return sorted(typer.main.get_command(app).commands)


def test_help_lists_commands(run_cli):
    r = run_cli("--help")
    assert r.exit_code == 0
    for name in _commands():
        assert name in r.stdout


def _all_help_invocations() -> list[list[str]]:
    """`--help` of the app, of every command, and of every sub-command of a group."""
    import typer.main

    root = typer.main.get_command(app)
    argvs = [["--help"]]
    for name, cmd in sorted(root.commands.items()):
        argvs.append([name, "--help"])
        for sub in sorted(getattr(cmd, "commands", {}) or {}):
            argvs.append([name, sub, "--help"])
    return argvs


@pytest.mark.parametrize("argv", _all_help_invocations(), ids=lambda a: " ".join(a))
def test_help_does_not_import_torch(argv):
    code = (
        "import sys\n"
        "from hypernst_cli.cli.app import main\n"
        "try:\n"
        f"    main({argv!r})\n"
        "except SystemExit as e:\n"
        "    assert e.code == 0, e.code\n"
        "heavy = [m for m in ('torch', 'numpy', 'PIL', 'cv2', 'dlib') if m in sys.modules]\n"
        "print('HEAVY=' + ','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "HEAVY=\n" in out.stdout, out.stdout


def test_every_command_help_works(run_cli):
    for name in _commands():
        r = run_cli(name, "--help")
        assert r.exit_code == 0, (name, r.stderr)


def test_every_weights_option_has_the_short_flag():
    """`hypernst codes STYLES -w X` said "No such option: -w" while every other command that loads
    a model took -w/--weights."""
    import typer.main

    root = typer.main.get_command(app)
    commands = []
    for name, cmd in root.commands.items():
        commands += [(f"{name} {sub}", c) for sub, c in (getattr(cmd, "commands", {}) or {}).items()]
        commands.append((name, cmd))
    with_weights = {name: p for name, cmd in commands for p in cmd.params if "--weights" in p.opts}
    assert "codes" in with_weights and "stylize" in with_weights
    for name, param in with_weights.items():
        assert "-w" in param.opts, name


def test_info_and_json(run_cli):
    r = run_cli("--device", "cpu", "info")
    assert r.exit_code == 0
    assert "torch" in r.stdout and "device: cpu" in r.stdout
    r = run_cli("--device", "cpu", "info", "--json")
    data = json.loads(r.stdout)
    assert data["device"].startswith("cpu")
    assert {c["name"] for c in data["configs"]} >= {"tiny", "compact", "paper"}
    assert "cuda" in data["environment"]


def test_unavailable_cuda_is_exit_4(run_cli, monkeypatch, tmp_path):
    """A command that would run on the device stops (exit 4, one line), never falls back."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    style = tmp_path / "s.png"
    Image.new("RGB", (32, 32)).save(style)
    r = run_cli("--device", "cuda", "codes", style, "-w", tmp_path / "no-model")
    assert r.exit_code == 4, r.stderr
    assert r.stderr.strip().count("\n") == 0 and "CUDA is not available" in r.stderr


def test_info_reports_a_device_that_is_not_there(run_cli, monkeypatch):
    """`hypernst --device cuda info` without CUDA exited 4, though `info` is the command a user
    runs to learn what this machine has: it says the device is unavailable, why, what to do and
    what --device auto would use, and exits 0."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    r = run_cli("--device", "cuda", "info")
    assert r.exit_code == 0, r.stderr
    line = next(x for x in r.stdout.splitlines() if x.startswith("device:"))
    assert "unavailable" in line and "CUDA is not available" in line, line
    assert "--device cpu or auto" in line and "--device auto would use cpu (" in line, line
    assert "CUDA: not available" in r.stdout
    r = run_cli("--device", "cuda", "info", "--json")
    assert r.exit_code == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["device"] is None and data["device_spec"] == "cuda"
    assert "CUDA is not available" in data["device_error"]
    assert data["device_auto"].startswith("cpu (")


def test_bad_device_spec_is_exit_2(run_cli):
    r = run_cli("--device", "gpu7", "info")
    assert r.exit_code == 2 and "invalid --device" in r.stderr


def test_region_spec_and_strength_are_checked_by_the_cli(run_cli, tmp_path):
    """--region and --strength are the CLI's to check (cli/options.py, typer's range): a bad
    value is a usage error before any model loads."""
    from hypernst_cli.cli.options import parse_region_spec
    from hypernst_cli.errors import UsageError

    assert parse_region_spec("hair=a.png, face=b.png") == {"hair": "a.png", "face": "b.png"}
    assert parse_region_spec("Background=c.png,") == {"background": "c.png"}
    for bad, message in (("beard=x.png", "unknown region 'beard'"), ("hair", "invalid region spec"),
                         (" , ", "empty region spec")):
        with pytest.raises(UsageError, match=message):
            parse_region_spec(bad)
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    for p in (a, b):
        Image.new("RGB", (8, 8)).save(p)
    r = run_cli("stylize", a, b, "-o", tmp_path / "out.png", "--strength", "1.5")
    assert r.exit_code == 2 and "--strength" in r.stderr
    r = run_cli("stylize", a, b, "-o", tmp_path / "out.png", "--region", "beard=a.png")
    assert r.exit_code == 2 and "unknown region 'beard'" in r.stderr


def _bad_files(tmp_path):
    import io

    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    text = tmp_path / "text.jpg"
    text.write_text("hello")
    buf = io.BytesIO()
    Image.new("RGB", (32, 32), (9, 9, 9)).save(buf, "PNG")
    cut = tmp_path / "cut.png"
    cut.write_bytes(buf.getvalue()[:40])
    big = tmp_path / "big.png"
    Image.new("RGB", (40, 40)).save(big)
    return [empty, text, cut, big]


def test_bad_inputs_give_one_line_and_exit_2(run_cli, tmp_path, monkeypatch):
    monkeypatch.setenv("HYPERNST_MAX_PIXELS", "1000")
    for path in _bad_files(tmp_path):
        r = run_cli("check", path)
        assert r.exit_code == 2, (path, r.stderr)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
        assert path.name in lines[0]
        assert "Traceback" not in r.stderr


def test_batch_with_some_bad_files_is_exit_1(run_cli, tmp_path):
    good = tmp_path / "good.png"
    Image.new("RGB", (8, 8)).save(good)
    (tmp_path / "bad.png").write_bytes(b"nope")
    r = run_cli("check", tmp_path, "--json")
    assert r.exit_code == 1
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert {(row["input"].split("/")[-1], row["ok"]) for row in rows} == {
        ("good.png", True),
        ("bad.png", False),
    }


def test_debug_shows_traceback_in_a_real_process(tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_text("x")
    plain = subprocess.run(
        [sys.executable, "-m", "hypernst_cli", "check", str(bad)], capture_output=True, text=True
    )
    assert plain.returncode == 2 and "Traceback" not in plain.stderr
    debug = subprocess.run(
        [sys.executable, "-m", "hypernst_cli", "--debug", "check", str(bad)],
        capture_output=True,
        text=True,
    )
    assert debug.returncode == 2 and "Traceback" in debug.stderr


def test_real_photos_are_readable(run_cli, portraits):
    r = run_cli("check", portraits / "photos")
    assert r.exit_code == 0
    assert r.stdout.count("ok ") == 3


def test_info_reports_cuda_devices_when_present(run_cli, monkeypatch):
    """The CUDA branch of `info` (this machine has no GPU: torch's CUDA queries are faked)."""
    import torch

    class Props:
        name = "Fake GPU 80GB"
        total_memory = 80 * 2**30

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=0: "Fake GPU 80GB")
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda d: Props())
    r = run_cli("--device", "cuda:0", "info", "--json")
    assert r.exit_code == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["environment"]["cuda"]["available"] is True
    assert data["environment"]["cuda"]["devices"] == ["Fake GPU 80GB"]
    assert data["device"].startswith("cuda:0 (Fake GPU 80GB")
    r = run_cli("--device", "cuda:1", "info")  # reported, not an error (see above)
    assert r.exit_code == 0 and "only 1 CUDA device" in r.stdout, r.stderr
    assert "--device auto would use cuda:0 (Fake GPU 80GB" in r.stdout
    r = run_cli("info")
    assert "CUDA" in r.stdout and "Fake GPU" in r.stdout
