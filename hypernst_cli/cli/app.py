"""The ``hypernst`` Typer app: global options, command registration, and error -> exit code.

Command modules register themselves with ``app`` when imported below. Keep module-level imports
light: no torch, numpy or PIL outside command bodies.
"""

from __future__ import annotations

import sys
import traceback
from typing import Any

import typer

from hypernst_cli import __version__
from hypernst_cli.cli.state import STATE
from hypernst_cli.errors import EXIT_DEVICE, EXIT_INTERNAL, HypernstError, write_error_from

app = typer.Typer(
    name="hypernst",
    help=(
        "Stylize portrait photos in the style of any example image with HyperNST: a hyper-network "
        "predicts weight offsets for a StyleGAN2, steered by ALADIN style codes averaged per facial "
        "region."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help: compact, and fast to print
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"hypernst {__version__}")
        raise typer.Exit()


def _asks_for_help() -> bool:
    """Whether this run only prints a command's help (which a bad setting must not block)."""
    import sys

    return any(arg in ("--help", "-h") for arg in sys.argv[1:])


@app.callback()
def _global_options(
    device: str = typer.Option(
        "auto", "--device", help="auto | cpu | cuda | cuda:N", envvar="HYPERNST_DEVICE"
    ),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks on errors."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars or status lines."),
    threads: int | None = typer.Option(
        None, "--threads", min=1,
        help="CPU threads (default: $HYPERNST_THREADS, $OMP_NUM_THREADS, $MKL_NUM_THREADS, else "
        "one per core this process may use).",
    ),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    import os

    from hypernst_cli.device import request_threads, validate_device_spec

    STATE.device = validate_device_spec(device)
    if os.environ.get("HYPERNST_MAX_PIXELS") and not _asks_for_help():
        # read where images load, which is after the models: a typo must not cost that wait
        from hypernst_cli.io.images import max_pixels_default

        max_pixels_default()
    request_threads(threads)
    STATE.debug = STATE.debug or debug
    STATE.quiet = quiet


# Command modules: each adds its commands to `app` on import.
from hypernst_cli.cli import align as _align  # noqa: E402,F401
from hypernst_cli.cli import check as _check  # noqa: E402,F401
from hypernst_cli.cli import codes as _codes  # noqa: E402,F401
from hypernst_cli.cli import directions as _directions  # noqa: E402,F401
from hypernst_cli.cli import edit as _edit  # noqa: E402,F401
from hypernst_cli.cli import evaluate as _evaluate  # noqa: E402,F401
from hypernst_cli.cli import info as _info  # noqa: E402,F401
from hypernst_cli.cli import interpolate as _interpolate  # noqa: E402,F401
from hypernst_cli.cli import invert as _invert  # noqa: E402,F401
from hypernst_cli.cli import segment as _segment  # noqa: E402,F401
from hypernst_cli.cli import stylize as _stylize  # noqa: E402,F401
from hypernst_cli.cli import train as _train  # noqa: E402,F401
from hypernst_cli.cli import weights_cmds as _weights_cmds  # noqa: E402,F401


def _is_out_of_memory(exc: BaseException) -> bool:
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(exc, getattr(torch, "OutOfMemoryError", ())):
        return True
    return isinstance(exc, MemoryError)


def _print_error(text: str) -> None:
    from rich.markup import escape

    STATE.err.print(f"[bold red]error:[/] {escape(text)}", highlight=False)


def _parser_exceptions() -> Any:
    """The exceptions module of the click that Typer runs on: Typer 0.29 and later carry their
    own copy (``typer._click``), earlier ones use click itself."""
    try:
        from typer._click import exceptions
    except ImportError:
        from click import exceptions
    return exceptions


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``hypernst`` console script: runs the app and exits with its code.

    Usage errors (a bad option or argument, found by the command-line parser) and our own errors
    become one line on stderr with their exit code; anything unexpected is an internal error
    (traceback with --debug).
    """
    parser = _parser_exceptions()
    try:
        # not standalone: the parser's errors come here rather than as its multi-line usage box
        returned = app(args=argv, prog_name="hypernst", standalone_mode=False)
        code = returned if isinstance(returned, int) else 0  # an explicit exit's code
    except parser.UsageError as exc:
        where = exc.ctx.command_path if exc.ctx is not None else "hypernst"
        _print_error(" ".join(f"{exc.format_message()} (see `{where} --help`)".split()))
        code = exc.exit_code
    except (getattr(parser, "Abort", typer.Abort), typer.Abort):
        _print_error("aborted")
        code = 1
    except parser.ClickException as exc:
        _print_error(" ".join(exc.format_message().split()))
        code = exc.exit_code
    except HypernstError as exc:
        if STATE.debug:
            traceback.print_exc()
        _print_error(exc.one_line())
        code = exc.exit_code
    except KeyboardInterrupt:
        _print_error("interrupted")
        code = 130
    except Exception as exc:  # noqa: BLE001 - the last line of defence
        if STATE.debug:
            traceback.print_exc()
        write_error = write_error_from(exc)  # a write outside the atomic writer (a folder, a log)
        if write_error is not None:
            _print_error(write_error.one_line())
            code = write_error.exit_code
        elif _is_out_of_memory(exc):
            _print_error(
                "out of memory (try a smaller --batch-size, a smaller --size, or --device cpu)"
            )
            code = EXIT_DEVICE
        else:
            detail = " ".join(str(exc).split()) or type(exc).__name__
            _print_error(
                f"internal error: {type(exc).__name__}: {detail} "
                "(this is a bug; run with --debug and report the traceback)"
            )
            code = EXIT_INTERNAL
    sys.exit(code)
