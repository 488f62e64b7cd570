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


def configure_cpu_threads() -> int:
    """Use every core we are allowed (affinity-aware), unless the user set OMP_NUM_THREADS."""
    import torch

    if "OMP_NUM_THREADS" in os.environ:
        return torch.get_num_threads()
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    torch.set_num_threads(max(1, cores))
    return cores


def describe_device(device: torch.device) -> str:
    import torch

    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        return f"{device} ({props.name}, {props.total_memory / 2**30:.0f} GiB)"
    return f"cpu ({torch.get_num_threads()} threads)"
