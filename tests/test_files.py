"""medcl.files: atomic writes leave the old or the new file, with the mode the umask gives."""
from __future__ import annotations

import os
import stat

import pytest

from medcl.files import TMP_GLOB, atomic_write


def _write(text):
    def fill(tmp):
        with open(tmp, "w") as fh:
            fh.write(text)
    return fill


def _replace_private(tmp):
    """A writer like safetensors' save_file: the file it leaves at ``tmp`` is a new, 0600 one."""
    other = f"{tmp}.other"
    fd = os.open(other, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write("new")
    os.replace(other, tmp)


@pytest.mark.parametrize("writer", [_write("new"), _replace_private], ids=["in place", "replaced"])
@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_atomic_write_honours_the_umask(tmp_path, umask, writer):
    old = os.umask(umask)
    try:
        path = atomic_write(tmp_path / "weights.bin", writer)
        plain = tmp_path / "plain.bin"
        plain.write_text("x")                                 # what open() gives under this umask
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == stat.S_IMODE(plain.stat().st_mode) == 0o666 & ~umask
    assert path.read_text() == "new"


def test_exported_weights_are_readable_by_the_group(tmp_path):
    import torch

    from medcl.train.export import export_weights
    old = os.umask(0o002)
    try:
        path = export_weights({"w": torch.zeros(2)}, tmp_path / "encoder.safetensors", {})
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o664


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    path = atomic_write(tmp_path / "a.txt", _write("old"))

    def fail(tmp):
        _write("half")(tmp)
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(path, fail)
    assert path.read_text() == "old" and not list(tmp_path.glob(TMP_GLOB))
