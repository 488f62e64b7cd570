"""The weights registry: ``weights.toml`` entries and where each file is found locally.

Resolution order wherever a model is needed (shown by ``hypernst info``):
``--weights PATH``, then downloaded files (the Hugging Face cache), then the embedded model that
ships inside the package.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypernst_cli.errors import WeightsError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

PACKAGE_DIR = Path(__file__).resolve().parent.parent
EMBEDDED_DIR = PACKAGE_DIR / "weights" / "embedded"
REGISTRY_FILE = PACKAGE_DIR / "weights.toml"

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
    sha256: str = ""  # empty: unpinned (nobody here could verify the upstream hash)
    size: int = 0
    license: str = ""
    converter: str = ""  # how to turn the upstream format into ours (``hypernst convert``)
    description: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def pinned(self) -> bool:
        return bool(self.sha256)

    @property
    def source(self) -> str:
        if self.embedded:
            return "embedded"
        if self.repo_id:
            return f"hf://{self.repo_id}/{self.filename}@{self.revision}"
        return self.url or "?"


def load_registry(path: str | Path | None = None) -> dict[str, WeightsEntry]:
    """Parse ``weights.toml`` into entries keyed by name."""
    file = Path(path) if path else REGISTRY_FILE
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise WeightsError(f"{file}: weights registry not found", hint="reinstall hypernst") from exc
    except tomllib.TOMLDecodeError as exc:
        raise WeightsError(f"{file}: invalid TOML ({exc})") from exc
    entries: dict[str, WeightsEntry] = {}
    known = set(WeightsEntry.__dataclass_fields__)
    for raw in data.get("weights", []):
        if "name" not in raw or "kind" not in raw or "filename" not in raw:
            raise WeightsError(f"{file}: every [[weights]] entry needs name, kind and filename")
        fields = {k: v for k, v in raw.items() if k in known}
        fields["extra"] = {k: v for k, v in raw.items() if k not in known}
        configs = raw.get("configs", raw.get("config", ()))
        fields["configs"] = (configs,) if isinstance(configs, str) else tuple(configs)
        entry = WeightsEntry(**fields)
        if entry.kind not in KINDS:
            raise WeightsError(f"{file}: entry '{entry.name}' has unknown kind '{entry.kind}'")
        entries[entry.name] = entry
    return entries


def cached_download_path(entry: WeightsEntry) -> Path | None:
    """The file in the Hugging Face cache, if it was downloaded (never touches the network)."""
    if not entry.repo_id:
        return None
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(entry.repo_id, entry.filename, revision=entry.revision)
    return Path(found) if isinstance(found, str) else None


def locate(entry: WeightsEntry) -> tuple[Path | None, str]:
    """Where an entry's file is on this machine: (path, 'downloaded' | 'embedded' | 'missing')."""
    cached = cached_download_path(entry)
    if cached is not None and cached.is_file():
        return cached, "downloaded"
    if entry.embedded:
        p = EMBEDDED_DIR / entry.filename
        if p.is_file():
            return p, "embedded"
    return None, "missing"
