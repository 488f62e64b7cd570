"""What ``hypernst align`` and ``hypernst segment`` share: the batch loop, output names, reports.

Batch rules: a finished output is not redone unless --overwrite; one bad input is reported and
skipped; exit 0 when all are fine, 1 when some failed, 2 when none was (a single input's error is
raised as it is: one line, its own exit code). Heavy imports stay inside functions.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

from hypernst_cli.cli.state import STATE

BACKEND_HELP = "auto (facexlib when its weights are downloaded, else dlib) | dlib | facexlib."
DETECTOR_HELP = "dlib detector: hog (fast) or cnn (finds harder faces, slower)."


def output_stems(paths: list[Path]) -> dict[Path, str]:
    """A unique output stem per input: the file stem, prefixed by its folder when stems collide."""
    counts: dict[str, int] = {}
    for p in paths:
        counts[p.stem] = counts.get(p.stem, 0) + 1
    stems: dict[Path, str] = {}
    used: set[str] = set()
    for p in paths:
        stem = p.stem if counts[p.stem] == 1 else f"{p.parent.name}_{p.stem}"
        base, n = stem, 1
        while stem in used:
            n += 1
            stem = f"{base}-{n}"
        used.add(stem)
        stems[p] = stem
    return stems


def resolve_size(size: int | None, config: str) -> int:
    from hypernst_cli.configs import get_config
    from hypernst_cli.errors import UsageError

    if size is None:
        return get_config(config).resolution
    if size < 16 or size > 4096:
        raise UsageError(f"--size {size} is out of range", hint="use 16 to 4096 pixels")
    return size


def with_path(exc: Exception, path: Path) -> Exception:
    """A face error raised by the library (which does not know file names) re-made for ``path``."""
    from hypernst_cli.errors import InputError

    if isinstance(exc, InputError) and str(exc.path) == "<image>":
        return type(exc)(path, exc.reason, hint=exc.hint)
    return exc


def run_batch(
    paths: list[Path],
    work: Callable[[Path], list[dict[str, Any]]],
    *,
    as_json: bool,
    label: str,
) -> int:
    """Run ``work`` on every input; it returns one record per output written (or skipped).

    Prints one line (or JSON line) per output; returns the batch exit code.
    """
    from hypernst_cli.errors import EXIT_INPUT, EXIT_OK, EXIT_PARTIAL, HypernstError

    if len(paths) == 1:
        try:
            records = work(paths[0])
        except HypernstError as exc:
            raise with_path(exc, paths[0]) from exc
        for rec in records:
            report(rec, as_json)
        return EXIT_OK

    failures = 0
    progress = None
    if not STATE.quiet:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        progress = Progress(
            TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
            console=STATE.err, transient=True,
        )
        progress.start()
        task = progress.add_task(label, total=len(paths))
    try:
        for path in paths:
            try:
                records = work(path)
            except HypernstError as exc:
                failures += 1
                report({"input": str(path), "ok": False, "error": with_path(exc, path).one_line()},
                       as_json)
            else:
                for rec in records:
                    report(rec, as_json)
            if progress is not None:
                progress.advance(task)
    finally:
        if progress is not None:
            progress.stop()
    if not as_json:
        STATE.info(f"{len(paths) - failures} of {len(paths)} inputs done")
    if failures == len(paths):
        return EXIT_INPUT
    return EXIT_PARTIAL if failures else EXIT_OK


def report(rec: dict[str, Any], as_json: bool) -> None:
    if as_json:
        STATE.out.print(json.dumps(rec), markup=False)
    elif not rec.get("ok", True):
        STATE.out.print(f"FAILED {rec['error']}", markup=False)
    else:
        word = "skipped" if rec.get("skipped") else "wrote  "
        STATE.out.print(f"{word} {rec['output']}  ({rec['input']})", markup=False)


def finish(code: int) -> None:
    if code:
        raise typer.Exit(code)


def write_sheet(tiles: list[Any], out_dir: Path, *, per_row: int, col_labels: list[str] | None = None) -> Path:
    """One contact sheet (``contact_sheet.png``) of ``tiles`` for the output folder."""
    from hypernst_cli.io import save_image
    from hypernst_cli.io.contact_sheet import contact_sheet

    rows = [tiles[i : i + per_row] for i in range(0, len(tiles), per_row)]
    labels = (col_labels * per_row)[:per_row] if col_labels else None
    path = out_dir / "contact_sheet.png"
    save_image(contact_sheet(rows, cell=160, col_labels=labels), path)
    return path
