"""Loads the compiled ops (medcl._C) and decides, per op and device, which backend runs.

The build writes ``_build_info.json`` beside ``_C``. On first use we compare it with the
running torch; a mismatch, a missing ``_C`` or a failing import gives ONE warning line and
every op falls back to its pure-PyTorch reference. ``MEDCL_BACKEND=reference`` forces the
reference path silently. Nothing here raises ImportError.
"""
from __future__ import annotations

import importlib
import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("medcl")



def _build_info_path() -> Path | None:
    """_build_info.json beside this file or, for editable installs, beside the built _C."""
    here = Path(__file__).with_name("_build_info.json")
    if here.is_file():
        return here
    try:
        import importlib.util
        spec = importlib.util.find_spec("medcl._C")
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.origin:
        there = Path(spec.origin).with_name("_build_info.json")
        if there.is_file():
            return there
    return None

_REINSTALL = "rebuild medcl against this torch: pip install --no-build-isolation --force-reinstall ."


@dataclass
class ExtensionState:
    loaded: bool                       # medcl._C imported and its ops registered
    reason: str                        # why not, or "" when loaded
    build_info: dict = field(default_factory=dict)


_state: ExtensionState | None = None


def _check_build_info(info: dict) -> str:
    """Returns why the build does not match the running torch, or ""."""
    import torch

    built, running = info.get("torch_version"), torch.__version__
    if built != running:
        return f"medcl._C was built for torch {built}, but torch {running} is installed"
    built_cuda, running_cuda = info.get("torch_cuda"), torch.version.cuda
    if built_cuda is not None and built_cuda != running_cuda:
        return f"medcl._C was built for CUDA {built_cuda}, but torch uses CUDA {running_cuda}"
    abi = info.get("cxx11_abi")
    if abi is not None and bool(abi) != bool(torch._C._GLIBCXX_USE_CXX11_ABI):
        return "medcl._C was built with a different C++ ABI than this torch"
    return ""


def _load() -> ExtensionState:
    if os.environ.get("MEDCL_BACKEND", "").strip().lower() == "reference":
        return ExtensionState(False, "MEDCL_BACKEND=reference")
    info: dict = {}
    path = _build_info_path()
    if path is not None:
        try:
            info = json.loads(path.read_text())
        except (OSError, ValueError):
            info = {}
    if not info:
        reason = "medcl._C is not built (no _build_info.json)"
    else:
        reason = _check_build_info(info)
    if not reason:
        try:
            importlib.import_module("medcl._C")
        except (ImportError, OSError) as exc:
            reason = f"medcl._C failed to load ({type(exc).__name__}: {str(exc).splitlines()[0]})"
    if reason:
        log.warning("%s; using the pure-PyTorch reference ops (slower); %s", reason, _REINSTALL)
        return ExtensionState(False, reason, info)
    return ExtensionState(True, "", info)


def state() -> ExtensionState:
    """The extension's state, loading it on first call."""
    global _state
    if _state is None:
        _state = _load()
    return _state


def has_kernel(op: str, device_type: str) -> bool:
    """True when medcl._C registered a kernel of ``torch.ops.medcl.<op>`` for this device type."""
    if not state().loaded:
        return False
    import torch

    key = {"cpu": "CPU", "cuda": "CUDA"}.get(device_type)
    if key is None:
        return False
    try:
        return bool(torch._C._dispatch_has_kernel_for_dispatch_key(f"medcl::{op}", key))
    except RuntimeError:
        return False


# Oldest compute capability each op's CUDA kernels need (bf16 / TF32 tensor cores for the
# contrastive kernels; the others run on any architecture the extension was built for).
MIN_CAPABILITY = {"contrastive_lse": (8, 0)}


def arch_runs(arch: str, capability: tuple[int, int]) -> bool:
    """Whether code built for ``arch`` (a TORCH_CUDA_ARCH_LIST entry: "8.0", "9.0a", "10.0+PTX")
    runs on a device of ``capability``: machine code (cubin) runs on its own major version at the
    same or a newer minor, an "a" (architecture-specific) cubin only on exactly its version, and
    PTX is compiled by the driver for any device at least as new."""
    arch = arch.strip().lower()
    ptx = arch.endswith("+ptx")
    arch = arch.removesuffix("+ptx")
    specific = arch.endswith("a") or arch.endswith("f")
    try:
        major, minor = (int(x) for x in arch.rstrip("af").split("."))
    except ValueError:
        return False
    if ptx and not specific and capability >= (major, minor):
        return True
    if specific:
        return capability == (major, minor)
    return capability[0] == major and capability[1] >= minor


def device_capability(index: int) -> tuple[int, int]:
    """The compute capability of CUDA device ``index`` (tests patch this)."""
    import torch

    return tuple(torch.cuda.get_device_capability(index))


def device_name(index: int) -> str:
    import torch

    try:
        return torch.cuda.get_device_name(index)
    except (RuntimeError, AssertionError):
        return f"cuda:{index}"


def cuda_kernel_problem(op: str, index: int) -> str:
    """Why ``op``'s compiled CUDA kernel cannot run on device ``index``, or "" when it can."""
    if not has_kernel(op, "cuda"):
        return state().reason or "medcl._C was built without CUDA kernels"
    cap = device_capability(index)
    archs = [x for a in state().build_info.get("cuda_archs") or [] for x in re.split(r"[;\s]+", str(a)) if x]
    if not any(arch_runs(a, cap) for a in archs):
        return (f"medcl._C holds code for {', '.join(archs) or 'no GPU architecture'}, which cannot run on "
                f"{device_name(index)} (compute capability {cap[0]}.{cap[1]}); rebuild with "
                f"TORCH_CUDA_ARCH_LIST=\"{cap[0]}.{cap[1]}\"")
    need = MIN_CAPABILITY.get(op)
    if need and cap < need:
        return (f"its CUDA kernel needs compute capability {need[0]}.{need[1]} or newer, and "
                f"{device_name(index)} is {cap[0]}.{cap[1]}")
    return ""


_usable: dict[tuple[str, int], bool] = {}
_warned: set[str] = set()


def _cuda_index(device) -> int:
    import torch

    device = torch.device(device)
    return device.index if device.index is not None else torch.cuda.current_device()


def use_kernel(op: str, device) -> bool:
    """True when ``op``'s compiled kernel runs on ``device`` (a torch.device, a string or a
    tensor's device). On a GPU it cannot run on (an architecture the build lacks, or older than
    the op needs), the reference runs instead, with one warning per op and process."""
    import torch

    device = torch.device(device)
    if device.type != "cuda":
        return has_kernel(op, device.type)
    index = _cuda_index(device)
    key = (op, index)
    if key not in _usable:
        why = cuda_kernel_problem(op, index)
        _usable[key] = not why
        if why and has_kernel(op, "cuda") and op not in _warned:     # a kernel this GPU cannot run
            _warned.add(op)
            log.warning("medcl: %s runs its pure-PyTorch reference on %s: %s", op, device_name(index), why)
    return _usable[key]


def backend(op: str, device) -> str:
    """Which implementation runs ``op`` on ``device`` (a device type such as "cuda", a
    torch.device or a string): "cpp", "cuda" or "reference"."""
    import torch

    device = torch.device(device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            return "cuda" if has_kernel(op, "cuda") else "reference"
        return "cuda" if use_kernel(op, device) else "reference"
    return "cpp" if has_kernel(op, device.type) else "reference"


# Ops with compiled kernels; `medcl info` lists their backends.
OPS = ("intensity", "contrastive_lse", "sinkhorn_log", "sinkhorn_knopp", "decode_pixels", "augment")
