"""Atomic checkpoints: RUN/checkpoints/step-N.pt and last.pt, the newest ``keep`` kept.

Each file is written to a temporary name in the same folder, flushed, fsync'ed and renamed
with ``os.replace``, so a crash leaves either the old file or the new one, never half of one.
``load_latest`` falls back to older checkpoints when the newest cannot be read. Everything is
loaded with ``torch.load(weights_only=True)``: a checkpoint holds only tensors and plain
Python values (RNG states are converted to tensors and lists).
"""
from __future__ import annotations

import logging
import os
import random
import re
import shutil
from pathlib import Path

import numpy as np
import torch

from medcl.errors import MedclError
from medcl.files import atomic_write

log = logging.getLogger("medcl")

FORMAT = "medcl.checkpoint"
_STEP = re.compile(r"^step-(\d+)\.pt$")


def atomic_save(obj, path: Path) -> None:
    """torch.save to ``path`` atomically (see :func:`atomic_write`)."""
    atomic_write(path, lambda tmp: torch.save(obj, tmp))


def _alias(src: Path, dst: Path) -> None:
    """Atomically make ``dst`` the same file as ``src``: a hard link (no second write of a large
    checkpoint), or a copy where the file system has no hard links."""
    def link_or_copy(tmp: str) -> None:
        os.unlink(tmp)
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)

    atomic_write(dst, link_or_copy)


def step_checkpoints(folder: Path) -> list[tuple[int, Path]]:
    """(step, path) of every step-N.pt, newest first."""
    if not Path(folder).is_dir():
        return []
    found = [(int(m.group(1)), p) for p in Path(folder).iterdir() if (m := _STEP.match(p.name))]
    return sorted(found, reverse=True)


def save_checkpoint(state: dict, folder: Path, step: int, *, keep: int = 2) -> Path:
    """Writes step-<step>.pt, points last.pt at it and prunes all but the newest ``keep``."""
    folder = Path(folder)
    path = folder / f"step-{step}.pt"
    atomic_save({"format": FORMAT, **state}, path)
    _alias(path, folder / "last.pt")
    for _, old in step_checkpoints(folder)[max(keep, 1):]:
        try:
            old.unlink()
        except OSError:
            pass
    return path


def load(path: Path, map_location="cpu") -> dict:
    """A checkpoint or exported weights file, safely (weights_only=True)."""
    path = Path(path)
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise MedclError("checkpoint not found", path=path, fix="check the path, or use --resume auto") from None
    except Exception as exc:  # noqa: BLE001 - truncated/corrupt/unsafe pickles
        raise MedclError(f"cannot read checkpoint ({type(exc).__name__})", path=path,
                         fix="the file is corrupt or not a medcl checkpoint") from None
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise MedclError("not a medcl checkpoint", path=path, fix="pass RUN/checkpoints/last.pt or step-N.pt")
    return obj


def load_latest(folder: Path, map_location="cpu") -> tuple[dict, Path] | None:
    """The newest readable checkpoint in ``folder`` (last.pt, then step-N.pt newest first), or None."""
    folder = Path(folder)
    candidates = [folder / "last.pt"] + [p for _, p in step_checkpoints(folder)]
    for path in candidates:
        if not path.is_file():
            continue
        try:
            return load(path, map_location), path
        except MedclError:
            log.warning("checkpoint %s is unreadable; trying an older one", path.name)
    return None


# --- RNG states as weights_only-safe values ----------------------------------------------------

def rng_state() -> dict:
    """This process's RNG states (torch CPU and CUDA, numpy, python) as tensors and lists."""
    np_state = np.random.get_state()
    py_state = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [str(np_state[0]), torch.from_numpy(np_state[1].astype(np.int64)), int(np_state[2]),
                  int(np_state[3]), float(np_state[4])],
        "python": [py_state[0], list(py_state[1]), py_state[2]],
    }


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    name, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
