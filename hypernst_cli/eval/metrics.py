"""The metric interface the evaluation runner calls, and where backbone weights are found.

A metric compares an output image with a reference image (the content for LPIPS and identity, the
style for SIFID and colour statistics; none for face detection). Every value is a float, or
``None`` for "n/a" (weights missing, no face found): the report never invents a number.

A metric whose weights are missing is still constructed, with ``available = False`` and a
``missing_hint`` naming the ``hypernst download`` that fixes it; the runner skips it and the report
prints n/a in its columns.
"""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from hypernst_cli.errors import WeightsError, WeightsIntegrityError

if TYPE_CHECKING:
    import torch

Reference = Literal["content", "style", "none"]

#: the summary key of the share of pairs whose output is closer to the style's colours than
#: the unchanged content (runner.add_colour_win_rate)
COLOUR_WIN = "colour_win_pct"


@dataclass(frozen=True)
class Column:
    """One column of the summary table: ``key`` in the summary dict, its header, its format."""

    key: str
    header: str
    fmt: str = "{:.4f}"

    def format(self, value: float | None) -> str:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return "n/a"
        return self.fmt.format(value)


class Metric:
    """Base class: subclasses set ``name``/``title``/``reference`` and implement ``__call__``."""

    name: str = "metric"
    title: str = "Metric"
    reference: Reference = "content"
    fmt: str = "{:.4f}"
    lower_is_better: bool = True
    paper: bool = False  # one of the paper's Table 1 columns (placed first in reports)

    def __init__(self) -> None:
        self.available: bool = True
        self.missing_hint: str | None = None
        # Shown next to the column in reports: e.g. that a random backbone was injected.
        self.note: str | None = None

    def __call__(self, reference: np.ndarray, output: np.ndarray) -> float | None:
        raise NotImplementedError

    def evaluate(self, reference: np.ndarray, output: np.ndarray) -> dict[str, float | None]:
        """Every per-pair value this metric produces (CSV columns), keyed by column name."""
        if not self.available:
            return {key: None for key in self.row_keys()}
        return {self.name: self(reference, output)}

    def row_keys(self) -> list[str]:
        return [self.name]

    def columns(self) -> list[Column]:
        """Columns of the summary table."""
        return [Column(self.name, self.title, self.fmt)]

    def summarize(self, rows: list[dict[str, Any]]) -> dict[str, float | None]:
        """Per-method summary values from per-pair rows (default: mean over non-n/a values)."""
        return {self.name: mean_or_none(r.get(self.name) for r in rows)}

    def to(self, device: torch.device | str) -> Metric:  # noqa: ARG002 - numpy metrics ignore it
        return self

    def prepare(self) -> None:
        """Load whatever the metric needs (called once by the runner before timing starts)."""


def mean_or_none(values: Any) -> float | None:
    vals = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    return float(np.mean(vals)) if vals else None


def array_key(image: np.ndarray) -> str:
    """Content hash of an array, for per-process caches of per-image features."""
    h = hashlib.sha1(np.ascontiguousarray(image).data)
    h.update(repr((image.shape, image.dtype.str)).encode())
    return h.hexdigest()


def check_image(image: np.ndarray, what: str = "image") -> np.ndarray:
    arr = np.asarray(image)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
        raise TypeError(
            f"{what}: expected an RGB uint8 array (H, W, 3), got {arr.dtype} {arr.shape}"
        )
    return arr


# --- backbone weights ---------------------------------------------------------------------------


def download_hint(entry_name: str, hub_filename: str) -> str:
    return (
        f"weights not found locally: run `hypernst download {entry_name}`, "
        f"or put {hub_filename} in {hub_checkpoint_dir()}"
    )


def hub_checkpoint_dir() -> Path:
    """torch hub's checkpoint folder (where torchvision and pytorch-fid keep their downloads)."""
    try:
        import torch

        return Path(torch.hub.get_dir()) / "checkpoints"
    except ImportError:  # pragma: no cover - torch is a dependency
        home = os.environ.get(
            "TORCH_HOME", os.path.join(os.path.expanduser("~"), ".cache", "torch")
        )
        return Path(home) / "hub" / "checkpoints"


def take_tensor(state: dict, key: str, param: Any, path: Any, what: str) -> Any:
    """``state[key]`` checked against the module parameter it will fill (exit 3 when it is
    missing or mis-shaped), in the parameter's dtype."""
    if key not in state:
        raise WeightsIntegrityError(f"{path}: '{key}' is missing: not {what}",
                                    hint="delete the file and download it again")
    if tuple(state[key].shape) != tuple(param.shape):
        raise WeightsIntegrityError(
            f"{path}: '{key}' has shape {tuple(state[key].shape)}, expected {tuple(param.shape)}"
        )
    return state[key].to(param.dtype)


def resolve_backbone(metric: Any, weights: str | Path | None, entry_name: str, hub_filename: str,
                     random_note: str) -> None:
    """Set a backbone metric's ``weights_path`` / ``note`` / ``available`` / ``missing_hint``.

    ``weights``: "random" (tests: exercise the code), a file path, or None (look for the local
    copy: registry entry, then torch hub's cache; missing makes the metric unavailable, n/a).
    """
    metric.weights_path = None
    if weights == "random":
        metric.note = random_note
    elif weights is not None:
        metric.weights_path = Path(weights)
        if not metric.weights_path.is_file():
            from hypernst_cli.errors import WeightsNotFoundError

            raise WeightsNotFoundError(f"{weights}: no such weights file")
    else:
        metric.weights_path = find_backbone(entry_name, hub_filename)
        if metric.weights_path is None:
            metric.available = False
            metric.missing_hint = download_hint(entry_name, hub_filename)


def find_backbone(entry_name: str, hub_filename: str) -> Path | None:
    """A local copy of a backbone file: the project's registry entry, then torch hub's cache.

    Never touches the network. A registry without the entry (or an unreadable registry) is not
    an error: the hub cache is still searched.
    """
    try:
        from hypernst_cli.weights.registry import load_registry, locate

        entry = load_registry().get(entry_name)
        if entry is not None:
            path, _status = locate(entry)
            if path is not None and path.is_file():
                return path
    except (WeightsError, ImportError, OSError, ValueError):
        pass
    cached = hub_checkpoint_dir() / hub_filename
    return cached if cached.is_file() else None


def load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Tensors of a weights file: safetensors, or a plain torch pickle read with weights_only."""
    import torch

    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise WeightsIntegrityError(
            f"{path}: cannot read weights ({type(exc).__name__}: {exc})",
            hint="delete the file and download it again",
        ) from exc
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsIntegrityError(f"{path}: not a state dict of tensors")
    return state


def default_metrics(*, parser: Any = None) -> list[Metric]:
    """The report's metrics: LPIPS (alex, vgg), SIFID, identity, colour distance, face detection.

    LPIPS and SIFID load their backbones from local files only; when absent they are unavailable
    (n/a with a download hint). ``parser`` (image -> 0/1/2 region mask) adds per-region colour
    distances.
    """
    from hypernst_cli.eval.colour import ColourMetric
    from hypernst_cli.eval.identity import FaceDetectionMetric, IdentityMetric
    from hypernst_cli.eval.lpips_metric import LPIPSMetric
    from hypernst_cli.eval.sifid import SIFIDMetric

    return [
        LPIPSMetric("alex"),
        LPIPSMetric("vgg"),
        SIFIDMetric(),
        IdentityMetric(),
        ColourMetric(parser=parser),
        FaceDetectionMetric(),
    ]
