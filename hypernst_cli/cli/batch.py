"""The batch runner every multi-item command uses: resumable, safe, scriptable.

- a finished item (all its outputs exist) is skipped unless ``overwrite``; two items that
  would write the same file are refused before anything runs; an item whose outputs are known
  only once it runs (one per face) has a manifest, written atomically after all of them: it is
  done when its manifest exists and every file the manifest lists exists;
- outputs are written atomically by the item's worker; temp files left by a killed run are swept
  from the output folder at start;
- one bad item (unreadable, no face, too small) is reported and skipped; errors that doom every
  item (missing weights, device failure) stop the batch at once;
- ``--json`` prints one JSON line per item (or per record, when an item makes several products,
  such as one crop per face) and a final summary line; otherwise a progress bar on stderr, with
  ``list_outputs`` one line per output on stdout, and a summary table at the end; under
  ``--quiet`` nothing but errors (each once, on stderr) and the lines of ``--json`` or
  ``list_outputs``: no progress bar, no table;
- a write the file system refuses (disk full, no permission, read-only, name too long) stops the
  batch at that item: nothing partial is left, the summary (JSON line or table) still lists what
  was written, and the exit code is the write error's (74);
- exit code: 0 all succeeded (or were already done), 1 some failed, 2 nothing valid was given;
- ``--shard K/N`` (or the environment of a cluster array job / torchrun) takes every N-th item.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypernst_cli.cli.state import STATE
from hypernst_cli.errors import (
    EXIT_INPUT,
    EXIT_OK,
    EXIT_PARTIAL,
    DeviceError,
    HypernstError,
    UsageError,
    WeightsError,
    WriteError,
    write_error_from,
)


@dataclass
class WorkItem:
    """One unit of work: a label for people, its inputs and the outputs it promises.

    ``outputs`` are the files whose existence means the item is done. An item whose number of
    outputs is known only once it runs (one per face) promises the first one and names a
    ``manifest``: the runner writes it (atomically) after the worker, listing every file the
    worker's ``Done`` names, and the item is done only when the manifest and all those files
    exist (see ``is_done``). An interrupted item therefore has no manifest and is redone whole.
    """

    label: str
    inputs: dict[str, str]
    outputs: list[Path]
    payload: Any = None  # whatever the worker needs (not printed)
    manifest: Path | None = None


MANIFEST_FORMAT = "hypernst-batch-item"


def read_manifest(item: WorkItem) -> list[Path] | None:
    """The files ``item``'s manifest lists (in the worker's order), or None when it has no
    manifest or it is missing or unreadable (the item is then not done)."""
    if item.manifest is None:
        return None
    try:
        data = json.loads(item.manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT:
        return None
    names = data.get("outputs")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) and n for n in names):
        return None
    return [item.manifest.parent / n for n in names]  # relative to the manifest's folder


def write_manifest(item: WorkItem, outputs: Sequence[Path]) -> None:
    """Record that ``item`` wrote ``outputs`` (all of them: call it after the last one)."""
    from hypernst_cli.io import atomic_write_text

    assert item.manifest is not None
    names = [os.path.relpath(p, item.manifest.parent) for p in outputs]
    atomic_write_text(item.manifest, json.dumps(
        {"format": MANIFEST_FORMAT, "item": item.label, "outputs": names}, indent=1) + "\n")


def is_done(item: WorkItem) -> bool:
    """Whether an earlier run finished ``item``: its promised outputs exist, and, for an item with
    a manifest, the manifest too and every file it lists."""
    if not item.outputs or not all(p.exists() for p in item.outputs):
        return False
    if item.manifest is None:
        return True
    listed = read_manifest(item)
    return listed is not None and all(p.exists() for p in listed)


@dataclass
class Done:
    """What a worker (or ``resume``) may return instead of bare timings.

    ``outputs``: every file the item wrote. ``records``: one JSON record per product (e.g. per
    face), each printed as its own line, its ``"output"`` naming its main file.
    """

    outputs: list[Path] = field(default_factory=list)
    records: list[dict[str, Any]] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)


@dataclass
class ItemResult:
    item: WorkItem
    status: str  # "ok" | "skipped" | "failed"
    error: str | None = None
    timings: dict[str, float] = field(default_factory=dict)
    outputs: list[Path] = field(default_factory=list)
    records: list[dict[str, Any]] = field(default_factory=list)

    def json_lines(self) -> list[dict[str, Any]]:
        """The item's JSON lines: one per record, else one for the item."""
        state = {
            "status": self.status,
            "ok": self.status != "failed",
            "skipped": self.status == "skipped",
            "error": self.error,
            "timings": {k: round(v, 4) for k, v in self.timings.items()},
        }
        if self.records:
            return [{**self.item.inputs, **rec, **state} for rec in self.records]
        # a failed item wrote nothing: its promised files are not outputs
        outputs = [] if self.status == "failed" else [str(p) for p in self.files()]
        return [{**self.item.inputs, "outputs": outputs, **state}]

    def files(self) -> list[Path]:
        """What the item wrote (or had written before, when skipped)."""
        return self.outputs or self.item.outputs

    def text_lines(self) -> list[str]:
        """One line per output for people: wrote / skipped PATH (LABEL), or FAILED ERROR."""
        if self.status == "failed":
            return [f"FAILED {self.error}"]
        word = "skipped" if self.status == "skipped" else "wrote  "
        paths = [rec["output"] for rec in self.records if "output" in rec] or self.files()
        return [f"{word} {p}  ({self.item.label})" for p in paths]


@dataclass
class BatchSummary:
    results: list[ItemResult]
    seconds: float
    stopped: WriteError | None = None  # the write error that ended the batch early, if any
    planned: int | None = None  # items the batch was given (more than ``results`` when stopped)

    @property
    def total(self) -> int:
        return len(self.results) if self.planned is None else self.planned

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.results)

    def done(self) -> list[ItemResult]:
        """The items whose outputs exist now (written by this run or an earlier one)."""
        return [r for r in self.results if r.status != "failed"]

    @property
    def exit_code(self) -> int:
        failed = self.count("failed")
        if failed and failed == len(self.results):
            return EXIT_INPUT
        return EXIT_PARTIAL if failed else EXIT_OK

    def to_json(self) -> dict[str, Any]:
        return {
            "summary": {
                "total": self.total,
                "not_run": self.total - len(self.results),
                "ok": self.count("ok"),
                "skipped": self.count("skipped"),
                "failed": self.count("failed"),
                "seconds": round(self.seconds, 3),
                "stopped": self.stopped.one_line() if self.stopped else None,
                "failures": [
                    {"item": r.item.label, "error": r.error}
                    for r in self.results
                    if r.status == "failed"
                ],
            }
        }


# Errors that would fail every remaining item the same way: stop instead of repeating them.
FATAL_ERRORS: tuple[type[HypernstError], ...] = (WeightsError, DeviceError, UsageError)


def parse_shard(spec: str | None) -> tuple[int, int] | None:
    """``K/N`` (1-based K) from the option, else from the environment, else None.

    Environment: SLURM array jobs (SLURM_ARRAY_TASK_ID / SLURM_ARRAY_TASK_COUNT, with
    SLURM_ARRAY_TASK_MIN), and torchrun (RANK / WORLD_SIZE).
    """
    if spec:
        try:
            k, n = (int(x) for x in spec.split("/"))
        except ValueError:
            raise UsageError(f"invalid --shard '{spec}'", hint="use K/N, e.g. 2/8") from None
        if not (n >= 1 and 1 <= k <= n):
            raise UsageError(f"invalid --shard '{spec}'", hint="K must be between 1 and N")
        return k, n
    env = os.environ
    if "SLURM_ARRAY_TASK_ID" in env and "SLURM_ARRAY_TASK_COUNT" in env:
        first = int(env.get("SLURM_ARRAY_TASK_MIN", "0"))
        return int(env["SLURM_ARRAY_TASK_ID"]) - first + 1, int(env["SLURM_ARRAY_TASK_COUNT"])
    if "WORLD_SIZE" in env and "RANK" in env and int(env["WORLD_SIZE"]) > 1:
        return int(env["RANK"]) + 1, int(env["WORLD_SIZE"])
    return None


def take_shard(items: Sequence[WorkItem], shard: tuple[int, int] | None) -> list[WorkItem]:
    """Every N-th item starting at K-1: deterministic, disjoint, and together complete."""
    if shard is None:
        return list(items)
    k, n = shard
    return [it for i, it in enumerate(items) if i % n == k - 1]


def check_distinct_outputs(items: Sequence[WorkItem], also_inputs: Iterable[Path] = ()) -> None:
    """Refuse a batch in which two items promise the same output file: the second would be
    skipped as done, or overwrite the first, and its result would be lost without a word. Refuse
    one whose output is an input file too (an item's, or one of ``also_inputs``): an earlier item
    overwrote it before its own item read it (``invert x.png x_e4e.png``)."""
    inputs: dict[str, str] = {}
    for value in [*(v for item in items for v in item.inputs.values()), *also_inputs]:
        if os.path.isfile(value):
            inputs.setdefault(os.path.normcase(os.path.realpath(value)), str(value))
    owner: dict[str, WorkItem] = {}
    for item in items:
        for path in [*item.outputs, *([item.manifest] if item.manifest else [])]:
            source = inputs.get(os.path.normcase(os.path.realpath(path)))
            if source is not None:
                via = "" if str(source) == str(path) else f" (as {path})"
                raise UsageError(f"{item.label} would be written over the input {source}{via}",
                                 hint="write the results to another folder with -o")
            key = os.path.normcase(os.path.abspath(path))
            first = owner.setdefault(key, item)
            if first is not item:
                raise UsageError(f"{first.label} and {item.label} would both be written to {path}",
                                 hint="rename one of the inputs, or give --name fields that tell "
                                      "them apart (e.g. {content} and {style})")


def _sweep(outputs: Iterable[Path]) -> None:
    from hypernst_cli.io.atomic import sweep_temp_files

    for folder in {p.parent for p in outputs}:
        sweep_temp_files(folder)


def run_batch(
    items: Sequence[WorkItem],
    worker: Callable[[WorkItem], Done | dict[str, float] | None],
    *,
    overwrite: bool = False,
    as_json: bool = False,
    description: str = "working",
    raise_single: bool = True,
    resume: Callable[[WorkItem], Done] | None = None,
    list_outputs: bool = False,
) -> BatchSummary:
    """Run ``worker`` on each item; see the module docstring for the rules.

    ``worker`` writes the item's outputs (atomically) and returns optional timings, or a ``Done``
    when it has more to say. With ``raise_single`` a batch of exactly one item re-raises that
    item's error (so a single bad input gives its own one-line error and exit code). ``resume``
    says what an earlier run wrote for an item that is skipped (default: the files its manifest
    lists, else its promised outputs). ``list_outputs`` prints a line per output on stdout (text
    mode, even with --quiet).
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
    from rich.progress import TimeElapsedColumn, TimeRemainingColumn

    check_distinct_outputs(items)
    # a batch of one, in text mode, ends with its own error line rather than a report of it
    lone = raise_single and len(items) == 1 and not as_json
    start = time.perf_counter()
    _sweep(p for it in items for p in it.outputs)
    results: list[ItemResult] = []
    stopped: WriteError | None = None
    show_bar = not (STATE.quiet or as_json) and len(items) > 1
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=STATE.err,
        disable=not show_bar,
        transient=True,
    )
    with progress:
        task = progress.add_task(description, total=len(items))
        for item in items:
            if not overwrite and is_done(item):
                before = resume(item) if resume is not None else Done(
                    outputs=read_manifest(item) or [])
                result = ItemResult(item, "skipped", outputs=before.outputs, records=before.records)
            else:
                t0 = time.perf_counter()
                try:
                    if item.manifest is not None:
                        # redone (or overwritten): not done until its manifest is written again,
                        # so an interruption half-way is never taken for finished work
                        item.manifest.unlink(missing_ok=True)
                    done = worker(item)
                    if not isinstance(done, Done):
                        done = Done(timings=done or {})
                    if item.manifest is not None:
                        write_manifest(item, done.outputs or item.outputs)
                except WriteError as exc:
                    stopped = exc
                    result = ItemResult(item, "failed", error=exc.one_line())
                except FATAL_ERRORS:
                    raise
                except HypernstError as exc:
                    if raise_single and len(items) == 1:
                        raise
                    result = ItemResult(item, "failed", error=exc.one_line())
                except OSError as exc:
                    stopped = write_error_from(exc)
                    if stopped is None:
                        raise
                    result = ItemResult(item, "failed", error=stopped.one_line())
                else:
                    done.timings.setdefault("total", time.perf_counter() - t0)
                    result = ItemResult(item, "ok", timings=done.timings, outputs=done.outputs,
                                        records=done.records)
            results.append(result)
            if not (stopped is not None and lone):
                # (else its error is raised below)
                _emit(result, as_json, list_outputs, progress, stopping=stopped is not None)
            progress.advance(task)
            if stopped is not None:
                break  # every later item would fail the same way
    summary = BatchSummary(results, time.perf_counter() - start, stopped, len(items))
    if stopped is not None and lone:
        raise stopped  # one item: just its own error line, as for any other error
    _print_summary(summary, as_json)
    if stopped is not None:
        raise stopped  # its one line and exit code, after the summary
    return summary


def _emit(result: ItemResult, as_json: bool, list_outputs: bool, progress: Any,
          stopping: bool = False) -> None:
    """Print an item's lines as it finishes. A failure goes to stderr in text mode (under --quiet
    also beside a listing, as the summary that would repeat it is not printed), except under
    --quiet the failure that stops the batch (``stopping``): its error ends the run."""
    if as_json:
        for line in result.json_lines():
            STATE.out.print(json.dumps(line), markup=False, highlight=False)
        return
    if list_outputs:
        for line in result.text_lines():
            STATE.out.print(line, markup=False, highlight=False)
    if result.status == "failed" and (STATE.quiet or not list_outputs) \
            and not (STATE.quiet and stopping):
        from rich.markup import escape

        progress.console.print(f"[red]failed[/] {escape(result.error or '')}", highlight=False)


def _print_summary(summary: BatchSummary, as_json: bool) -> None:
    if as_json:
        STATE.out.print(json.dumps(summary.to_json()), markup=False, highlight=False)
        return
    if len(summary.results) == 1 and summary.count("skipped") and not STATE.quiet:
        # one item and nothing done: say so, or a rerun with another style but the same -o
        # would look like it worked while the old file stays
        paths = ", ".join(str(p) for p in summary.results[0].files())
        STATE.err.print(f"skipped: {paths} already exists (--overwrite redoes it)",
                        markup=False, highlight=False)
    if STATE.quiet:
        return  # nothing but errors, and _emit printed each as it came
    if len(summary.results) == 1 and not summary.count("failed"):
        return
    from rich.table import Table

    title = f"stopped after {summary.seconds:.1f} s" if summary.stopped else f"done in {summary.seconds:.1f} s"
    table = Table(title=title, title_justify="left")
    columns = ["ok", "skipped", "failed"] + (["not run"] if summary.stopped else []) + ["total"]
    for col in columns:
        table.add_column(col, justify="right")
    counts = [summary.count(s) for s in ("ok", "skipped", "failed")]
    if summary.stopped:
        counts.append(summary.total - len(summary.results))
    table.add_row(*(str(n) for n in counts), str(summary.total))
    STATE.err.print(table)
    for r in summary.results:
        if r.status == "failed":
            from rich.markup import escape

            STATE.err.print(f"  [red]x[/] {escape(r.error or '')}", highlight=False)


def exit_with(summary: BatchSummary) -> None:
    import typer

    if summary.exit_code:
        raise typer.Exit(summary.exit_code)
