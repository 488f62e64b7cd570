"""``hypernst check``: tell which input images are usable before a long batch."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from hypernst_cli.cli.app import app
from hypernst_cli.cli.state import STATE


@app.command()
def check(
    inputs: list[Path] = typer.Argument(..., help="Image files, folders or globs."),
    recursive: bool = typer.Option(False, "--recursive", "-r", help="Descend into sub-folders."),
    as_json: bool = typer.Option(False, "--json", help="One JSON line per file."),
) -> None:
    """Read every input with hypernst's image loader and report which ones are usable.

    Exit code 0 when all are readable, 1 when some are not, 2 when none is.
    """
    from hypernst_cli.errors import EXIT_INPUT, EXIT_PARTIAL, HypernstError, UsageError
    from hypernst_cli.io import collect_images, load_image

    paths = collect_images(inputs, recursive=recursive)
    if not paths:
        raise UsageError("no image files found in the given inputs")
    if len(paths) == 1:
        # A single input: its error is *the* error (one line, exit 2), and with --json its
        # line too, so a script reading stdout learns of it
        try:
            arr = load_image(paths[0])
        except HypernstError as exc:
            if as_json:
                _report(paths[0], None, exc.one_line(), as_json)
            raise
        _report(paths[0], f"{arr.shape[1]}x{arr.shape[0]}", None, as_json)
        return
    failures = 0
    for path in paths:
        try:
            arr = load_image(path)
        except HypernstError as exc:
            failures += 1
            _report(path, None, exc.one_line(), as_json)
            continue
        _report(path, f"{arr.shape[1]}x{arr.shape[0]}", None, as_json)
    if not as_json:
        STATE.info(f"{len(paths) - failures} of {len(paths)} images readable")
    if failures == len(paths):
        raise typer.Exit(EXIT_INPUT)
    if failures:
        raise typer.Exit(EXIT_PARTIAL)


def _report(path: Path, size: str | None, error: str | None, as_json: bool) -> None:
    if as_json:
        STATE.out.print(
            json.dumps({"input": str(path), "ok": error is None, "size": size, "error": error}),
            markup=False,
        )
    elif error is None:
        STATE.out.print(f"ok     {path}  {size}", markup=False)
    else:
        STATE.out.print(f"FAILED {error}", markup=False)
