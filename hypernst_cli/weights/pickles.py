"""Reading official checkpoints that are pickles, without ever executing them.

Only converters call this. ``torch.load(weights_only=True)`` restricts unpickling to tensors and
plain containers; we extend it with a short explicit allow-list (``argparse.Namespace``, which
rosinality's checkpoints store as ``args``, and numpy's scalar/dtype reconstructors that some
checkpoints carry in their options). Every other global is refused with ``UnsafePickleError``
naming it, before anything is unpickled. ``.npy`` files are read with ``allow_pickle=False``.
"""

from __future__ import annotations

import argparse
import pickle
import re
import warnings
import zipfile
from pathlib import Path
from typing import Any

from hypernst_cli.errors import InputError, UnsafePickleError, WeightsIntegrityError

_GLOBAL_IN_MESSAGE = re.compile(r"GLOBAL\s+([\w.]+)")


def allowed_globals() -> list[Any]:
    """The globals a checkpoint may name beyond torch's own weights-only set."""
    import numpy as np

    allowed: list[Any] = [argparse.Namespace, np.dtype]
    # numpy scalars pickle through numpy.core.multiarray.scalar (numpy._core in numpy 2).
    for module_name in ("numpy._core.multiarray", "numpy.core.multiarray"):
        try:
            module = __import__(module_name, fromlist=["scalar"])
        except ImportError:
            continue
        allowed.append(module.scalar)
        break
    # the concrete dtype classes (numpy.dtypes.Float32DType, ...) numpy >= 1.25 pickles
    dtypes = getattr(np, "dtypes", None)
    if dtypes is not None:
        allowed.extend(
            getattr(dtypes, n) for n in dir(dtypes) if n.endswith("DType") and n[0].isupper()
        )
    return allowed


def _allowed_names(allowed: list[Any]) -> set[str]:
    names = set()
    for obj in allowed:
        module = getattr(obj, "__module__", "")
        names.add(f"{module}.{obj.__qualname__}")
        if module.startswith("numpy._core"):
            names.add(f"numpy.core{module[len('numpy._core'):]}.{obj.__qualname__}")
    return names


def load_torch_pickle(path: str | Path) -> Any:
    """Load a ``torch.save`` file (zip or legacy format) with the weights-only unpickler."""
    import torch

    file = Path(path)
    _require_file(file)
    allowed = allowed_globals()
    allowed_names = _allowed_names(allowed)

    # Zip checkpoints can be inspected before loading: refuse early, naming the global.
    if zipfile.is_zipfile(file):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(str(file))
        except Exception:  # noqa: BLE001 - inspection is a courtesy; torch.load below decides
            unsafe = []
        refused = [g for g in unsafe if g not in allowed_names]
        if refused:
            raise _unsafe(file, refused[0])

    try:
        # torch's own warnings ("Detected pickle protocol 4 ...") would print above our one-line
        # answer; what matters of them is in that answer
        with torch.serialization.safe_globals(allowed), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.load(str(file), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        match = _GLOBAL_IN_MESSAGE.search(str(exc))
        if match:
            raise _unsafe(file, match.group(1)) from None
        reason = _weights_only_reason(exc)
        if reason is not None:
            raise _refused(file, reason) from None
        raise _unreadable(file, _short(exc)) from None
    except (RuntimeError, EOFError, ValueError, OSError, zipfile.BadZipFile, KeyError) as exc:
        reason = _weights_only_reason(exc)  # other torch versions wrap the refusal differently
        if reason is not None:
            raise _refused(file, reason) from None
        raise _unreadable(file, _short(exc)) from None
    except Exception as exc:  # noqa: BLE001 - an allowed constructor fed odd state (TypeError, ...)
        raise _unreadable(file, f"{type(exc).__name__}: {_short(exc)}") from None


def _require_file(file: Path) -> None:
    """An InputError for a missing file, or a folder given where the checkpoint file belongs."""
    if not file.is_file():
        raise InputError(file, "a folder, not a file" if file.is_dir() else "no such file",
                         hint="give the checkpoint file itself" if file.is_dir() else None)


def _unreadable(file: Path, detail: str) -> WeightsIntegrityError:
    """A file torch.load could not read; for one that is no checkpoint at all, say so rather than
    torch's detail (a text file gives "KeyError: 101" or "pop from empty list": opcode noise)."""
    if _neither_zip_nor_pickle(file):
        return WeightsIntegrityError(
            f"{file}: not a PyTorch checkpoint (neither a zip archive nor a pickle)",
            hint="give a .pt/.pth/.ckpt file written by torch.save",
        )
    return WeightsIntegrityError(f"{file}: not a readable PyTorch checkpoint ({detail})")


def _neither_zip_nor_pickle(file: Path) -> bool:
    """True for a file torch.save cannot have written: not a zip, and not starting with the
    PROTO opcode (0x80) that opens every pickle torch.save writes (protocol 2 and later)."""
    try:
        with open(file, "rb") as handle:
            head = handle.read(1)
    except OSError:
        return False
    return bool(head) and head != b"\x80" and not zipfile.is_zipfile(file)


def load_npy(path: str | Path) -> Any:
    """A ``.npy`` array, never unpickling object arrays."""
    import numpy as np

    file = Path(path)
    _require_file(file)
    try:
        return np.load(file, allow_pickle=False)
    except ValueError as exc:
        if "allow_pickle" in str(exc) or "Object arrays" in str(exc):
            raise UnsafePickleError(
                f"{file}: refusing to load an object array (it would need unpickling)",
                hint="only plain numeric .npy arrays are accepted",
            ) from None
        raise WeightsIntegrityError(f"{file}: not a readable .npy array ({_short(exc)})") from None
    except (OSError, EOFError) as exc:
        raise WeightsIntegrityError(f"{file}: not a readable .npy array ({_short(exc)})") from None


def _unsafe(file: Path, global_name: str) -> UnsafePickleError:
    return UnsafePickleError(
        f"{file}: refusing to unpickle: it names the global '{global_name}', which is not on the "
        "allow-list",
        hint="only tensors, plain containers and argparse.Namespace are accepted; the file was not "
        "executed",
    )


#: torch's weights-only refusal: a long hint (suggesting the unsafe ``weights_only=False``), then
#: the actual reason after "WeightsUnpickler error:", then a link to its documentation
_WEIGHTS_ONLY_REASON = re.compile(
    r"WeightsUnpickler error:\s*(.*?)\s*(?:Check the documentation|$)", re.DOTALL)


def _weights_only_reason(exc: BaseException) -> str | None:
    """The reason in torch's weights-only refusal, without its advice; None for other errors."""
    text = str(exc)
    if "Weights only load failed" not in text:
        return None
    match = _WEIGHTS_ONLY_REASON.search(text)
    reason = " ".join(match.group(1).split()) if match else ""
    return reason.rstrip(".") or "it uses a pickle feature the safe loader does not support"


_UNSUPPORTED_OPERAND = re.compile(r"Unsupported operand (\d+)")


def _refused(file: Path, reason: str) -> UnsafePickleError | WeightsIntegrityError:
    """Our answer to a pickle the weights-only unpickler refuses. Not torch's, which suggests
    ``weights_only=False``: that would run whatever code the file holds."""
    operand = _UNSUPPORTED_OPERAND.search(reason)
    if operand:
        code = int(operand.group(1))
        name = _pickle_opcode_name(code)
        if name is None:
            # not a pickle instruction at all: a damaged file or not a checkpoint, nothing unsafe
            if _neither_zip_nor_pickle(file):
                return _unreadable(file, "")
            return WeightsIntegrityError(
                f"{file}: not a readable PyTorch checkpoint: byte {code} is not pickle data",
                hint="check that the file is the checkpoint, and download it again if it is",
            )
        reason = f"it uses the pickle instruction {name}, which the weights-only loader refuses"
    return UnsafePickleError(
        f"{file}: cannot read this pickle safely: {_short_text(reason)}; hypernst reads pickles "
        "only with torch's weights-only loader and never executes them",
        hint="if you trust the file, re-save its tensors with torch.save(state_dict) in a recent "
        "PyTorch, or get the official checkpoint again",
    )


def _pickle_opcode_name(code: int) -> str | None:
    """The name of pickle instruction ``code`` (e.g. 105 -> INST), None when it is none."""
    import pickletools

    return next((op.name for op in pickletools.opcodes if op.code == chr(code)), None)


def _short_text(text: str) -> str:
    return text if len(text) <= 200 else text[:200] + "..."


def _short(exc: BaseException) -> str:
    return _short_text(" ".join(str(exc).split()) or type(exc).__name__)
