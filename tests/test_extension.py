"""medcl._extension: a missing or mismatched _C gives one warning line and the reference path."""
from __future__ import annotations

import json
import subprocess
import sys

SNIPPET = """
import logging, sys, torch
{setup}
import medcl.ops
from medcl import _extension
x = torch.randint(0, 4096, (2, 8, 8), dtype=torch.int16)
a = medcl.ops.intensity(x, center=2048, width=4096)
b = medcl.ops.intensity(x, center=1000, width=500, function="sigmoid", invert=True)
print("LOADED", _extension.state().loaded, "BACKEND", _extension.backend("intensity", "cpu"),
      "OK", bool(torch.isfinite(a).all() and torch.isfinite(b).all()))
"""


def _run(setup: str, env=None):
    import os
    p = subprocess.run([sys.executable, "-c", SNIPPET.format(setup=setup)], capture_output=True, text=True,
                       timeout=120, env={**os.environ, **(env or {})})
    assert p.returncode == 0, p.stderr
    return p.stdout, [line for line in p.stderr.splitlines() if line.strip()]


def test_missing_C_one_warning_reference_path():
    out, err = _run("sys.modules['medcl._C'] = None  # as if the .so were deleted")
    assert "LOADED False BACKEND reference OK True" in out
    assert len(err) == 1 and "medcl._C" in err[0] and "reference" in err[0], err


def test_mismatched_build_info_one_warning(tmp_path):
    info = tmp_path / "_build_info.json"
    info.write_text(json.dumps({"torch_version": "1.0.0+other", "torch_cuda": None, "cxx11_abi": True}))
    setup = ("import medcl._extension as e, pathlib\n"
             f"e._build_info_path = lambda: pathlib.Path({str(info)!r})")
    out, err = _run(setup)
    assert "LOADED False BACKEND reference OK True" in out
    assert len(err) == 1 and "built for torch 1.0.0+other" in err[0], err


def test_forced_reference_is_silent():
    out, err = _run("", env={"MEDCL_BACKEND": "reference"})
    assert "LOADED False BACKEND reference OK True" in out
    assert err == []


def test_built_extension_is_used_when_present():
    from medcl import _extension
    st = _extension.state()
    if not st.build_info:
        import pytest
        pytest.skip("medcl._C not built in this environment")
    assert st.loaded, st.reason
    assert _extension.backend("intensity", "cpu") == "cpp"
