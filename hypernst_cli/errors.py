"""The one error model: every expected failure is a ``HypernstError`` with an exit code.

The CLI prints ``error: <message>`` (and the hint, if any) on one line to stderr and exits with
``exit_code``; the traceback is shown only with ``--debug``.

Exit codes (documented in the README):

====  ==================================================================
0     success
1     a batch finished, but some items failed (they are reported)
2     bad usage or bad input (unreadable image, no face, bad option)
3     missing or invalid model weights (not found, hash mismatch, offline)
4     out of memory, or the requested device is unavailable
74    an output cannot be written: disk full, permission denied, read-only file system, name too
      long (the machine's environment, not the input; like sysexits' EX_IOERR)
70    internal error (a bug: please report it with the ``--debug`` output)
====  ==================================================================
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

EXIT_OK = 0
EXIT_PARTIAL = 1
EXIT_INPUT = 2
EXIT_WEIGHTS = 3
EXIT_DEVICE = 4
EXIT_WRITE = 74
EXIT_INTERNAL = 70


class HypernstError(Exception):
    """Base of all expected errors. ``hint`` says what the user can do about it."""

    exit_code: int = EXIT_INPUT

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def one_line(self) -> str:
        text = self.message.rstrip(".")
        if self.hint:
            text += f" ({self.hint.rstrip('.')})"
        return " ".join(text.split())  # one line whatever the message holds


# --- 2: usage and input -------------------------------------------------------------------------


class UsageError(HypernstError):
    """An option or argument is invalid."""


class InputError(HypernstError):
    """An input file or folder cannot be used."""

    def __init__(self, path: str | Path, reason: str, *, hint: str | None = None) -> None:
        self.path = Path(path)
        super().__init__(f"{path}: {reason}", hint=hint)
        self.reason = reason


class ImageReadError(InputError):
    """A file is not a readable image (empty, truncated, not an image, unsupported)."""


class ImageTooLargeError(InputError):
    """An image exceeds the pixel limit (protection against decompression bombs)."""


class ImageTooSmallError(InputError):
    """An image is too small for the requested operation."""


class NoFaceError(InputError):
    """No face was found in an image."""


class OutputError(HypernstError):
    """An output cannot be written (would overwrite an input, bad suffix, not writable)."""


# --- 3: weights ---------------------------------------------------------------------------------


class WeightsError(HypernstError):
    """Model weights are missing, invalid, or cannot be fetched."""

    exit_code = EXIT_WEIGHTS


class WeightsNotFoundError(WeightsError):
    pass


class WeightsIntegrityError(WeightsError):
    """A weights file does not match its recorded hash, or its content is malformed."""


class DownloadError(WeightsError):
    pass


class UnsafePickleError(WeightsError):
    """A pickle names a global outside the allow-list; it is refused, never executed."""


# --- 4: device ----------------------------------------------------------------------------------


class DeviceError(HypernstError):
    """The requested device is unavailable."""

    exit_code = EXIT_DEVICE


class OutOfMemoryError(DeviceError):
    """The device ran out of memory."""


# --- 74: the file system refuses a write -----------------------------------------------------------

#: errno -> (cause, what to do) for write failures that come from the machine, not from hypernst
_WRITE_CAUSES: dict[int, tuple[str, str]] = {
    errno.ENOSPC: ("no space left on the device", "free some space or write to another disk"),
    errno.EDQUOT: ("disk quota exceeded", "free some space or write to another disk"),
    errno.EACCES: ("permission denied", "write to a folder you may write to, or fix its permissions"),
    errno.EPERM: ("operation not permitted", "write to a folder you may write to, or fix its permissions"),
    errno.EROFS: ("read-only file system", "write to a writable disk"),
    errno.ENAMETOOLONG: ("file name too long", "use a shorter output path"),
    # a folder on the way is a file (a cache or output folder set to a file's path)
    errno.ENOTDIR: ("a file is in the way of a folder on this path", "move it, or choose another path"),
    errno.EEXIST: ("a file is where a folder should be", "move it, or choose another path"),
}


class WriteError(HypernstError):
    """The file system refused to write an output: disk full, no permission, read-only, name too
    long. Nothing partial is left; a batch stops here (every later item would fail the same way)."""

    exit_code = EXIT_WRITE

    def __init__(self, path: str | Path, cause: str, *, hint: str | None = None) -> None:
        self.path = Path(path)
        self.cause = cause
        super().__init__(f"{path}: cannot write: {cause}", hint=hint)


def write_error_from(exc: BaseException, path: str | Path | None = None) -> WriteError | None:
    """The ``WriteError`` an environment failure (``OSError`` with one of the errnos above, also
    as the cause of another exception) amounts to, naming ``path`` (else the error's own file
    name); None for anything else."""
    current: BaseException | None = exc
    for _ in range(8):  # walk a short cause chain (libraries wrap OSError)
        if current is None:
            return None
        if isinstance(current, WriteError):
            return current
        if isinstance(current, OSError) and current.errno in _WRITE_CAUSES:
            cause, hint = _WRITE_CAUSES[current.errno]
            where = path if path is not None else (current.filename or "output")
            return WriteError(where, cause, hint=hint)
        current = current.__cause__ or current.__context__
    return None


def disk_full_error(path: str | Path) -> WriteError:
    """The error for a write that failed while the file system has no free space left (libraries
    such as safetensors report ENOSPC in their own exception types)."""
    cause, hint = _WRITE_CAUSES[errno.ENOSPC]
    return WriteError(path, cause, hint=hint)


def no_space_left(folder: str | Path) -> bool:
    """True when the file system holding ``folder`` has no block left for this user."""
    try:
        st = os.statvfs(folder)
    except OSError:
        return False
    return st.f_bavail == 0
