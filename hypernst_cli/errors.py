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
70    internal error (a bug: please report it with the ``--debug`` output)
====  ==================================================================
"""

from __future__ import annotations

from pathlib import Path

EXIT_OK = 0
EXIT_PARTIAL = 1
EXIT_INPUT = 2
EXIT_WEIGHTS = 3
EXIT_DEVICE = 4
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
