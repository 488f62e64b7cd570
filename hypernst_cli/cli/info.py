"""``hypernst info``: versions, device, configs and where each model's weights are found."""

from __future__ import annotations

import json

import typer

from hypernst_cli.cli.app import app
from hypernst_cli.cli.state import STATE


@app.command()
def info(
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of tables."),
    models: bool = typer.Option(False, "--models", help="Also list each config's parameter counts."),
) -> None:
    """Show versions, the chosen device, model configs and which weights are found where."""
    from hypernst_cli.info import collect_info

    report = collect_info(STATE.device)
    if models:
        from hypernst_cli.configs import get_config
        from hypernst_cli.models.counts import parameter_counts

        report["model_parameters"] = {
            c["name"]: parameter_counts(get_config(c["name"])) for c in report["configs"]
        }
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
    if report["device"] is None:  # --device names a device this machine does not have
        from rich.markup import escape

        out.print(f"device: [bold red]unavailable[/]: {escape(report['device_error'])}; "
                  f"--device auto would use {escape(report['device_auto'])}")
    else:
        out.print(f"device: [bold]{report['device']}[/]")
    threads = report["threads"]
    out.print(f"CPU threads: {threads['count']} ({threads['reason']})")
    out.print(f"cache: {report['cache_dir']}")

    configs = Table(title="model configs", title_justify="left")
    configs.add_column("name")
    configs.add_column("resolution", justify="right")
    configs.add_column("description")
    for c in report["configs"]:
        configs.add_row(c["name"], str(c["resolution"]), c["description"])
    out.print(configs)

    if "model_parameters" in report:
        from hypernst_cli.pipeline.models import INFERENCE_PARTS

        counts = report["model_parameters"]
        nets = list(next(iter(counts.values()), {}))
        table = Table(title="parameters per network (millions; size of the inference networks "
                            "in fp16: generator, encoder, aladin, hypernet)", title_justify="left")
        for col in ["config", *nets, "inference fp16"]:
            table.add_column(col, justify="left" if col == "config" else "right")
        for name, row in counts.items():
            shipped = sum(row.get(n, 0) for n in INFERENCE_PARTS) * 2 / 2**20
            table.add_row(name, *[f"{row[n] / 1e6:.2f}" for n in nets], f"{shipped:.1f} MB")
        out.print(table)

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
