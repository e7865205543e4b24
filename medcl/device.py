"""``--device`` values → torch.device, with a clear error for devices that are not there."""
from __future__ import annotations

import torch

from medcl.errors import ConfigError


def resolve_device(spec: str | torch.device | None) -> torch.device:
    """cpu, cuda, cuda:N, or auto (cuda when a GPU is visible, else cpu)."""
    if isinstance(spec, torch.device):
        return spec
    spec = (spec or "auto").strip().lower()
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(spec)
    except (RuntimeError, ValueError):
        raise ConfigError(f"'{spec}' is not a device", fix="use cpu, cuda, cuda:N or auto") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError("no CUDA device is visible (torch.cuda.is_available() is False)",
                              fix="use --device cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ConfigError(f"only {torch.cuda.device_count()} CUDA device(s) visible", fix="use a smaller N")
    elif dev.type != "cpu":
        raise ConfigError(f"unsupported device type '{dev.type}'", fix="use cpu or cuda")
    return dev
