"""Fitting edit directions in W+ (InterFaceGAN: Shen et al., "Interpreting the Latent Space of GANs
for Semantic Face Editing", CVPR 2020).

An attribute that a linear boundary separates in latent space is edited by moving along the unit
normal ``n`` of that boundary: ``w' = w + alpha * n``. ``fit_direction`` finds ``n`` from latents
and labels:

- ``kind="classification"``: a linear SVM (L2-regularised squared hinge, as liblinear's default
  linear SVM) on binary labels, with C = 0.03 by default (InterFaceGAN: 1). With a few hundred
  encoded faces in a 256-dimensional W+, a weakly regularised SVM separates them along directions
  in which the latents barely vary and which the generator hardly renders (for the compact model,
  C = 1 gave a smile normal along which the faces' latents spread 0.037, against 0.10 with C = 0.03
  at the same held-out accuracy, and the smile edit failed the landmark check on more faces). Continuous labels (a score such as age or a landmark measure) are
  first cut at their extremes as InterFaceGAN does: the bottom ``extremes`` fraction is the
  negative class, the top fraction the positive one, the middle is left out.
- ``kind="regression"``: ridge regression of the labels; ``n`` is the unit weight vector.

Either way ``n`` points towards larger labels. Features are the mean of the W+ layers
(``layers="mean"``, a [1, D] direction applied to every layer) or all layers flattened
(``layers="flat"``, an [L, D] direction of unit norm over all its entries). A random held-out part
of the samples (``test_fraction``) measures the boundary: accuracy on its extremes, and the
Pearson correlation of the projection ``<w, n>`` with the labels.

``orthogonalize`` gives InterFaceGAN's conditional edit: ``n1 - (n1 . n2) n2`` (and, for several
conditions, the projection onto the complement of their span), so editing one attribute leaves
the projections on the others unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

KINDS = ("classification", "regression")
LAYER_MODES = ("mean", "flat")


@dataclass
class DirectionFit:
    """A fitted direction and how well it separates / predicts the held-out labels."""

    direction: torch.Tensor  # unit norm; [1, D] (mean, or 2-D latents) or [L, D] (flat)
    kind: str
    layers: str
    n_train: int  # samples the boundary was fitted on (for classification: the extremes)
    n_test: int  # held-out samples
    accuracy: float | None = None  # held-out classification accuracy (on the held-out extremes)
    correlation: float | None = None  # held-out Pearson r of <w, n> with the labels
    thresholds: tuple[float, float] | None = None  # (low, high) cuts of continuous labels
    orthogonal_to: list[str] = field(default_factory=list)

    def metadata(self) -> dict[str, Any]:
        """JSON-ready description (stored with the direction)."""

        def r(x: float | None) -> float | None:
            return None if x is None else round(float(x), 5)

        return {
            "kind": self.kind,
            "method": "linear-svm" if self.kind == "classification" else "ridge",
            "layers": self.layers,
            "shape": list(self.direction.shape),
            "space": "w+" if self.direction.shape[0] > 1 else "w",
            "n_train": self.n_train,
            "n_test": self.n_test,
            "heldout_accuracy": r(self.accuracy),
            "heldout_correlation": r(self.correlation),
            "thresholds": None if self.thresholds is None else [r(t) for t in self.thresholds],
            "orthogonal_to": list(self.orthogonal_to),
        }


def _features(latents: Any, layers: str) -> tuple[np.ndarray, tuple[int, ...]]:
    """[N, F] float64 features and the shape of the direction they give."""
    x = latents.detach().cpu().double().numpy() if isinstance(latents, torch.Tensor) \
        else np.asarray(latents, dtype=np.float64)
    if layers not in LAYER_MODES:
        raise ValueError(f"unknown layers mode '{layers}' (use {' or '.join(LAYER_MODES)})")
    if x.ndim == 2:
        return x, (1, x.shape[1])
    if x.ndim != 3:
        raise ValueError(f"latents must be [N, D] or [N, L, D], got shape {tuple(x.shape)}")
    if layers == "mean":
        return x.mean(axis=1), (1, x.shape[2])
    return x.reshape(x.shape[0], -1), (x.shape[1], x.shape[2])


def linear_svm(x: np.ndarray, y: np.ndarray, *, c: float = 1.0, max_iter: int = 1000) -> tuple[np.ndarray, float]:
    """(w, b) of a linear SVM: min 1/2 |w|^2 + C * sum max(0, 1 - y (w.x + b))^2, y in {-1, +1}.

    The squared hinge is differentiable, so L-BFGS solves it; the features should be of unit
    scale (``fit_direction`` rescales them by one global factor, which keeps the normal's
    direction).
    """
    from scipy.optimize import minimize

    xs = np.ascontiguousarray(x, dtype=np.float64)
    ys = np.asarray(y, dtype=np.float64)
    d = xs.shape[1]

    def loss_and_grad(p: np.ndarray) -> tuple[float, np.ndarray]:
        w, b = p[:d], p[d]
        margin = np.maximum(0.0, 1.0 - ys * (xs @ w + b))
        loss = 0.5 * float(w @ w) + c * float(margin @ margin)
        coef = -2.0 * c * margin * ys  # d loss / d (w.x + b) per sample
        return loss, np.concatenate([w + xs.T @ coef, [coef.sum()]])

    result = minimize(loss_and_grad, np.zeros(d + 1), jac=True, method="L-BFGS-B",
                      options={"maxiter": max_iter, "gtol": 1e-9, "ftol": 1e-14})
    return result.x[:d].copy(), float(result.x[d])


def ridge(x: np.ndarray, y: np.ndarray, *, l2: float = 1e-2) -> tuple[np.ndarray, float]:
    """(w, b) minimising |X w + b - y|^2 + l2 * N * |w|^2 (the dual form when D > N)."""
    xm, ym = x.mean(0), y.mean()
    xc, yc = x - xm, y - ym
    n, d = xc.shape
    lam = l2 * n
    if n >= d:
        w = np.linalg.solve(xc.T @ xc + lam * np.eye(d), xc.T @ yc)
    else:
        w = xc.T @ np.linalg.solve(xc @ xc.T + lam * np.eye(n), yc)
    return w, float(ym - xm @ w)


def pearson(a: np.ndarray, b: np.ndarray) -> float | None:
    a, b = np.asarray(a, float) - np.mean(a), np.asarray(b, float) - np.mean(b)
    denom = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / denom) if denom > 0 and a.size >= 2 else None


def _is_binary(y: np.ndarray) -> bool:
    return set(np.unique(y).tolist()) <= {0.0, 1.0}


def _split(n: int, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.random.default_rng(seed).permutation(n)
    n_test = int(round(n * test_fraction))
    return order[n_test:], order[:n_test]


def fit_direction(
    latents: Any,
    labels: Any,
    kind: str = "classification",
    *,
    layers: str = "mean",
    extremes: float = 0.3,
    test_fraction: float = 0.2,
    c: float = 0.03,
    l2: float = 1e-2,
    seed: int = 0,
) -> DirectionFit:
    """The InterFaceGAN direction of ``labels`` in the latent space (see the module docs).

    ``latents``: [N, D] or [N, L, D]; ``labels``: [N] (0/1, or continuous). ``extremes``: the
    fraction kept at each end of continuous labels for classification. ``c``: the SVM's C (on
    features rescaled to unit variance); ``l2``: ridge's penalty per sample.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown kind '{kind}' (use {' or '.join(KINDS)})")
    if not 0.0 < extremes <= 0.5:
        raise ValueError(f"extremes must be in (0, 0.5], got {extremes}")
    if not 0.0 <= test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in [0, 1), got {test_fraction}")
    x, shape = _features(latents, layers)
    y = (labels.detach().cpu().double().numpy() if isinstance(labels, torch.Tensor)
         else np.asarray(labels, dtype=np.float64)).reshape(-1)
    if y.shape[0] != x.shape[0]:
        raise ValueError(f"{x.shape[0]} latents but {y.shape[0]} labels")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError("latents and labels must be finite")
    train, test = _split(len(y), test_fraction, seed)
    # one global scale: the SVM's C and ridge's penalty then mean the same for any latent space,
    # and a scalar rescaling leaves the normal's direction unchanged
    centre = x[train].mean(0)
    scale = float(x[train].std()) or 1.0
    z = (x - centre) / scale

    thresholds = None
    if kind == "classification":
        if _is_binary(y):
            cls = y
            lo_cut, hi_cut = 0.5, 0.5
        else:
            lo_cut = float(np.quantile(y[train], extremes))
            hi_cut = float(np.quantile(y[train], 1.0 - extremes))
            thresholds = (lo_cut, hi_cut)
            cls = np.where(y >= hi_cut, 1.0, np.where(y <= lo_cut, 0.0, np.nan))
        # the middle of a continuous label is ambiguous: leave it out (and ties of both cuts)
        keep = np.isfinite(cls) & ~((y >= hi_cut) & (y <= lo_cut)) if thresholds else np.isfinite(cls)
        fit_idx = train[keep[train]]
        pos, neg = int((cls[fit_idx] == 1).sum()), int((cls[fit_idx] == 0).sum())
        if pos == 0 or neg == 0:
            raise ValueError(f"classification needs both classes among the training samples "
                             f"(found {pos} positive, {neg} negative)")
        w, b = linear_svm(z[fit_idx], 2.0 * cls[fit_idx] - 1.0, c=c)
        n_fit = len(fit_idx)
    else:
        if len(train) < 2 or np.ptp(y[train]) == 0:
            raise ValueError("regression needs at least two training samples with different labels")
        w, b = ridge(z[train], y[train], l2=l2)
        n_fit = len(train)

    norm = float(np.linalg.norm(w))
    if not np.isfinite(norm) or norm == 0.0:
        raise ValueError("the fit found no direction (the labels do not depend on the latents)")
    n = w / norm

    accuracy = correlation = None
    if len(test):
        proj = z[test] @ n
        # two points always correlate perfectly: say nothing rather than 1.0
        correlation = pearson(proj, y[test]) if len(test) >= 3 and np.ptp(y[test]) > 0 else None
        if kind == "classification":
            held = test[keep[test]]
            if len(held):
                pred = (z[held] @ w + b) > 0
                accuracy = float((pred == (cls[held] == 1)).mean())
    direction = torch.from_numpy(n.reshape(shape)).float()
    return DirectionFit(direction=direction, kind=kind, layers=layers, n_train=n_fit,
                        n_test=len(test), accuracy=accuracy, correlation=correlation,
                        thresholds=thresholds)


def orthogonalize(direction: torch.Tensor, *others: torch.Tensor) -> torch.Tensor:
    """``direction`` with the span of ``others`` projected out, renormalised to unit norm.

    For one other (unit) direction this is InterFaceGAN's conditional edit n1 - (n1 . n2) n2.
    """
    v = direction.double().reshape(-1)
    basis: list[torch.Tensor] = []
    for other in others:
        if tuple(other.shape) != tuple(direction.shape):
            raise ValueError(f"cannot orthogonalise a {tuple(direction.shape)} direction against a "
                             f"{tuple(other.shape)} one: fit both with the same layers mode")
        o = other.double().reshape(-1)
        for q in basis:  # Gram-Schmidt: an orthonormal basis of the conditions' span
            o = o - (o @ q) * q
        size = float(o.norm())
        if size > 1e-8:
            basis.append(o / size)
    for q in basis:
        v = v - (v @ q) * q
    size = float(v.norm())
    if size < 1e-8:
        raise ValueError("the direction lies in the span of the ones it is made orthogonal to")
    return (v / size).reshape(direction.shape).to(direction.dtype)


# --- labelled latents from photos -----------------------------------------------------------------

#: attribute -> (label it is fitted on, where the label comes from)
ATTRIBUTES: dict[str, tuple[str, str]] = {
    "age": ("age", "utkface-filename"),
    "smile": ("smile", "dlib68-smile-measure"),
    "pose": ("yaw", "dlib68-yaw-measure"),
}

_UTKFACE_AGE = re.compile(r"^(\d{1,3})_")


def utkface_age(path: str | Path) -> int | None:
    """The age in a UTKFace file name (``age_gender_race_date.jpg.chip.jpg``), None if absent."""
    match = _UTKFACE_AGE.match(Path(path).name)
    return int(match.group(1)) if match else None


@dataclass
class Sample:
    """One encoded photo and its labels (None: not available for this photo)."""

    path: Path
    wplus: torch.Tensor  # [L, D]
    labels: dict[str, float | None]


@dataclass
class EncodedSet:
    samples: list[Sample] = field(default_factory=list)
    skipped: dict[str, list[str]] = field(default_factory=dict)  # reason -> "path: error"

    def skip(self, reason: str, what: str) -> None:
        self.skipped.setdefault(reason, []).append(what)

    def skip_counts(self) -> dict[str, int]:
        return {reason: len(items) for reason, items in sorted(self.skipped.items())}


def _skip_reason(exc: Exception) -> str:
    from hypernst_cli.errors import ImageReadError, NoFaceError

    if isinstance(exc, NoFaceError):
        return "no_face"
    if isinstance(exc, ImageReadError):
        return "unreadable"
    return "invalid"


def encode_photos(
    paths: Sequence[Path],
    encoder: Any,
    faces: Any,
    resolution: int,
    device: torch.device,
    *,
    age_from_filename: bool = False,
    landmarks: bool = True,
    batch_size: int = 16,
    on_item: Callable[[Path], None] | None = None,
) -> EncodedSet:
    """Align each photo's largest face, invert it with e4e and label it.

    Labels: ``age`` from the UTKFace file name (with ``age_from_filename``), ``smile`` and ``yaw``
    from the 68 landmarks of the aligned crop (the detector's own points when the face backend is
    dlib, else dlib run on the crop). Unreadable photos and photos without a face are skipped and
    recorded in ``EncodedSet.skipped``; ``on_item`` is called after each photo (progress).
    """
    from hypernst_cli.errors import InputError
    from hypernst_cli.eval.landmarks import find_landmarks, measure_landmarks
    from hypernst_cli.io import load_image
    from hypernst_cli.pipeline.core import invert
    from hypernst_cli.io.tensors import to_tensor

    out = EncodedSet()
    pending: list[tuple[Path, torch.Tensor, dict[str, float | None]]] = []

    def flush() -> None:
        if not pending:
            return
        batch = torch.stack([image for _, image, _ in pending]).to(device)
        with torch.inference_mode():
            wplus = invert(encoder, batch).float().cpu()
        out.samples.extend(Sample(path, w.clone(), labels)
                           for (path, _, labels), w in zip(pending, wplus))
        pending.clear()

    for path in paths:
        try:
            photo = load_image(path)
            aligned = faces.align_largest(photo, resolution, source=path)
        except InputError as exc:
            out.skip(_skip_reason(exc), exc.one_line())
        else:
            labels: dict[str, float | None] = {}
            if age_from_filename:
                age = utkface_age(path)
                labels["age"] = None if age is None else float(age)
            if landmarks:
                lm = aligned.landmarks if len(aligned.landmarks) == 68 else \
                    find_landmarks(aligned.image, box="aligned")
                try:
                    labels.update(measure_landmarks(lm) if lm is not None else {})
                except ValueError:  # degenerate points: no landmark labels for this photo
                    pass
                labels.setdefault("smile", None)
                labels.setdefault("yaw", None)
            pending.append((Path(path), to_tensor(aligned.image)[0], labels))
            if len(pending) >= batch_size:
                flush()
        if on_item is not None:
            on_item(Path(path))
    flush()
    return out


#: labelled photos a direction needs by default: with fewer, its held-out part is a photo or two
#: and the direction mostly fits those few faces' identities (held-out accuracy 0 on 2 faces)
MIN_PHOTOS = 10


def fit_attributes(
    encoded: EncodedSet,
    attributes: Sequence[str],
    *,
    kind: str = "classification",
    layers: str = "mean",
    extremes: float = 0.3,
    test_fraction: float = 0.2,
    conditions: Mapping[str, Sequence[str]] | None = None,
    c: float = 0.03,
    seed: int = 0,
    min_photos: int = MIN_PHOTOS,
) -> tuple[dict[str, DirectionFit], dict[str, str]]:
    """Fit each attribute on the samples that have its label; then make the ``conditions``
    (attribute -> attributes to keep unchanged) orthogonal. Returns (fits, failures: name -> why).

    An attribute with fewer than ``min_photos`` labelled photos is a failure, not a fit.
    """
    fits: dict[str, DirectionFit] = {}
    failures: dict[str, str] = {}
    for name in attributes:
        label, _ = ATTRIBUTES[name]
        have = [s for s in encoded.samples if s.labels.get(label) is not None]
        if len(have) < max(2, min_photos):
            failures[name] = (f"only {len(have)} photo(s) have a {label} label; at least "
                              f"{max(2, min_photos)} are needed (--min-photos)")
            continue
        latents = torch.stack([s.wplus for s in have])
        values = np.array([s.labels[label] for s in have], dtype=np.float64)
        try:
            fits[name] = fit_direction(latents, values, kind, layers=layers, extremes=extremes,
                                       test_fraction=test_fraction, c=c, seed=seed)
        except ValueError as exc:
            failures[name] = str(exc)
    for name, others in (conditions or {}).items():
        if name not in fits:
            continue
        basis = [o for o in others if o in fits and o != name]
        if basis:
            fit = fits[name]
            fit.direction = orthogonalize(fit.direction, *(fits[o].direction for o in basis))
            fit.orthogonal_to = basis
    return fits, failures


def direction_metadata(name: str, fit: DirectionFit, encoded: EncodedSet) -> dict[str, Any]:
    """What is stored with a fitted direction: the fit's numbers, its label and where it came from."""
    label, source = ATTRIBUTES.get(name, (name, "given"))
    values = [s.labels[label] for s in encoded.samples if s.labels.get(label) is not None]
    meta = {"label": label, "label_source": source, "n": len(values), **fit.metadata()}
    if values:
        meta["label_range"] = [round(float(min(values)), 5), round(float(max(values)), 5)]
    return meta


def save_direction_file(path: str | Path, name: str, direction: torch.Tensor,
                        meta: dict[str, Any], source: dict[str, Any] | None = None) -> Path:
    """One direction as a model file with a ``directions`` network (``hypernst edit -d FILE``)."""
    from hypernst_cli.weights.checkpoint import save_model_file

    extra = {"directions": {name: meta}}
    if source:
        extra["source_model"] = source
    return save_model_file(path, {"directions": {name: direction.float().contiguous()}}, {}, extra)


def check_target(model: str | Path, generator_fingerprint: str | None = None) -> Any:
    """The model folder directions will be added to (``add_to_model``), loaded and checked: it
    must have a generator, the one the directions were fitted with when a fingerprint is given."""
    from hypernst_cli.errors import UsageError
    from hypernst_cli.pipeline.models import fingerprint
    from hypernst_cli.weights.checkpoint import load_model_folder

    folder = load_model_folder(model)
    generator = folder.networks.get("generator")
    if generator is None:
        raise UsageError(f"{model}: not a model with a generator",
                         hint="--into takes the model folder the directions were fitted with")
    if generator_fingerprint is not None and fingerprint(generator) != generator_fingerprint:
        raise UsageError(f"{model}: its generator differs from the one the directions were fitted "
                         "with", hint="fit with --weights pointing at the same model")
    return folder


def add_to_model(model: str | Path, directions: Mapping[str, torch.Tensor],
                 meta: Mapping[str, dict[str, Any]], *,
                 generator_fingerprint: str | None = None) -> Path:
    """Add (or replace) named directions in a model's ``directions`` network, rewriting its
    safetensors file atomically. With ``generator_fingerprint``, refuse a model whose generator
    differs from the one the directions were fitted for."""
    from hypernst_cli.errors import UsageError
    from hypernst_cli.weights.checkpoint import MODEL_FILE, save_model_file

    folder = check_target(model, generator_fingerprint)
    target = folder.path / MODEL_FILE if folder.path.is_dir() else folder.path
    style_dim = int(folder.model_config().generator.style_dim)
    for name, d in directions.items():
        if d.shape[-1] != style_dim:
            raise UsageError(f"direction '{name}' has {d.shape[-1]} dimensions, the model's "
                             f"latents {style_dim}")
    networks = dict(folder.networks)
    networks["directions"] = {**networks.get("directions", {}),
                              **{k: v.float().contiguous() for k, v in directions.items()}}
    extra = dict(folder.extra)
    extra["directions"] = {**(extra.get("directions") or {}), **dict(meta)}
    save_model_file(target, networks, folder.config, extra)
    return target
