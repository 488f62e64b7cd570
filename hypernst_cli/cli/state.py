"""Global CLI state (set by the app callback from --device/--debug/--quiet) and the consoles."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property

from rich.console import Console


@dataclass
class AppState:
    device: str = "auto"
    debug: bool = False
    quiet: bool = False

    @cached_property
    def out(self) -> Console:
        """Results (stdout)."""
        return Console(highlight=False, soft_wrap=True)

    @cached_property
    def err(self) -> Console:
        """Errors, warnings and progress (stderr)."""
        return Console(stderr=True, highlight=False, soft_wrap=True)

    def info(self, message: str) -> None:
        """A status line on stderr, silenced by --quiet."""
        if not self.quiet:
            self.err.print(message)

    def warn(self, message: str) -> None:
        self.err.print(f"[yellow]warning:[/] {message}")


STATE = AppState(debug=os.environ.get("HYPERNST_DEBUG", "") not in ("", "0"))
