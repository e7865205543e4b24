"""Crash-safe file writes shared by checkpoints, exported weights and prepared datasets.

A file is written to a temporary name in its own folder (``.NAME.XXXXXXXX.tmp``), fsync'ed and
renamed with ``os.replace``, then the folder is fsync'ed: a crash leaves the old file or the new
one, never half of one (and at worst a stale ``.*.tmp`` file, which :data:`TMP_GLOB` matches).
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

TMP_GLOB = ".*.tmp"  # the temporary names atomic_write uses


def current_umask() -> int:
    """The process umask (read by setting and restoring it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def honour_umask(path, base: int = 0o666) -> None:
    """Give ``path`` the mode a plain open()/mkdir() would have (``base`` & ~umask): mkstemp and
    mkdtemp create private 0600/0700 entries, which colleagues on a shared project cannot read."""
    os.chmod(path, base & ~current_umask())


def fsync_dir(folder) -> None:
    """fsync a folder (its entries: a rename into it survives a crash); a no-op where unsupported."""
    try:
        fd = os.open(os.fspath(folder), os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path, write) -> Path:
    """Creates ``path`` atomically: ``write(tmp)`` fills a temp file in the same folder, which is
    fsync'ed and renamed over ``path`` with os.replace (removed on any failure)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        honour_umask(tmp)   # after write: some writers (safetensors) replace the file with a 0600 one
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
    return path
