"""The one device policy: parse ``--device``, pick a device, set CPU threads.

``auto`` picks the first CUDA device when one is usable, else the CPU. Asking for a CUDA device that
is not there is an error (exit 4), never a silent fall-back.
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING

from hypernst_cli.errors import DeviceError, UsageError

if TYPE_CHECKING:
    import torch

_SPEC = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


def validate_device_spec(spec: str) -> str:
    """Check the syntax of a ``--device`` value without importing torch."""
    s = spec.strip().lower()
    if not _SPEC.match(s):
        raise UsageError(f"invalid --device '{spec}'", hint="use auto, cpu, cuda or cuda:N")
    return s


def resolve_device(spec: str = "auto") -> torch.device:
    import torch

    s = validate_device_spec(spec)
    if s == "cpu":
        device = torch.device("cpu")
    elif s == "auto":
        device = torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    else:
        if not torch.cuda.is_available():
            raise DeviceError(
                f"--device {spec}: CUDA is not available on this machine",
                hint="use --device cpu or auto",
            )
        index = int(s.split(":")[1]) if ":" in s else 0
        count = torch.cuda.device_count()
        if index >= count:
            raise DeviceError(
                f"--device {spec}: there are only {count} CUDA device(s)",
                hint=f"use cuda:0..cuda:{count - 1}",
            )
        device = torch.device("cuda", index)
    if device.type == "cpu":
        configure_cpu_threads()
    return device


def cpu_budget() -> int:
    """CPU cores this process may use: its affinity mask, capped by a cgroup CPU quota (a
    container limited to 2 CPUs on a 64-core host must not start 64 threads)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    quota = _cgroup_cpu_quota()
    if quota is not None:
        cores = min(cores, max(1, int(quota + 0.5)))
    return max(1, cores)


def _cgroup_cpu_quota() -> float | None:
    """CPUs allowed by the cgroup (v2 ``cpu.max``, v1 ``cfs_quota_us``), or None if unlimited."""
    from pathlib import Path

    try:
        text = Path("/sys/fs/cgroup/cpu.max").read_text().split()
        if text and text[0] != "max":
            return int(text[0]) / int(text[1])
        return None
    except (OSError, ValueError, IndexError):
        pass
    try:
        quota = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read_text())
        period = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text())
        return quota / period if quota > 0 and period > 0 else None
    except (OSError, ValueError):
        return None


def configure_cpu_threads() -> int:
    """One intra-op thread per usable core that other processes are not already using, unless
    the user set OMP_NUM_THREADS (or HYPERNST_THREADS).

    Usable cores: the affinity mask, capped by a cgroup quota. Busy cores: the 1-minute load
    average at start-up, rounded. Why: every parallel region of a forward pass ends in a barrier,
    so one thread descheduled by a competing process stalls all of them; on a 2-core machine
    running another job, 2 threads measured ~10-50x slower than 1 (benchmarks/RESULTS.md), while
    on an idle machine all cores are used.
    """
    import torch

    requested = os.environ.get("HYPERNST_THREADS", "").strip()
    if requested:
        try:
            n = int(requested)
        except ValueError:
            raise UsageError(f"HYPERNST_THREADS must be a positive integer, got '{requested}'") from None
        if n < 1:
            raise UsageError(f"HYPERNST_THREADS must be a positive integer, got '{requested}'")
        torch.set_num_threads(n)
        return n
    if "OMP_NUM_THREADS" in os.environ:
        return torch.get_num_threads()
    cores = cpu_budget()
    threads = max(1, cores - busy_cores(cores))
    torch.set_num_threads(threads)
    return threads


def busy_cores(cores: int) -> int:
    """Cores other processes keep busy (1-minute load average, rounded; 0 where unknown)."""
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        return 0
    return min(cores, int(load + 0.5))


def describe_device(device: torch.device) -> str:
    import torch

    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        return f"{device} ({props.name}, {props.total_memory / 2**30:.0f} GiB)"
    return f"cpu ({torch.get_num_threads()} threads)"
