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


def backend(op: str, device_type: str) -> str:
    """Which implementation runs ``op`` on ``device_type``: "cpp", "cuda" or "reference"."""
    if has_kernel(op, device_type):
        return "cuda" if device_type == "cuda" else "cpp"
    return "reference"


# Ops with compiled kernels; `medcl info` lists their backends.
OPS = ("intensity", "contrastive_lse", "sinkhorn_log", "sinkhorn_knopp", "decode_pixels", "augment")
