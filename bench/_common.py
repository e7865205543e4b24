"""Shared benchmark plumbing: timing, environment record, JSON results under bench/results/<device>/."""
from __future__ import annotations

import json
import platform
import subprocess
import time
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parent / "results"


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device).replace(" ", "-").lower()
    return "cpu"


def environment(device: torch.device) -> dict:
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=Path(__file__).parent, timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        commit = None
    import medcl
    from medcl import _extension
    return {"device": device_name(device), "cpu": platform.processor() or platform.machine(),
            "threads": torch.get_num_threads(), "torch": torch.__version__, "medcl": medcl.__version__,
            "commit": commit, "extension_loaded": _extension.state().loaded}


def time_once(fn, device: torch.device) -> float:
    """Seconds of one fn() call (the GPU synchronised before and after)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - t0


def timeit(fn, device: torch.device, *, warmup: int = 2, repeat: int = 5) -> float:
    """Median seconds of fn() over `repeat` runs after `warmup`."""
    for _ in range(warmup):
        fn()
    times = sorted(time_once(fn, device) for _ in range(repeat))
    return times[len(times) // 2]


def save(name: str, device: torch.device, payload: dict, out: Path | None = None) -> Path:
    """Writes payload with the environment to ``out``, default bench/results/<device>/<name>.json."""
    out = out or RESULTS / device_name(device) / f"{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"env": environment(device), **payload}, indent=2) + "\n")
    return out


def table(rows: list[dict], columns: list[str]) -> str:
    widths = [max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in columns]
    line = "  ".join(c.ljust(w) for c, w in zip(columns, widths))
    body = ["  ".join(str(r.get(c, "")).ljust(w) for c, w in zip(columns, widths)) for r in rows]
    return "\n".join([line, "-" * len(line), *body])
