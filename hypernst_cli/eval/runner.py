"""The evaluation runner: stylize content x style pairs with each method, time it, measure it.

A method is any callable ``(content, style) -> output`` on RGB uint8 arrays, so the real pipeline
and the baselines are evaluated the same way. Per pair and method the runner records:

- ``model_s``: wall time of the method call (what the paper's "Time (s/img)" column reports), after
  ``warmup`` untimed calls per method so one-off loading is not counted; on CUDA the device is
  synchronised before the clock stops;
- ``total_s``: end to end: reading and decoding the two files (plus ``align`` for the content),
  the method call, and encoding/writing the output PNG;
- every metric's values (metric time is not counted).

A method that raises a ``HypernstError`` on one pair (no face, bad input) fails that pair only, and
so does an image that cannot be read (or aligned): it fails every method on its pairs. Failures are
recorded and reported, and the batch goes on.
"""

from __future__ import annotations

import io
import random
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from hypernst_cli.errors import HypernstError, InputError, UsageError
from hypernst_cli.eval.metrics import COLOUR_WIN, Metric, check_image, mean_or_none

if TYPE_CHECKING:
    import torch

Method = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclass
class EvalReport:
    """Everything a report shows; ``files`` lists what was written."""

    methods: list[str]
    metrics: list[Metric]
    contents: list[str]
    styles: list[str]
    pairs: list[tuple[str, str]]
    rows: list[dict[str, Any]]  # one per (method, pair): metric values, times, error
    summary: dict[str, dict[str, float | None]]  # method -> column key -> value
    device: str
    seed: int
    sampled: bool
    warmup: int
    #: per method, how it ran (the model and its inference settings); shown in report.md
    settings: dict[str, dict[str, Any]] = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def failures(self) -> list[dict[str, Any]]:
        return [r for r in self.rows if r.get("error")]

    def to_dict(self) -> dict[str, Any]:
        return {
            "device": self.device,
            "seed": self.seed,
            "sampled": self.sampled,
            "warmup": self.warmup,
            "settings": self.settings,
            "contents": self.contents,
            "styles": self.styles,
            "pairs": [list(p) for p in self.pairs],
            "methods": self.methods,
            "metrics": [
                {
                    "name": m.name,
                    "title": m.title,
                    "reference": m.reference,
                    "available": m.available,
                    "missing_hint": m.missing_hint,
                    "note": m.note,
                    "source": getattr(m, "source", None),
                }
                for m in self.metrics
            ],
            "summary": self.summary,
            "failures": [
                {k: r[k] for k in ("method", "content", "style", "error")} for r in self.failures
            ],
            "files": {k: str(v) for k, v in self.files.items()},
        }


class EvalRunner:
    """Runs methods over content x style pairs and computes ``metrics`` on ``device``.

    ``log``: called with one-line progress messages (e.g. the CLI's info printer).
    ``save_outputs``: also write each output to ``out_dir/outputs/<method>/<content>__<style>.png``.
    """

    def __init__(
        self,
        metrics: Sequence[Metric] | None = None,
        device: str | torch.device = "cpu",
        *,
        warmup: int = 1,
        save_outputs: bool = True,
        cell: int = 128,
        log: Callable[[str], None] | None = None,
    ) -> None:
        if metrics is None:
            from hypernst_cli.eval.metrics import default_metrics

            metrics = default_metrics()
        self.metrics = list(metrics)
        self.device = device
        self.warmup = max(0, int(warmup))
        self.save_outputs = save_outputs
        self.cell = cell
        self.log = log or (lambda _msg: None)

    def run(
        self,
        contents: Sequence[Path],
        styles: Sequence[Path],
        methods: dict[str, Method],
        pairs: int | None = None,
        seed: int = 0,
        out_dir: Path | str = "eval-report",
        *,
        align: Callable[[np.ndarray], np.ndarray] | None = None,
        settings: dict[str, dict[str, Any]] | None = None,
    ) -> EvalReport:
        """Evaluate every method on all content x style pairs (or a seeded sample of ``pairs``),
        write the report files to ``out_dir`` and return the report. ``settings``: per method,
        how it ran (model, strength, detail, palette, ...), written into the report."""
        from hypernst_cli.eval.report import unavailable_lines, write_report

        contents, styles = [Path(p) for p in contents], [Path(p) for p in styles]
        if not contents:
            raise UsageError("no content images to evaluate", hint="give a folder of face photos")
        if not styles:
            raise UsageError("no style images to evaluate", hint="give a folder of style images")
        if not methods:
            raise UsageError("no methods to evaluate")
        if pairs is not None and pairs < 1:
            raise UsageError(f"--pairs must be at least 1, got {pairs}")
        out_dir = Path(out_dir)
        c_names, s_names = unique_names(contents), unique_names(styles)
        m_names = list(methods)
        chosen = select_pairs(len(contents), len(styles), pairs, seed)
        sampled = len(chosen) < len(contents) * len(styles)
        device_text = self._prepare_metrics()
        for line in unavailable_lines(self.metrics):
            self.log(line)

        images = _ImageCache(contents, styles, align)
        thumbs: dict[str, dict[tuple[int, int], np.ndarray]] = {m: {} for m in m_names}
        warmed = False
        rows: list[dict[str, Any]] = []
        for n, (ci, si) in enumerate(chosen, 1):
            self.log(f"pair {n}/{len(chosen)}: {c_names[ci]} x {s_names[si]}")
            try:
                content, c_load = images.content(ci)
                style, s_load = images.style(si)
            except InputError as exc:
                # an unreadable (or face-less) image fails its pairs only; device or weights
                # errors would fail every pair alike, so they still stop the run
                error = exc.one_line()
                self.log(f"  failed: {error}")
                rows += [self._blank_row(name, c_names[ci], s_names[si], error) for name in methods]
                continue
            if not warmed:  # on the first pair that loads, so a bad first file cannot stop it
                self._warm_up(methods, content, style)
                warmed = True
            for name, method in methods.items():
                row = self._run_one(name, method, content, style, c_names[ci], s_names[si], out_dir)
                if row.get("error") is None:
                    row["total_s"] += c_load + s_load
                    thumbs[name][(ci, si)] = _thumbnail(row.pop("_output"), self.cell)
                rows.append(row)

        summary = {m: self._summarize([r for r in rows if r["method"] == m]) for m in m_names}
        add_colour_win_rate(summary, rows)
        report = EvalReport(
            methods=m_names,
            metrics=self.metrics,
            contents=c_names,
            styles=s_names,
            pairs=[(c_names[c], s_names[s]) for c, s in chosen],
            rows=rows,
            summary=summary,
            device=device_text,
            seed=seed,
            sampled=sampled,
            warmup=self.warmup,
            settings=dict(settings or {}),
        )
        sheets = {m: _sheet(thumbs[m], images, c_names, s_names, self.cell) for m in m_names}
        report.files = write_report(report, out_dir, sheets=sheets, cell=self.cell)
        return report

    # --- steps --------------------------------------------------------------------------------

    def _prepare_metrics(self) -> str:
        """Resolve the device, move metrics there and load their networks; returns the device
        in words for the report."""
        import torch

        from hypernst_cli.device import describe_device, resolve_device

        if not isinstance(self.device, torch.device):
            self.device = resolve_device(str(self.device))
        for m in self.metrics:
            if m.available:
                m.to(self.device)
                m.prepare()
        return describe_device(self.device)

    def _warm_up(self, methods: dict[str, Method], content: np.ndarray, style: np.ndarray) -> None:
        for _ in range(self.warmup):
            for method in methods.values():
                try:
                    method(content.copy(), style.copy())
                except HypernstError:
                    pass  # this pair's failure is recorded when it is run for real

    def _sync(self) -> None:
        dev = self.device
        if getattr(dev, "type", "cpu") == "cuda":
            import torch

            torch.cuda.synchronize(dev)

    def _blank_row(self, name: str, c_name: str, s_name: str, error: str | None) -> dict[str, Any]:
        """A row without values: where every row starts, and all a pair that could not load gets."""
        row: dict[str, Any] = {"method": name, "content": c_name, "style": s_name}
        row.update({k: None for m in self.metrics for k in m.row_keys()})
        row.update({"model_s": None, "total_s": None, "output": None, "error": error})
        return row

    def _run_one(
        self,
        name: str,
        method: Method,
        content: np.ndarray,
        style: np.ndarray,
        c_name: str,
        s_name: str,
        out_dir: Path,
    ) -> dict[str, Any]:
        row = self._blank_row(name, c_name, s_name, None)
        try:
            t0 = time.perf_counter()
            output = method(content.copy(), style.copy())  # copies: a method may not alter inputs
            self._sync()
            model_s = time.perf_counter() - t0
            try:
                output = check_image(output, f"method '{name}' output")
            except TypeError as exc:
                raise UsageError(str(exc)) from exc
        except HypernstError as exc:
            row["error"] = exc.one_line()
            self.log(f"  {name}: failed: {row['error']}")
            return row
        t0 = time.perf_counter()
        if self.save_outputs:
            from hypernst_cli.io import save_image

            path = out_dir / "outputs" / slug(name) / f"{slug(c_name)}__{slug(s_name)}.png"
            save_image(output, path)
            row["output"] = str(path.relative_to(out_dir))
        else:
            _encode_png(output)  # the same work a real run does to write its result
        row["model_s"] = model_s
        row["total_s"] = model_s + time.perf_counter() - t0
        refs = {"content": content, "style": style, "none": output}
        for m in self.metrics:
            row.update(m.evaluate(refs[m.reference], output))
        row["_output"] = output
        return row

    def _summarize(self, rows: list[dict[str, Any]]) -> dict[str, float | None]:
        ok = [r for r in rows if not r.get("error")]
        summary: dict[str, float | None] = {}
        for m in self.metrics:
            if m.available:
                summary.update(m.summarize(ok))
            else:
                summary.update({c.key: None for c in m.columns()})
        summary["model_s"] = mean_or_none(r["model_s"] for r in ok)
        summary["total_s"] = mean_or_none(r["total_s"] for r in ok)
        summary["pairs"] = float(len(rows))
        summary["failed"] = float(len(rows) - len(ok))
        return summary


def add_colour_win_rate(summary: dict[str, dict[str, float | None]], rows: list[dict[str, Any]]) -> None:
    """Per method, the share of pairs whose output is closer to the style's colours than the
    content itself is (the ``identity`` baseline's colour distance on the same pair). Nothing is
    added without that baseline or the colour metric."""
    base = {(r["content"], r["style"]): r.get("colour") for r in rows
            if r["method"] == "identity" and not r.get("error")}
    if not any(v is not None for v in base.values()):
        return
    for method, values in summary.items():
        wins = [r["colour"] < base[key] for r in rows
                if r["method"] == method and not r.get("error") and r.get("colour") is not None
                and base.get(key := (r["content"], r["style"])) is not None]
        values[COLOUR_WIN] = 100.0 * float(np.mean(wins)) if wins else None


class _ImageCache:
    """Each file is read (and a content aligned) once; its load time is kept for end-to-end time.
    A file that fails keeps its error, so its other pairs fail the same way without a retry."""

    def __init__(self, contents: list[Path], styles: list[Path], align: Callable | None) -> None:
        self.contents, self.styles, self.align = contents, styles, align
        self._c: dict[int, tuple[np.ndarray, float] | InputError] = {}
        self._s: dict[int, tuple[np.ndarray, float] | InputError] = {}

    def content(self, i: int) -> tuple[np.ndarray, float]:
        return self._get(self._c, i, self._load_content)

    def style(self, i: int) -> tuple[np.ndarray, float]:
        return self._get(self._s, i, lambda j: _timed_load(self.styles[j]))

    def _load_content(self, i: int) -> tuple[np.ndarray, float]:
        t0 = time.perf_counter()
        img, _ = _timed_load(self.contents[i])
        if self.align is not None:
            img = check_image(self.align(img), f"{self.contents[i]} (aligned)")
        return img, time.perf_counter() - t0

    @staticmethod
    def _get(cache: dict, i: int, load: Callable[[int], tuple[np.ndarray, float]]
             ) -> tuple[np.ndarray, float]:
        if i not in cache:
            try:
                cache[i] = load(i)
            except InputError as exc:
                cache[i] = exc
        entry = cache[i]
        if isinstance(entry, InputError):
            raise entry
        return entry


def _timed_load(path: Path) -> tuple[np.ndarray, float]:
    from hypernst_cli.io import load_image

    t0 = time.perf_counter()
    img = load_image(path)
    return img, time.perf_counter() - t0


def select_pairs(
    n_contents: int, n_styles: int, pairs: int | None, seed: int
) -> list[tuple[int, int]]:
    """All (content, style) index pairs, or a seeded sample of ``pairs`` of them, in grid order."""
    every = [(c, s) for c in range(n_contents) for s in range(n_styles)]
    if pairs is None or pairs >= len(every):
        return every
    return sorted(random.Random(seed).sample(every, pairs))


def unique_names(paths: Sequence[Path]) -> list[str]:
    """File stems, made unique with a numeric suffix where two files share a stem."""
    names: list[str] = []
    seen: dict[str, int] = {}
    for p in paths:
        stem = p.stem
        seen[stem] = seen.get(stem, 0) + 1
        names.append(stem if seen[stem] == 1 else f"{stem}-{seen[stem]}")
    return names


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "x"


def _encode_png(image: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


def _thumbnail(image: np.ndarray, cell: int) -> np.ndarray:
    """Outputs are kept for the contact sheet at its cell size only, to bound memory."""
    from PIL import Image

    pil = Image.fromarray(image)
    pil.thumbnail((cell, cell), Image.Resampling.LANCZOS)
    return np.asarray(pil)


def _sheet(
    thumbs: dict[tuple[int, int], np.ndarray],
    images: _ImageCache,
    c_names: list[str],
    s_names: list[str],
    cell: int,
) -> tuple[list[list[np.ndarray | None]], list[str], list[str]] | None:
    """Contact-sheet grid of one method: a header row of styles, then per content the content
    and its outputs (empty where the pair was not sampled or failed); None when nothing ran."""
    if not thumbs:
        return None
    used_c = sorted({c for c, _ in thumbs})
    used_s = sorted({s for _, s in thumbs})
    rows: list[list[np.ndarray | None]] = [
        [None] + [_thumbnail(images.style(s)[0], cell) for s in used_s]
    ]
    for c in used_c:
        rows.append([_thumbnail(images.content(c)[0], cell)] + [thumbs.get((c, s)) for s in used_s])
    return (
        rows,
        ["style"] + [c_names[c] for c in used_c],
        ["content"] + [s_names[s] for s in used_s],
    )
