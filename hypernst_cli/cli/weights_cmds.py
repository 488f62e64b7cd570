"""``hypernst download``, ``hypernst weights list|verify``, ``hypernst convert``, ``hypernst push``."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from hypernst_cli.cli.app import app
from hypernst_cli.cli.state import STATE

weights_app = typer.Typer(
    name="weights",
    help="The model files hypernst knows (weights.toml): list them, re-check local copies.",
    no_args_is_help=True,
)
app.add_typer(weights_app, name="weights")


def _human_size(n: int) -> str:
    if not n:
        return "?"
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


@app.command()
def download(
    names: list[str] = typer.Argument(None, help="Registry names (see `hypernst weights list`)."),
    config: str = typer.Option(None, "--config", help="Every downloadable file of this config."),
    revision: str = typer.Option(None, "--revision", help="Hub branch, tag or commit."),
    force: bool = typer.Option(False, "--force", help="Download again even if cached."),
    as_json: bool = typer.Option(False, "--json", help="One JSON line per file."),
) -> None:
    """Download model files into the Hugging Face cache and verify their sha256.

    Honours HF_HOME, HF_ENDPOINT, HF_HUB_OFFLINE and HF_TOKEN. Exit code 3 when a file cannot be
    fetched or does not match its recorded hash (the bad file is quarantined, never used).
    """
    from hypernst_cli.errors import EXIT_WEIGHTS, HypernstError, UsageError
    from hypernst_cli.weights.download import NO_NETWORK_HINT, NoNetworkError, download_entry
    from hypernst_cli.weights.registry import get_entry, load_registry

    registry = load_registry()
    manual = []  # --config's entries that no program can fetch: said, not silently left out
    if names:
        entries = [get_entry(n, registry) for n in dict.fromkeys(names)]
    elif config:
        entries = [e for e in registry.values() if config in e.configs and e.downloadable]
        manual = [e for e in registry.values()
                  if config in e.configs and e.source_type == "manual"]
        if not entries and not manual:
            raise UsageError(f"no downloadable weights are registered for config '{config}'")
    else:
        raise UsageError(
            "name the weights to download", hint="see `hypernst weights list`, or pass --config paper"
        )

    failures = 0
    offline_names: list[str] = []  # no network: said once for all of them, after the loop
    for entry in entries:
        try:
            result = download_entry(
                entry, revision=revision, force=force, progress=not STATE.quiet, warn=STATE.warn
            )
        except HypernstError as exc:
            if as_json:  # a script reading stdout learns of the failure too, not only stderr
                STATE.out.print(json.dumps({"name": entry.name, "ok": False, "error": exc.one_line()}),
                                markup=False)
            if len(entries) == 1:
                raise
            failures += 1
            if isinstance(exc, NoNetworkError):
                offline_names.append(entry.name)
                continue
            STATE.err.print(f"[bold red]error:[/] {exc.one_line()}", markup=True, highlight=False)
            continue
        if as_json:
            STATE.out.print(
                json.dumps(
                    {"name": result.name, "ok": True, "path": str(result.path), "sha256": result.sha256,
                     "size": result.size, "check": result.check, "fresh": result.fresh}
                ),
                markup=False,
            )
        else:
            state = "downloaded" if result.fresh else "cached"
            STATE.out.print(f"{state:<10} {result.name}  {result.path}", markup=False)
    from rich.markup import escape

    from hypernst_cli.weights.registry import manual_download_steps

    for entry in manual:
        how = manual_download_steps(entry)
        if as_json:
            STATE.out.print(json.dumps({"name": entry.name, "ok": False, "skipped": True,
                                        "reason": f"manual download: {how}"}), markup=False)
        STATE.warn(escape(f"skipped {entry.name}: no direct download exists; {how}"))
    if offline_names:
        STATE.err.print(
            "[bold red]error:[/] " + escape(
                f"no network connection: {len(offline_names)} file(s) not downloaded "
                f"({', '.join(offline_names)}); {NO_NETWORK_HINT}"),
            markup=True, highlight=False)
    if failures:
        raise typer.Exit(EXIT_WEIGHTS)


@weights_app.command("list")
def list_weights(
    as_json: bool = typer.Option(False, "--json", help="One JSON array instead of a table."),
    config: str = typer.Option(None, "--config", help="Only the files this config uses."),
) -> None:
    """Every registered file: kind, configs, whether it is here, size, license and source."""
    from hypernst_cli.errors import UsageError
    from hypernst_cli.weights.registry import load_registry, locate

    registry = load_registry()
    known = sorted({c for entry in registry.values() for c in entry.configs})
    if config and config not in known:  # an empty table would read as "nothing is needed"
        raise UsageError(f"no registered file is for config '{config}'",
                         hint=f"use one of: {', '.join(known)}")
    rows = []
    for entry in registry.values():
        if config and config not in entry.configs:
            continue
        path, status = locate(entry)
        rows.append(
            {
                "name": entry.name,
                "kind": entry.kind,
                "configs": list(entry.configs),
                "status": status,
                "path": str(path) if path else None,
                "size": path.stat().st_size if path and path.is_file() else entry.size,
                "license": entry.license,
                "source": entry.source,
                "pinned": "sha256" if entry.sha256 else "prefix" if entry.sha256_prefix else "no",
                "converter": entry.converter,
            }
        )
    if as_json:
        STATE.out.print_json(json.dumps(rows))
        return
    from rich.table import Table

    table = Table(title="weights (weights.toml; full details with --json)", title_justify="left")
    table.add_column("name", no_wrap=True)
    for col in ("kind", "configs", "status", "size", "license"):
        table.add_column(col, overflow="fold")
    colours = {"downloaded": "green", "embedded": "green", "bundled": "cyan"}
    for r in rows:
        colour = colours.get(r["status"], "dim")
        short_license = (r["license"] or "?").split(" (")[0].split(";")[0]
        table.add_row(r["name"], r["kind"], ",".join(r["configs"]), f"[{colour}]{r['status']}[/]",
                      _human_size(r["size"]), short_license)
    STATE.out.print(table)


@weights_app.command("verify")
def verify_weights(
    names: list[str] = typer.Argument(None, help="Only these entries (default: every present file)."),
    as_json: bool = typer.Option(False, "--json", help="One JSON line per entry."),
) -> None:
    """Re-hash every present file; exit code 3 if any does not match its pinned or recorded hash."""
    from hypernst_cli.errors import EXIT_WEIGHTS
    from hypernst_cli.weights.download import verify_present
    from hypernst_cli.weights.registry import get_entry, load_registry

    registry = load_registry()
    entries = [get_entry(n, registry) for n in names] if names else list(registry.values())
    bad = 0
    checked = 0
    for entry in entries:
        result = verify_present(entry)
        if result.status == "missing" and not names:
            continue
        checked += 1
        failed = result.status == "mismatch" or (result.status == "missing" and bool(names))
        bad += failed
        if as_json:
            STATE.out.print(
                json.dumps({"name": result.name, "status": result.status, "path": str(result.path)
                            if result.path else None, "detail": result.detail}),
                markup=False,
            )
        else:
            label = {"ok": "ok", "unpinned": "unpinned", "mismatch": "MISMATCH", "missing": "MISSING"}
            STATE.out.print(f"{label[result.status]:<9} {result.name}  {result.detail}", markup=False)
    if not as_json:
        STATE.info(f"{checked} file(s) checked, {bad} problem(s)")
    if bad:
        raise typer.Exit(EXIT_WEIGHTS)


@weights_app.command("export")
def export_weights(
    src: Path = typer.Argument(..., help="A model folder (e.g. RUN_DIR/final)."),
    output: Path = typer.Option(..., "--output", "-o", help="The exported model folder."),
    fp32: bool = typer.Option(False, "--fp32", help="Keep fp32 tensors (default: fp16, half the size)."),
) -> None:
    """A model folder for distribution: inference networks and edit directions only, in fp16."""
    from hypernst_cli.errors import UsageError
    from hypernst_cli.weights.checkpoint import MODEL_FILE, export_model_folder

    if output.exists() and not output.is_dir():
        raise UsageError(f"-o {output} is a file; give a folder")
    folder = export_model_folder(src, output, half=not fp32)
    size = (folder / MODEL_FILE).stat().st_size
    STATE.out.print(f"wrote {folder} ({_human_size(size)})", markup=False)


@app.command()
def convert(
    kind: str = typer.Argument(..., help="stylegan2 | e4e | aladin | directions | facexlib | state-dict"),
    src: Path = typer.Argument(..., help="The official file (.pt, .pth or .npy)."),
    output: Path = typer.Option(..., "--output", "-o", help="A model folder, or a .safetensors file."),
    name: str = typer.Option(None, "--name", help="Config name, direction name or network name."),
) -> None:
    """Convert an official checkpoint into hypernst's safetensors + JSON config.

    Pickles are read with torch's weights-only unpickler and a short allow-list; a file naming
    anything else is refused (exit 3) without being executed.
    """
    from hypernst_cli.weights.convert import convert as run_convert

    dest = run_convert(kind, src, output, name=name)
    STATE.out.print(f"wrote {dest}", markup=False)


@app.command()
def push(
    directory: Path = typer.Argument(..., help="A model folder (config.json + model.safetensors)."),
    repo_id: str = typer.Option(..., "--repo-id", help="The Hub repository, e.g. user/hypernst-paper."),
    private: bool = typer.Option(False, "--private", help="Create the repository as private."),
    revision: str = typer.Option(None, "--revision", help="Branch to push to (created if needed)."),
    license_id: str = typer.Option(None, "--license", help="License id for the model card."),
) -> None:
    """Publish a trained model folder to the Hugging Face Hub, with a generated model card.

    Needs HF_TOKEN (write access). An existing README.md in the folder is published as is.
    """
    from hypernst_cli.weights.publish import push_model_folder

    result = push_model_folder(
        directory, repo_id, private=private, revision=revision, license_id=license_id
    )
    if result.card_written:
        STATE.info(f"wrote the model card {Path(directory) / 'README.md'}")
    STATE.out.print(f"pushed {directory} to {result.repo_id}@{result.revision}: {result.url}",
                    markup=False)
