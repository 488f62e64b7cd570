"""What ``hypernst info`` reports, as plain data (the CLI only formats it)."""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path
from typing import Any

from hypernst_cli import __version__


def cache_dir() -> Path:
    """hypernst's own cache (style codes, quarantined downloads): $HYPERNST_CACHE or XDG."""
    env = os.environ.get("HYPERNST_CACHE")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "hypernst"


def collect_info(device_spec: str = "auto") -> dict[str, Any]:
    import torch

    from hypernst_cli.configs import config_names, get_config
    from hypernst_cli.device import describe_device, resolve_device, thread_policy
    from hypernst_cli.weights.registry import RESOLUTION_ORDER, load_registry, locate

    try:
        import torchvision

        tv_version = torchvision.__version__
    except Exception:  # noqa: BLE001 - report, don't fail
        tv_version = "not importable"

    cuda_ok = torch.cuda.is_available()
    cuda = {
        "available": cuda_ok,
        "version": torch.version.cuda,
        "devices": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        if cuda_ok
        else [],
    }
    from hypernst_cli.errors import DeviceError

    # `info` is where a user finds out what this machine has: a --device that is not there is
    # reported (why, the fix, and what auto would use), not an error as in the other commands
    device_error = None
    try:
        device = describe_device(resolve_device(device_spec))
    except DeviceError as exc:
        device, device_error = None, exc.one_line()

    configs = []
    for name in config_names():
        cfg = get_config(name)
        configs.append(
            {"name": name, "resolution": cfg.resolution, "description": cfg.description}
        )

    weights = []
    for entry in load_registry().values():
        path, status = locate(entry)
        weights.append(
            {
                "name": entry.name,
                "kind": entry.kind,
                "configs": list(entry.configs),
                "status": status,
                "path": str(path) if path else None,
                "source": entry.source,
                "pinned": entry.pinned,
                "license": entry.license,
            }
        )

    return {
        "environment": {
            "hypernst": __version__,
            "python": platform.python_version(),
            "platform": f"{sys.platform}-{platform.machine()}",
            "torch": torch.__version__,
            "torchvision": tv_version,
            "cuda": cuda,
        },
        "device": device,  # None: --device names a device that is not there (device_error)
        **({"device_error": device_error, "device_auto": describe_device(resolve_device("auto"))}
           if device_error else {}),
        "threads": dict(zip(("count", "reason"), thread_policy(), strict=True)),
        "device_spec": device_spec,
        "cache_dir": str(cache_dir()),
        "configs": configs,
        "weights": weights,
        "weights_resolution_order": list(RESOLUTION_ORDER),
    }
