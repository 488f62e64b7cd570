"""Atomic file writes: write to a temp file in the destination folder, then rename.

A crash (or SIGKILL) mid-write leaves either the old file or nothing, never half a file. Temp files
are named ``.STEM.tmp-HOST-PID-RANDOMSUFFIX`` so a later run can sweep the leftovers of dead
writers without touching files that a concurrent job (another shard) is still writing.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from hypernst_cli.errors import OutputError

TEMP_INFIX = ".tmp-"

# Every file a loader of this process has read: writes refuse to replace them.
_PROTECTED: set[str] = set()


def protect_input(path: str | Path) -> None:
    """Mark a file as an input of this run, so no output may overwrite it."""
    with contextlib.suppress(OSError):
        _PROTECTED.add(os.path.realpath(path))


def check_not_input(path: str | Path) -> None:
    real = os.path.realpath(path)
    if real in _PROTECTED:
        raise OutputError(
            f"{path}: refusing to overwrite an input file",
            hint="choose another output path with -o",
        )


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temp path next to ``path``; on success it is renamed onto ``path``.

    Parent folders are created. On any exception the temp file is removed and ``path`` is
    untouched.
    """
    dest = Path(path)
    check_not_input(dest)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{dest.parent}: cannot create folder ({exc.strerror})") from exc
    # Keep the real suffix last so libraries that infer format from the name still work.
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{dest.stem}{TEMP_INFIX}{_HOST}-{os.getpid()}-", suffix=dest.suffix,
        dir=dest.parent,
    )
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_with(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Run ``write(tmp_path)`` and move the result onto ``path`` atomically."""
    with atomic_path(path) as tmp:
        write(tmp)
    return Path(path)


_HOST = re.sub(r"[^A-Za-z0-9_.]", "_", socket.gethostname())[:40] or "host"
_OWNER = re.compile(re.escape(TEMP_INFIX) + r"(?P<host>[A-Za-z0-9_.]+)-(?P<pid>\d+)-")
#: temp files of other machines (shared file systems) are swept only when older than this
FOREIGN_TEMP_AGE_S = 3600.0


def _writer_alive(host: str, pid: int) -> bool:
    if host != _HOST:
        return True  # cannot tell: decided by age
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_temp_files(folder: str | Path) -> int:
    """Remove temp files left in ``folder`` (recursively) by writers that are gone; returns count.

    A temp file of a live process on this machine (a concurrent shard) is left alone; one from
    another machine is removed only when older than ``FOREIGN_TEMP_AGE_S``.
    """
    count = 0
    root = Path(folder)
    if not root.is_dir():
        return 0
    now = time.time()
    for p in root.rglob(f".*{TEMP_INFIX}*"):
        m = _OWNER.search(p.name)
        try:
            if m and _writer_alive(m["host"], int(m["pid"])):
                if m["host"] == _HOST or now - p.stat().st_mtime < FOREIGN_TEMP_AGE_S:
                    continue
            p.unlink()
            count += 1
        except OSError:
            pass
    return count
