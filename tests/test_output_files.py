"""Files other users can read, and writes the machine refuses.

Every file hypernst writes gets the mode a plain ``open()`` gives (0666 less the umask), though it
is written to a temp file first. A write the file system refuses (disk full, no permission,
read-only, name too long) is one line naming the file, the cause and what to do, exit 74, with no
temp or partial file left; a batch stops at it and still prints its summary.
"""

from __future__ import annotations

import errno
import json
import os
import stat
import tempfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hypernst_cli.errors import EXIT_WRITE, WriteError, write_error_from
from hypernst_cli.io import atomic_write_text, load_image, save_image
from hypernst_cli.io.atomic import atomic_write_with


@pytest.fixture
def umask():
    """Set the process umask for one test (restored after it)."""
    old = os.umask(0o022)
    yield lambda mask: os.umask(mask)
    os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


def test_atomic_writes_get_the_mode_of_a_plain_open(tmp_path, umask):
    for mask in (0o022, 0o077, 0o002, 0o027):
        umask(mask)
        text = atomic_write_text(tmp_path / f"{mask:o}.json", "{}\n")
        image = save_image(np.zeros((4, 4, 3), np.uint8), tmp_path / f"{mask:o}.png")
        with open(tmp_path / f"{mask:o}.plain", "w"):
            pass
        expected = mode(tmp_path / f"{mask:o}.plain")
        assert expected == 0o666 & ~mask
        assert mode(text) == expected and mode(image) == expected, oct(mask)


def test_every_command_writes_files_others_can_read(run_cli, portraits, tiny_model_dir,
                                                     isolated_cache, tmp_path, umask):
    """umask 022: stylize (one output, a batch), align, segment, invert, evaluate and weights
    export all write 0644 files (the style-code cache too)."""
    umask(0o022)
    face, face2 = portraits / "faces" / "astronaut.png", portraits / "faces" / "face-2.png"
    style = portraits / "styles" / "poster-portrait.png"
    out = tmp_path / "outputs"
    model = ("-w", tiny_model_dir)
    commands = [
        ("--device", "cpu", "stylize", face, style, "-o", out / "one.png", *model),
        ("--device", "cpu", "stylize", face, face2, "-s", style, "-o", out / "batch", *model),
        ("align", face, face2, "-o", out / "align", "--size", "64", "--contact-sheet"),
        ("segment", face, "-o", out / "segment", "--size", "64"),
        ("--device", "cpu", "invert", face, "-o", out / "invert", *model),
        ("--device", "cpu", "evaluate", "--content", face, "--style", style, "-o",
         out / "evaluate", "--no-region-colour", *model),
        ("weights", "export", tiny_model_dir, "-o", out / "export"),
    ]
    for args in commands:
        r = run_cli("--quiet", *args)
        assert r.exit_code == 0, (args, r.stderr)
    for folder in ("batch", "align", "segment", "invert", "evaluate", "export"):
        assert files_under(out / folder), folder
    written = files_under(out) + files_under(isolated_cache)
    assert any(p.suffix == ".safetensors" for p in files_under(isolated_cache))
    assert {str(p.relative_to(tmp_path)): oct(mode(p)) for p in written if mode(p) != 0o644} == {}


# --- writes the machine refuses ------------------------------------------------------------------


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def test_a_full_disk_stops_a_batch_keeping_its_summary(run_cli, portraits, tiny_model_dir,
                                                        isolated_cache, tmp_path, monkeypatch):
    """The second output hits ENOSPC half-way: exit 74, one error line naming that file, the
    JSON summary says one was written and one not run, and no temp or partial file is left."""
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("astronaut.png", "face-2.png", "face-3.png"):
        (folder / name).write_bytes((portraits / "faces" / name).read_bytes())
    style = portraits / "styles" / "poster-portrait.png"
    out = tmp_path / "out"
    original = Image.Image.save
    calls: list[str] = []

    def disk_fills_up(self, fp, *args, **kwargs):
        if str(fp).startswith(str(out)):
            calls.append(str(fp))
            if len(calls) == 2:  # half a file lands, then the disk is full
                Path(fp).write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 100)
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return original(self, fp, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "save", disk_fills_up)
    r = run_cli("--device", "cpu", "stylize", folder, style, "-o", out, "-w", tiny_model_dir,
                "--json")
    assert r.exit_code == EXIT_WRITE == 74, r.stderr
    errors = _error_lines(r.stderr)
    assert len(errors) == 1 and "Traceback" not in r.stderr, r.stderr
    assert "face-2__poster-portrait.png" in errors[0] and "no space left" in errors[0]
    assert "free some space" in errors[0]
    lines = [json.loads(line) for line in r.stdout.splitlines()]
    summary = lines[-1]["summary"]
    assert (summary["ok"], summary["failed"], summary["not_run"], summary["total"]) == (1, 1, 1, 3)
    assert "no space left" in summary["stopped"]
    assert [row["status"] for row in lines[:-1]] == ["ok", "failed"]
    assert [p.name for p in out.iterdir()] == ["astronaut__poster-portrait.png"]  # nothing else
    assert load_image(out / "astronaut__poster-portrait.png").shape == (64, 64, 3)
    # run again (text mode): the finished output is skipped, the next one written, and the disk
    # fills up on the last; the table says so, then the one error line
    calls.clear()
    r = run_cli("--device", "cpu", "stylize", folder, style, "-o", out, "-w", tiny_model_dir)
    assert r.exit_code == 74 and "stopped after" in r.stderr, r.stderr
    errors = _error_lines(r.stderr)
    assert len(errors) == 1 and "face-3__poster-portrait.png" in errors[0]
    assert sorted(p.name for p in out.iterdir()) == ["astronaut__poster-portrait.png",
                                                     "face-2__poster-portrait.png"]


@pytest.mark.parametrize("code,cause,hint", [
    (errno.ENOSPC, "no space left on the device", "free some space"),
    (errno.EACCES, "permission denied", "write to a folder you may write to"),
    (errno.EPERM, "operation not permitted", "write to a folder you may write to"),
    (errno.EROFS, "read-only file system", "write to a writable disk"),
])
def test_refused_writes_are_one_line_and_exit_74(code, cause, hint, run_cli, portraits,
                                                  tmp_path, monkeypatch):
    """Simulated (no root needed): the temp file cannot be created."""

    def refuse(*args, **kwargs):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    dest = tmp_path / "out" / "aligned.png"
    r = run_cli("align", portraits / "faces" / "astronaut.png", "-o", tmp_path / "out",
                "--size", "32")
    assert r.exit_code == 74, r.stderr
    errors = _error_lines(r.stderr)
    assert len(errors) == 1 and "internal error" not in errors[0], r.stderr
    assert str(dest.parent) in errors[0] and cause in errors[0] and hint in errors[0]
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_a_file_name_too_long_is_exit_74(run_cli, portraits, tiny_model_dir, isolated_cache,
                                         tmp_path):
    """A real ENAMETOOLONG: a 300-character file name."""
    dest = tmp_path / ("x" * 300 + ".png")
    r = run_cli("--device", "cpu", "stylize", portraits / "faces" / "astronaut.png",
                portraits / "styles" / "ink.png", "-o", dest, "-w", tiny_model_dir)
    assert r.exit_code == 74, r.stderr
    errors = _error_lines(r.stderr)
    assert len(errors) == 1 and "file name too long" in errors[0] and "shorter" in errors[0]
    assert list(tmp_path.glob("*.png")) == []


def test_a_library_error_on_a_full_disk_is_a_write_error(tmp_path, monkeypatch):
    """Libraries (safetensors) report ENOSPC in their own exception types: a failed write on a
    file system with no space left is still a full disk; otherwise the error is not hidden."""
    from hypernst_cli.io import atomic as atomic_module

    def half_then_fail(tmp: Path) -> None:
        tmp.write_bytes(b"partial")
        raise RuntimeError("I/O error: No space left on device (os error 28)")

    monkeypatch.setattr(atomic_module, "no_space_left", lambda folder: True)
    with pytest.raises(WriteError, match="no space left"):
        atomic_write_with(tmp_path / "codes.safetensors", half_then_fail)
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setattr(atomic_module, "no_space_left", lambda folder: False)
    with pytest.raises(RuntimeError):
        atomic_write_with(tmp_path / "codes.safetensors", half_then_fail)
    assert list(tmp_path.iterdir()) == []


def test_environment_errors_are_recognised_through_a_cause_chain():
    try:
        try:
            raise OSError(errno.EROFS, "Read-only file system", "/mnt/ro/x.png")
        except OSError as exc:
            raise RuntimeError("save failed") from exc
    except RuntimeError as wrapped:
        error = write_error_from(wrapped)
    assert isinstance(error, WriteError) and error.exit_code == 74
    assert error.one_line() == ("/mnt/ro/x.png: cannot write: read-only file system "
                                "(write to a writable disk)")
    assert write_error_from(OSError(errno.EIO, "I/O error")) is None  # a failing disk: not ours
    assert write_error_from(ValueError("x")) is None


def test_an_environment_error_outside_the_writer_is_not_an_internal_error(monkeypatch, capsys):
    from hypernst_cli.cli import app as app_module

    def fails(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", "/srv/out/log.txt")

    monkeypatch.setattr(app_module, "app", fails)
    with pytest.raises(SystemExit) as exc:
        app_module.main(["info"])
    err = capsys.readouterr().err
    assert exc.value.code == 74 and "internal error" not in err
    assert "/srv/out/log.txt: cannot write: permission denied" in err
