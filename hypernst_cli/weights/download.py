"""Verified downloads of registry entries.

Hub entries go through ``huggingface_hub.hf_hub_download`` into the standard HF cache; plain-URL
entries are fetched with urllib into ``$HF_HOME/hypernst-url-cache``. Both honour HF_HOME,
HF_HUB_CACHE, HF_ENDPOINT, HF_HUB_OFFLINE and HF_TOKEN as set when the download runs (the
huggingface_hub constants are read at its import, so they are passed explicitly).

Every downloaded file is hashed: a pinned entry must match its sha256 (or the sha256 prefix that
torchvision-style file names carry); a mismatch moves the file to the quarantine folder, where
nothing looks, and fails with exit 3. An unpinned entry is accepted with a warning and the hash it
got is recorded (``weights verify`` compares against it later).
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hypernst_cli.errors import DownloadError, WeightsIntegrityError
from hypernst_cli.weights.registry import (
    WeightsEntry,
    cached_download_path,
    hub_cache_dir,
    manual_download_steps,
    offline_mode,
    quarantine_dir,
    read_records,
    url_download_path,
    write_record,
)

CHUNK = 1 << 20
URL_TIMEOUT_S = 60


@dataclass(frozen=True)
class DownloadResult:
    name: str
    path: Path
    sha256: str
    size: int
    check: str  # 'sha256' (pinned, matched) | 'prefix' (sha256 prefix matched) | 'unpinned'
    fresh: bool  # False when the file came from the cache


Warn = Callable[[str], None]

#: what to do without a network, said once for all files (``hypernst download`` on many entries)
NO_NETWORK_HINT = ("run `hypernst download` on a machine with a network and copy its HF_HOME "
                   "cache here, or set HF_HOME to a copy of it")


class NoNetworkError(DownloadError):
    """The host could not be resolved or reached: no network, not a problem with this file."""


def _is_no_network(exc: BaseException) -> bool:
    """A failed name lookup or an unreachable network anywhere in the exception's chain."""
    import socket

    unreachable = {errno.ENETUNREACH, errno.EHOSTUNREACH, errno.ENETDOWN}
    current: BaseException | None = exc
    for _ in range(8):
        if current is None:
            return False
        if isinstance(current, socket.gaierror):
            return True
        if isinstance(current, OSError) and current.errno in unreachable:
            return True
        reason = getattr(current, "reason", None)  # URLError keeps the OSError in .reason
        if isinstance(reason, BaseException) and reason is not current:
            current = reason
        else:
            current = current.__cause__ or current.__context__
    return False


def download_entry(
    entry: WeightsEntry,
    *,
    revision: str | None = None,
    force: bool = False,
    progress: bool = True,
    warn: Warn | None = None,
) -> DownloadResult:
    """Fetch (or find in the cache) one entry's file and verify it. Raises WeightsError (exit 3)."""
    warn = warn or (lambda _msg: None)
    source = entry.source_type
    if source == "hub":
        path, fresh = _download_hub(entry, revision, force, progress)
    elif source == "url":
        if revision and revision != entry.revision:
            warn(f"{entry.name}: --revision applies to Hub entries only; using {entry.url}")
        path, fresh = _download_url(entry, force, progress)
    elif source in ("bundled", "embedded"):
        from hypernst_cli.weights.registry import locate

        found, _ = locate(entry)
        if found is None:
            raise DownloadError(
                f"{entry.name}: {entry.source} but the file is missing",
                hint=f"pip install --force-reinstall {entry.package}" if entry.package else None,
            )
        return verify_file(entry, found, fresh=False, warn=warn, quarantine=False)
    else:
        raise DownloadError(
            f"{entry.name}: cannot be downloaded automatically",
            hint=manual_download_steps(entry),
        )
    return verify_file(entry, path, fresh=fresh, warn=warn, quarantine=True)


# --- verification ----------------------------------------------------------------------------------


def verify_file(
    entry: WeightsEntry,
    path: Path,
    *,
    fresh: bool,
    warn: Warn,
    quarantine: bool,
) -> DownloadResult:
    """Hash ``path`` and check it against the entry; a mismatch is quarantined (exit 3)."""
    from hypernst_cli.io.inputs import file_sha256

    digest = file_sha256(path)
    size = path.stat().st_size
    if entry.sha256:
        ok, check, expected = digest == entry.sha256, "sha256", entry.sha256
    elif entry.sha256_prefix:
        ok, check, expected = digest.startswith(entry.sha256_prefix), "prefix", entry.sha256_prefix
    else:
        ok, check, expected = True, "unpinned", ""
    if not ok:
        message = f"{entry.name}: sha256 mismatch (expected {expected}, got {digest})"
        if not quarantine:
            raise WeightsIntegrityError(f"{message} for {path}")
        moved = _quarantine(entry, path, digest)
        raise WeightsIntegrityError(
            f"{message}; the file was moved to {moved}",
            hint=f"run `hypernst download {entry.name}` again; if it persists the upstream file changed",
        )
    if entry.size and size != entry.size and check != "sha256":
        warn(f"{entry.name}: size {size} differs from the recorded {entry.size}")
    if check == "unpinned" and fresh:
        warn(f"{entry.name} is unpinned (no sha256 in weights.toml); recorded the sha256 it got: {digest}")
    elif check == "prefix" and fresh:
        warn(f"{entry.name}: only the sha256 prefix {entry.sha256_prefix} is pinned; got {digest}")
    if fresh or entry.name not in read_records():
        write_record(
            entry.name,
            {
                "sha256": digest,
                "size": size,
                "path": str(path),
                "source": entry.source,
                "check": check,
                "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            },
        )
    return DownloadResult(entry.name, path, digest, size, check, fresh)


def _quarantine(entry: WeightsEntry, path: Path, digest: str) -> Path:
    """Move a bad file where nothing looks, and drop the cache pointer that led to it."""
    target = quarantine_dir() / entry.name / f"{digest[:16]}-{entry.filename}"
    target.parent.mkdir(parents=True, exist_ok=True)
    real = Path(os.path.realpath(path))
    shutil.move(str(real), str(target))
    if path.is_symlink() or path.exists():  # HF cache: snapshots/<commit>/<file> -> blobs/<etag>
        with contextlib.suppress(OSError):
            path.unlink()
    return target


# --- the Hub ---------------------------------------------------------------------------------------


@contextlib.contextmanager
def _hub_quiet(progress: bool) -> Iterator[None]:
    """huggingface_hub's own progress bars unless --quiet; its retry chatter only with --debug."""
    from huggingface_hub.utils import disable_progress_bars, enable_progress_bars, logging

    from hypernst_cli.cli.state import STATE

    logger = logging.get_logger()
    level = logger.level
    if not STATE.debug:
        logger.setLevel(logging.ERROR)
    disabled = False
    if not progress:
        try:
            disable_progress_bars()  # a plain call works in every huggingface_hub version
            disabled = True
        except Exception:  # noqa: BLE001 - HF_HUB_DISABLE_PROGRESS_BARS=0 forbids it; then show them
            pass
    try:
        yield
    finally:
        logger.setLevel(level)
        if disabled:
            with contextlib.suppress(Exception):
                enable_progress_bars()


def _download_hub(
    entry: WeightsEntry, revision: str | None, force: bool, progress: bool
) -> tuple[Path, bool]:
    from huggingface_hub import hf_hub_download

    rev = revision or entry.revision
    before = cached_download_path(entry, rev)
    offline = offline_mode()
    if offline and force:
        raise DownloadError(
            f"{entry.name}: --force needs the network, but HF_HUB_OFFLINE is set",
            hint="unset HF_HUB_OFFLINE",
        )
    try:
        with _hub_quiet(progress):
            found = hf_hub_download(
                repo_id=entry.repo_id,
                filename=entry.filename,
                revision=rev,
                cache_dir=str(hub_cache_dir()),
                endpoint=os.environ.get("HF_ENDPOINT") or None,
                token=os.environ.get("HF_TOKEN") or None,
                local_files_only=offline,
                force_download=force,
            )
    except Exception as exc:  # noqa: BLE001 - translated into one clear line below
        raise _hub_error(entry, rev, exc, offline) from exc
    path = Path(found)
    fresh = force or before is None or Path(before) != path
    return path, fresh


def _http_status(exc: BaseException) -> int | None:
    seen = 0
    current: BaseException | None = exc
    while current is not None and seen < 8:
        response = getattr(current, "response", None)
        status = getattr(response, "status_code", None)
        if isinstance(status, int):
            return status
        current = current.__cause__ or current.__context__
        seen += 1
    return None


def _hf_error_classes() -> Any:
    """The client's exception classes, by name, across huggingface_hub versions."""
    import huggingface_hub.utils as hf_utils

    try:
        from huggingface_hub import errors as hf_errors
    except ImportError:  # older clients keep them in huggingface_hub.utils
        hf_errors = hf_utils

    class Never(Exception):
        pass

    def cls(*names: str) -> type[BaseException]:
        for name in names:
            for module in (hf_errors, hf_utils):
                found = getattr(module, name, None)
                if isinstance(found, type):
                    return found
        return Never

    return type("HfErrors", (), {
        "GatedRepoError": cls("GatedRepoError"),
        "RevisionNotFoundError": cls("RevisionNotFoundError"),
        "RemoteEntryNotFoundError": cls("RemoteEntryNotFoundError", "EntryNotFoundError"),
        "RepositoryNotFoundError": cls("RepositoryNotFoundError"),
        "LocalEntryNotFoundError": cls("LocalEntryNotFoundError"),
        "HfHubHTTPError": cls("HfHubHTTPError"),
    })


def _hub_error(entry: WeightsEntry, rev: str, exc: Exception, offline: bool) -> Exception:
    hf = _hf_error_classes()

    where = f"{entry.name} (hf://{entry.repo_id}/{entry.filename}@{rev})"
    endpoint = os.environ.get("HF_ENDPOINT") or "https://huggingface.co"
    if _is_disk_full(exc):
        return _disk_full(entry, hub_cache_dir())
    status = _http_status(exc)
    if isinstance(exc, hf.GatedRepoError):
        return DownloadError(
            f"{where}: the repository is gated and this account has no access",
            hint="accept its terms on the Hub and set HF_TOKEN to a token with access",
        )
    if isinstance(exc, hf.RevisionNotFoundError):
        return DownloadError(f"{where}: revision '{rev}' not found upstream")
    # Checked before the 404 class: old clients derive LocalEntryNotFoundError from it.
    if isinstance(exc, hf.LocalEntryNotFoundError) and status not in (401, 403):
        if offline:
            return DownloadError(
                f"{where}: not in the local cache and HF_HUB_OFFLINE is set",
                hint="unset HF_HUB_OFFLINE to download it, or copy the cache from a machine that has it",
            )
        if _is_no_network(exc):
            return NoNetworkError(
                f"{where}: no network connection (cannot resolve or reach {endpoint})",
                hint=NO_NETWORK_HINT,
            )
        return DownloadError(
            f"{where}: cannot reach {endpoint} and the file is not in the local cache",
            hint="check the network and HF_ENDPOINT",
        )
    if isinstance(exc, hf.RemoteEntryNotFoundError):
        return DownloadError(f"{where}: file not found upstream (404)")
    if isinstance(exc, hf.RepositoryNotFoundError):
        return DownloadError(
            f"{where}: repository not found, or private/gated",
            hint="check the name; for a private or gated repository set HF_TOKEN",
        )
    if status in (401, 403):
        return DownloadError(
            f"{where}: access denied ({status})", hint="set HF_TOKEN to a token with access"
        )
    if isinstance(exc, hf.HfHubHTTPError):
        return DownloadError(f"{where}: download failed ({status or 'HTTP error'})")
    if isinstance(exc, OSError):
        return DownloadError(f"{where}: download failed ({exc.strerror or exc})")
    return DownloadError(f"{where}: download failed ({type(exc).__name__}: {exc})")


def _is_disk_full(exc: BaseException) -> bool:
    current: BaseException | None = exc
    for _ in range(8):
        if current is None:
            return False
        if isinstance(current, OSError) and current.errno == errno.ENOSPC:
            return True
        current = current.__cause__ or current.__context__
    return False


def _disk_full(entry: WeightsEntry, where: Path) -> DownloadError:
    return DownloadError(
        f"{entry.name}: disk full while writing to {where}",
        hint="free some space or point HF_HOME to a larger disk",
    )


# --- plain URLs ------------------------------------------------------------------------------------


def _download_url(entry: WeightsEntry, force: bool, progress: bool) -> tuple[Path, bool]:
    dest = url_download_path(entry)
    if dest.is_file() and not force:
        return dest, False
    if offline_mode():
        raise DownloadError(
            f"{entry.name} ({entry.url}): not in the local cache and HF_HUB_OFFLINE is set",
            hint="unset HF_HUB_OFFLINE to download it",
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(f".{dest.name}.{os.getpid()}.incomplete")
    try:
        _fetch(entry, partial, progress)
        os.replace(partial, dest)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            partial.unlink()
        if isinstance(exc, OSError) and _is_disk_full(exc):
            raise _disk_full(entry, dest.parent) from exc
        raise
    return dest, True


def _fetch(entry: WeightsEntry, dest: Path, progress: bool) -> None:
    from hypernst_cli import __version__

    request = urllib.request.Request(entry.url, headers={"User-Agent": f"hypernst/{__version__}"})
    try:
        response = urllib.request.urlopen(request, timeout=URL_TIMEOUT_S)  # noqa: S310 - http(s) from weights.toml
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            raise DownloadError(f"{entry.name}: file not found upstream (404 at {entry.url})") from exc
        if exc.code in (401, 403):
            raise DownloadError(
                f"{entry.name}: access denied ({exc.code} at {entry.url})",
                hint=f"download it in a browser from {entry.homepage or entry.url}",
            ) from exc
        raise DownloadError(f"{entry.name}: download failed (HTTP {exc.code} at {entry.url})") from exc
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        if _is_no_network(exc):
            host = urllib.parse.urlsplit(entry.url).hostname or entry.url
            raise NoNetworkError(
                f"{entry.name}: no network connection (cannot resolve or reach {host})",
                hint=NO_NETWORK_HINT,
            ) from exc
        reason = getattr(exc, "reason", exc)
        raise DownloadError(
            f"{entry.name}: cannot reach {entry.url} ({reason})", hint="check the network"
        ) from exc
    with response:
        if "text/html" in (response.headers.get("Content-Type") or ""):
            # e.g. Google Drive's "can't scan this file for viruses" page instead of the file
            raise DownloadError(
                f"{entry.name}: {entry.url} returned a web page, not the file",
                hint=f"download {entry.filename} in a browser and pass it with --weights or "
                f"`hypernst convert`",
            )
        total = int(response.headers.get("Content-Length") or 0) or None
        with open(dest, "wb") as out, _bar(entry.filename, total, progress) as advance:
            while block := response.read(CHUNK):
                out.write(block)
                advance(len(block))
            out.flush()
            os.fsync(out.fileno())
    if total is not None and dest.stat().st_size != total:
        raise DownloadError(
            f"{entry.name}: incomplete download ({dest.stat().st_size} of {total} bytes)",
            hint="try again",
        )


@contextlib.contextmanager
def _bar(label: str, total: int | None, enabled: bool) -> Iterator[Callable[[int], None]]:
    if not enabled:
        yield lambda _n: None
        return
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    from hypernst_cli.cli.state import STATE

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=STATE.err,
        transient=True,
    ) as bar:
        task = bar.add_task(label, total=total)
        yield lambda n: bar.advance(task, n)


# --- verify what is present ------------------------------------------------------------------------


@dataclass(frozen=True)
class VerifyResult:
    name: str
    path: Path | None
    status: str  # 'ok' | 'mismatch' | 'unpinned' | 'missing'
    detail: str


def verify_present(entry: WeightsEntry) -> VerifyResult:
    """Re-hash an entry's local file: against its pin, else against the hash recorded at download."""
    from hypernst_cli.io.inputs import file_sha256
    from hypernst_cli.weights.registry import locate

    path, _status = locate(entry)
    if path is None:
        return VerifyResult(entry.name, None, "missing", "not on this machine")
    if path.is_dir():
        return VerifyResult(entry.name, path, "ok", "folder (not hashed)")
    digest = file_sha256(path)
    if entry.sha256:
        if digest == entry.sha256:
            return VerifyResult(entry.name, path, "ok", f"sha256 {digest}")
        return VerifyResult(entry.name, path, "mismatch", f"expected {entry.sha256}, got {digest}")
    if entry.sha256_prefix and not digest.startswith(entry.sha256_prefix):
        return VerifyResult(
            entry.name, path, "mismatch", f"expected prefix {entry.sha256_prefix}, got {digest}"
        )
    record = read_records().get(entry.name)
    if record and record.get("path") == str(path) and record.get("sha256") != digest:
        return VerifyResult(
            entry.name, path, "mismatch", f"changed since download: was {record['sha256']}, now {digest}"
        )
    if entry.sha256_prefix:
        return VerifyResult(entry.name, path, "ok", f"prefix {entry.sha256_prefix} (sha256 {digest})")
    return VerifyResult(entry.name, path, "unpinned", f"sha256 {digest}")
