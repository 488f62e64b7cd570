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

from hypernst_cli.errors import (
    HypernstError,
    OutputError,
    disk_full_error,
    no_space_left,
    write_error_from,
)

TEMP_INFIX = ".tmp-"

# Every file a loader of this process has read: writes refuse to replace them.
_PROTECTED: set[str] = set()


def protect_input(path: str | Path) -> None:
    """Mark a file as an input of this run, so no output may overwrite it."""
    with contextlib.suppress(OSError):
        _PROTECTED.add(os.path.realpath(path))


def is_input(path: str | Path) -> bool:
    """Whether a loader of this process has read ``path`` (it must not be replaced or removed)."""
    return os.path.realpath(path) in _PROTECTED


def check_not_input(path: str | Path) -> None:
    if is_input(path):
        raise OutputError(
            f"{path}: refusing to overwrite an input file",
            hint="choose another output path with -o",
        )


def current_umask() -> int:
    """The process's umask, read without changing it (``os.umask`` can only be read by setting
    it, which would race with other threads creating files)."""
    with contextlib.suppress(OSError, ValueError):
        with open("/proc/self/status", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    mask = os.umask(0o022)  # no /proc (macOS): read it by setting it back at once
    os.umask(mask)
    return mask


def plain_file_mode() -> int:
    """The mode ``open(path, "w")`` would give a new file: 0666 less the umask."""
    return 0o666 & ~current_umask()


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temp path next to ``path``; on success it is renamed onto ``path``.

    Parent folders are created. The file gets the mode a plain ``open()`` would give it (mkstemp's
    temp files are 0600, which would hide every output from other users). On any exception the
    temp file is removed and ``path`` is untouched; a failure of the file system (disk full, no
    permission, read-only, name too long) becomes a ``WriteError`` naming ``path``.
    """
    dest = Path(path)
    check_not_input(dest)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise write_error_from(exc, dest.parent) or OutputError(
            f"{dest.parent}: cannot create folder ({exc.strerror})"
        ) from exc
    try:
        # Keep the real suffix last so libraries that infer format from the name still work.
        fd, tmp_name = tempfile.mkstemp(
            prefix=f".{dest.stem}{TEMP_INFIX}{_HOST}-{os.getpid()}-", suffix=dest.suffix,
            dir=dest.parent,
        )
    except OSError as exc:
        raise write_error_from(exc, dest) or exc
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        # after the write: some writers (safetensors) replace the file with one of their own
        with contextlib.suppress(OSError):  # some file systems (FAT, SMB) refuse modes
            os.chmod(tmp, plain_file_mode())
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, dest)
    except BaseException as exc:
        # decide before the temp file goes (removing it frees the space it took)
        full = not isinstance(exc, (OSError, HypernstError)) and isinstance(exc, Exception) \
            and no_space_left(dest.parent)
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(exc, Exception):
            error = write_error_from(exc, dest) or (disk_full_error(dest) if full else None)
            if error is not None:
                raise error from exc
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
