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


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_atomic_write_honours_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        path = atomic_write(tmp_path / "weights.bin", _write("new"))
        plain = tmp_path / "plain.bin"
        plain.write_text("x")                                 # what open() gives under this umask
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == stat.S_IMODE(plain.stat().st_mode) == 0o666 & ~umask
    assert path.read_text() == "new"


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    path = atomic_write(tmp_path / "a.txt", _write("old"))

    def fail(tmp):
        _write("half")(tmp)
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(path, fail)
    assert path.read_text() == "old" and not list(tmp_path.glob(TMP_GLOB))
