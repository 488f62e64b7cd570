"""``hypernst info``: versions, device, configs and where each model's weights are found."""

from __future__ import annotations

import json

import typer

from hypernst_cli.cli.app import app
from hypernst_cli.cli.state import STATE


@app.command()
def info(
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of tables."),
) -> None:
    """Show versions, the chosen device, model configs and which weights are found where."""
    from hypernst_cli.info import collect_info

    report = collect_info(STATE.device)
    if as_json:
        STATE.out.print_json(json.dumps(report))
        return
    _print_report(report)


def _print_report(report: dict) -> None:
    from rich.table import Table

    out = STATE.out
    env = report["environment"]
    out.print(f"[bold]hypernst[/] {env['hypernst']}  (python {env['python']}, {env['platform']})")
    out.print(f"torch {env['torch']}  torchvision {env['torchvision']}")
    cuda = env["cuda"]
    if cuda["available"]:
        gpus = ", ".join(cuda["devices"])
        out.print(f"CUDA {cuda['version']}: {gpus}")
    else:
        out.print("CUDA: not available")
    out.print(f"device: [bold]{report['device']}[/]")
    out.print(f"cache: {report['cache_dir']}")

    configs = Table(title="model configs", title_justify="left")
    configs.add_column("name")
    configs.add_column("resolution", justify="right")
    configs.add_column("description")
    for c in report["configs"]:
        configs.add_row(c["name"], str(c["resolution"]), c["description"])
    out.print(configs)

    order = " > ".join(report.get("weights_resolution_order", []))
    weights = Table(title=f"weights (resolution order: {order})", title_justify="left")
    for col in ("name", "kind", "configs", "status", "path or source"):
        weights.add_column(col)
    for w in report["weights"]:
        status = {
            "downloaded": "[green]downloaded[/]",
            "embedded": "[green]embedded[/]",
            "bundled": "[cyan]bundled[/]",
        }.get(w["status"], "[dim]missing[/]")
        weights.add_row(w["name"], w["kind"], ",".join(w["configs"]), status,
                        w["path"] or w["source"])
    if not report["weights"]:
        weights.add_row("-", "-", "-", "[dim]none registered[/]", "weights.toml is empty")
    out.print(weights)
