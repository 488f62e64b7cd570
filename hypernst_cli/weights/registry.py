"""The weights registry: ``weights.toml`` entries and where each file is found locally.

Resolution order wherever a model is needed (shown by ``hypernst info``; implemented by
``hypernst_cli.weights.checkpoint.resolve_weights``): ``--weights PATH`` (a folder or a file), then
a registry NAME, then downloaded files (the Hugging Face cache), then the embedded model that ships
inside the package.

Where files live (all read from the environment at call time, never cached at import):

* Hub entries: the standard Hugging Face cache (``$HF_HUB_CACHE``, default ``$HF_HOME/hub``).
* plain-URL entries: ``$HF_HOME/hypernst-url-cache/<name>/<url hash>/<filename>``.
* converted copies of official files: ``$HF_HOME/hypernst-converted/<name>/<sha256[:16]>/``.
* quarantined downloads (hash mismatch) and the record of downloaded hashes: hypernst's own cache
  (``$HYPERNST_CACHE``, see ``hypernst_cli.info.cache_dir``).
"""

from __future__ import annotations

import difflib
import hashlib
import importlib.util
import json
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypernst_cli.errors import WeightsError, WeightsNotFoundError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

PACKAGE_DIR = Path(__file__).resolve().parent.parent
EMBEDDED_DIR = PACKAGE_DIR / "weights" / "embedded"
REGISTRY_FILE = PACKAGE_DIR / "weights.toml"
REGISTRY_ENV = "HYPERNST_WEIGHTS_TOML"

KINDS = (
    "generator",
    "e4e",
    "aladin",
    "hypernet",
    "model",
    "detector",
    "landmarks",
    "parser",
    "recognition",
    "directions",
    "lpips",
    "backbone",
    "inception",
)

#: converters ``hypernst convert`` knows (see hypernst_cli/weights/convert.py)
CONVERTERS = ("stylegan2", "e4e", "aladin", "directions", "facexlib", "state-dict")

#: the order ``resolve_weights`` tries, as shown by ``hypernst info``
RESOLUTION_ORDER = ("--weights PATH", "registry NAME", "downloaded (HF cache)", "embedded")

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_HEX = re.compile(r"^[0-9a-f]+$")


@dataclass(frozen=True)
class WeightsEntry:
    name: str
    kind: str
    filename: str
    configs: tuple[str, ...] = ()
    repo_id: str = ""  # Hugging Face Hub source
    revision: str = "main"
    url: str = ""  # plain URL for upstream files that live outside the Hub
    embedded: bool = False  # ships inside the package (EMBEDDED_DIR / filename)
    package: str = ""  # ships inside an installed PyPI package (import name); filename is relative
    homepage: str = ""  # where a human finds the file when it cannot be fetched automatically
    sha256: str = ""  # empty: unpinned (nobody here could verify the upstream hash)
    sha256_prefix: str = ""  # leading hex digits known from the upstream file name (torchvision)
    size: int = 0
    license: str = ""
    converter: str = ""  # how to turn the upstream format into ours (``hypernst convert``)
    description: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def pinned(self) -> bool:
        return bool(self.sha256)

    @property
    def source_type(self) -> str:
        """'embedded' | 'bundled' | 'hub' | 'url' | 'manual' (no automatic source)."""
        if self.embedded:
            return "embedded"
        if self.package:
            return "bundled"
        if self.repo_id:
            return "hub"
        if self.url:
            return "url"
        return "manual"

    @property
    def source(self) -> str:
        kind = self.source_type
        if kind == "embedded":
            return "embedded"
        if kind == "bundled":
            return f"bundled with the PyPI package {self.package}"
        if kind == "hub":
            return f"hf://{self.repo_id}/{self.filename}@{self.revision}"
        if kind == "url":
            return self.url
        return f"manual download: {self.homepage or '?'}"

    @property
    def downloadable(self) -> bool:
        return self.source_type in ("hub", "url")


def manual_download_steps(entry: WeightsEntry, use: str = "pass {path} with --weights") -> str:
    """How to make an entry that no program can fetch (``source_type == 'manual'``) usable: where
    to download it, the ``hypernst convert`` command its format needs, then ``use`` (``{path}``:
    the converted folder, DIR, or the downloaded file when it needs no converting)."""
    where = entry.homepage or "its upstream project"
    if entry.converter:
        return (f"download {entry.filename} from {where}, run `hypernst convert {entry.converter} "
                f"{entry.filename} -o DIR`, then {use.format(path='DIR')}")
    return f"download {entry.filename} from {where}, then {use.format(path=entry.filename)}"


def registry_path(path: str | Path | None = None) -> Path:
    """The registry file: ``path``, else ``$HYPERNST_WEIGHTS_TOML``, else the shipped weights.toml."""
    if path:
        return Path(path)
    env = os.environ.get(REGISTRY_ENV)
    return Path(env).expanduser() if env else REGISTRY_FILE


def load_registry(path: str | Path | None = None) -> dict[str, WeightsEntry]:
    """Parse ``weights.toml`` into entries keyed by name (validated: a typo fails loudly)."""
    file = registry_path(path)
    # a registry named by the environment is the user's to fix, not the install's
    from_env = not path and bool(os.environ.get(REGISTRY_ENV))
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        if from_env:
            reason = "no such file" if isinstance(exc, FileNotFoundError) else (
                "is a folder" if file.is_dir() else "cannot be read")
            raise WeightsError(
                f"{REGISTRY_ENV}={os.environ[REGISTRY_ENV]}: {reason}",
                hint=f"point {REGISTRY_ENV} at an existing weights TOML file, or unset it to use "
                     "the shipped one") from exc
        if isinstance(exc, FileNotFoundError):
            raise WeightsError(f"{file}: weights registry not found",
                               hint="reinstall hypernst") from exc
        raise
    except tomllib.TOMLDecodeError as exc:
        raise WeightsError(f"{file}: invalid TOML ({exc})") from exc
    entries: dict[str, WeightsEntry] = {}
    known = set(WeightsEntry.__dataclass_fields__) - {"extra", "configs"}
    for raw in data.get("weights", []):
        if "name" not in raw or "kind" not in raw or "filename" not in raw:
            raise WeightsError(f"{file}: every [[weights]] entry needs name, kind and filename")
        fields: dict[str, Any] = {k: v for k, v in raw.items() if k in known}
        fields["extra"] = {
            k: v for k, v in raw.items() if k not in known and k not in ("configs", "config")
        }
        configs = raw.get("configs", raw.get("config", ()))
        fields["configs"] = (configs,) if isinstance(configs, str) else tuple(configs)
        entry = WeightsEntry(**fields)
        _validate(entry, file)
        if entry.name in entries:
            raise WeightsError(f"{file}: duplicate entry name '{entry.name}'")
        entries[entry.name] = entry
    return entries


def _validate(entry: WeightsEntry, file: Path) -> None:
    where = f"{file}: entry '{entry.name}'"
    if entry.kind not in KINDS:
        raise WeightsError(f"{where} has unknown kind '{entry.kind}'")
    if entry.sha256 and not _SHA256.match(entry.sha256):
        raise WeightsError(f"{where}: sha256 must be 64 lowercase hex digits or empty")
    if entry.sha256_prefix and not _HEX.match(entry.sha256_prefix):
        raise WeightsError(f"{where}: sha256_prefix must be lowercase hex digits")
    if entry.converter and entry.converter not in CONVERTERS:
        raise WeightsError(f"{where} has unknown converter '{entry.converter}'")
    if entry.repo_id and entry.url:
        raise WeightsError(f"{where}: give either repo_id or url, not both")


def get_entry(name: str, registry: dict[str, WeightsEntry] | None = None) -> WeightsEntry:
    """The entry called ``name``, or a one-line error suggesting close names."""
    entries = load_registry() if registry is None else registry
    if name in entries:
        return entries[name]
    close = difflib.get_close_matches(name, list(entries), n=3)
    hint = f"did you mean {', '.join(close)}?" if close else "see `hypernst weights list`"
    raise WeightsNotFoundError(f"unknown weights '{name}'", hint=hint)


# --- where things live ---------------------------------------------------------------------------


def hf_home() -> Path:
    env = os.environ.get("HF_HOME")
    if env:
        return Path(os.path.expandvars(env)).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "huggingface"


def hub_cache_dir() -> Path:
    """The Hugging Face hub cache, honouring HF_HUB_CACHE / HF_HOME as set *now*."""
    env = os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE")
    return Path(os.path.expandvars(env)).expanduser() if env else hf_home() / "hub"


def url_cache_dir() -> Path:
    return hf_home() / "hypernst-url-cache"


def converted_dir() -> Path:
    return hf_home() / "hypernst-converted"


def quarantine_dir() -> Path:
    from hypernst_cli.info import cache_dir

    return cache_dir() / "quarantine"


def records_file() -> Path:
    from hypernst_cli.info import cache_dir

    return cache_dir() / "downloads.json"


def url_download_path(entry: WeightsEntry) -> Path:
    """Where a plain-URL entry is stored: keyed by the URL so a changed URL never reuses a file."""
    key = hashlib.sha256(entry.url.encode("utf-8")).hexdigest()[:16]
    return url_cache_dir() / entry.name / key / entry.filename


def offline_mode() -> bool:
    value = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return value.strip().upper() in ("1", "ON", "YES", "TRUE")


def cached_download_path(entry: WeightsEntry, revision: str | None = None) -> Path | None:
    """The file in the Hugging Face cache, if it was downloaded (never touches the network)."""
    if not entry.repo_id:
        return None
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(
        entry.repo_id,
        entry.filename,
        cache_dir=str(hub_cache_dir()),
        revision=revision or entry.revision,
    )
    return Path(found) if isinstance(found, str) else None


def bundled_path(entry: WeightsEntry) -> Path | None:
    """A file shipped inside an installed package, found without importing the package."""
    spec = importlib.util.find_spec(entry.package)
    if spec is None:
        return None
    if spec.submodule_search_locations:
        root = Path(list(spec.submodule_search_locations)[0])
    elif spec.origin:
        root = Path(spec.origin).parent
    else:
        return None
    return root / entry.filename


def locate(entry: WeightsEntry) -> tuple[Path | None, str]:
    """Where an entry's file is on this machine.

    Returns (path, status), status one of 'downloaded', 'embedded', 'bundled', 'missing'. A file
    that failed verification was moved to quarantine, so it is never found here.
    """
    source = entry.source_type
    if source == "hub":
        cached = cached_download_path(entry)
        if cached is not None and cached.is_file():
            return cached, "downloaded"
    elif source == "url":
        p = url_download_path(entry)
        if p.is_file():
            return p, "downloaded"
    elif source == "bundled":
        p = bundled_path(entry)
        if p is not None and p.is_file():
            return p, "bundled"
    elif source == "embedded":
        p = EMBEDDED_DIR / entry.filename
        if p.exists():
            return p, "embedded"
    return None, "missing"


# --- the record of downloaded hashes -------------------------------------------------------------


def read_records() -> dict[str, dict[str, Any]]:
    try:
        data = json.loads(records_file().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_record(name: str, record: dict[str, Any]) -> None:
    """Remember the hash a download got (unpinned entries: what `weights verify` compares to)."""
    from hypernst_cli.io import atomic_write_text

    records = read_records()
    records[name] = record
    atomic_write_text(records_file(), json.dumps(records, indent=2, sort_keys=True) + "\n")
