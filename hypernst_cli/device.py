"""The one device policy: parse ``--device``, pick a device, set CPU threads.

``auto`` picks the first CUDA device when one is usable, else the CPU. Asking for a CUDA device that
is not there is an error (exit 4), never a silent fall-back (``hypernst info`` reports it instead).
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


#: environment variables that set the thread count, in the order they are honoured: the project's
#: own, then OpenMP's and MKL's (torch reads both when it starts)
THREAD_VARIABLES = ("HYPERNST_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")

_requested_threads: int | None = None  # --threads


def request_threads(n: int | None) -> None:
    """Record ``--threads`` (it wins over the environment)."""
    global _requested_threads
    if n is not None and n < 1:
        raise UsageError(f"--threads must be at least 1, got {n}")
    _requested_threads = n


def thread_policy() -> tuple[int, str]:
    """(threads, why): ``--threads``, else the first of ``THREAD_VARIABLES`` that is set, else
    one thread per usable core (the affinity mask, capped by a cgroup CPU quota).

    Not a guess from the load average: a load seen at start-up says nothing about the next
    minutes, and on a 2-core machine the guess ran a lone job on 1 thread, about half speed
    (benchmarks/RESULTS.md). Users who share cores set the count themselves.
    """
    if _requested_threads is not None:
        return _requested_threads, f"--threads {_requested_threads}"
    for name in THREAD_VARIABLES:
        raw = os.environ.get(name, "").strip()
        if not raw:
            continue
        # OpenMP allows a list per nesting level ("4,2"): the first is the outer one
        try:
            n = int(raw.split(",")[0])
        except ValueError:
            n = 0
        if n < 1:
            raise UsageError(f"{name} must be a positive integer, got '{raw}'",
                             hint=f"unset {name} or give a number of threads")
        return n, f"{name}={raw}"
    cores = cpu_budget()
    return cores, f"one per usable core: {_cores_text()}"


def _cores_text() -> str:
    try:
        mask = len(os.sched_getaffinity(0))
        text = f"{mask} in this process's CPU mask"
    except AttributeError:
        text = f"{os.cpu_count() or 1} cores"
    quota = _cgroup_cpu_quota()
    if quota is not None:
        text += f", cgroup quota {quota:g} CPUs"
    return text


def configure_cpu_threads() -> int:
    """Set torch's intra-op threads by ``thread_policy`` and return the count."""
    import torch

    threads, _ = thread_policy()
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return threads


def describe_device(device: torch.device) -> str:
    import torch

    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        return f"{device} ({props.name}, {props.total_memory / 2**30:.0f} GiB)"
    return f"cpu ({torch.get_num_threads()} threads)"


def precision_warning(precision: str, device: torch.device) -> str | None:
    """A one-line warning for a precision that is slow on ``device``, else None.

    fp16 autocast on a CPU has no fast kernels: one stylize pass (initial G + 3 refinement
    iterations, one thread, torch 2.14) took 3.2 s vs 55 ms in fp32 for the tiny model and 13.9 s
    vs 0.24 s for the embedded compact model, while bf16 ran about as fast as fp32 (65 ms and
    0.20 s)."""
    if precision == "fp16" and device.type == "cpu":
        return ("fp16 is meant for GPUs and runs about 50x slower than fp32 on a CPU; "
                "use --precision bf16 or fp32 there")
    return None
