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


# --- which GPUs the compiled kernels run on ---------------------------------------------------

import logging  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

from medcl import _extension  # noqa: E402


@pytest.mark.parametrize("arch,cap,runs", [
    ("8.0", (8, 0), True), ("8.0", (8, 6), True), ("8.0", (9, 0), False), ("8.6", (8, 0), False),
    ("9.0a", (9, 0), True), ("9.0a", (10, 0), False), ("9.0a", (8, 0), False),
    ("10.0+PTX", (12, 0), True), ("10.0+PTX", (9, 0), False), ("9.0+PTX", (9, 0), True),
    ("7.0", (7, 5), True), ("junk", (9, 0), False)])
def test_arch_runs(arch, cap, runs):
    assert _extension.arch_runs(arch, cap) is runs


@pytest.fixture
def fake_gpu(monkeypatch):
    """A CUDA kernel registered for every op, build archs and the device's capability as set."""
    _extension._usable.clear()
    _extension._warned.clear()
    monkeypatch.setattr(_extension, "has_kernel", lambda op, dev: True)
    monkeypatch.setattr(_extension, "device_name", lambda i: "Tesla V100")
    st = _extension.ExtensionState(True, "", {"cuda_archs": ["8.0", "9.0a"]})
    monkeypatch.setattr(_extension, "_state", st)
    caps = {"cap": (9, 0)}
    monkeypatch.setattr(_extension, "device_capability", lambda i: caps["cap"])
    yield st, caps
    _extension._usable.clear()
    _extension._warned.clear()


def test_old_gpu_gets_the_reference_with_one_warning_per_op(fake_gpu, caplog):
    st, caps = fake_gpu
    caps["cap"] = (7, 0)                                   # a V100: no sm_70 code in an 8.0;9.0a build
    with caplog.at_level(logging.WARNING, logger="medcl"):
        for _ in range(3):
            assert not _extension.use_kernel("augment", torch.device("cuda", 0))
            assert not _extension.use_kernel("contrastive_lse", "cuda:0")
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 2, warnings                    # one per op and process
    assert all("Tesla V100" in w and "7.0" in w and "TORCH_CUDA_ARCH_LIST" in w for w in warnings), warnings
    assert _extension.backend("augment", torch.device("cuda", 0)) == "reference" or not torch.cuda.is_available()


def test_capability_rules_per_op(fake_gpu):
    st, caps = fake_gpu
    caps["cap"] = (9, 0)
    assert _extension.cuda_kernel_problem("contrastive_lse", 0) == ""
    caps["cap"] = (8, 6)                                   # sm_80 cubin runs on 8.6
    assert _extension.cuda_kernel_problem("augment", 0) == ""
    st.build_info["cuda_archs"] = ["9.0a"]                 # a wheel built for another architecture
    assert "9.0a" in _extension.cuda_kernel_problem("augment", 0)
    st.build_info["cuda_archs"] = ["7.5+PTX"]              # PTX runs, but contrastive needs sm_80
    caps["cap"] = (7, 5)
    assert _extension.cuda_kernel_problem("augment", 0) == ""
    assert "8.0 or newer" in _extension.cuda_kernel_problem("contrastive_lse", 0)
    st.build_info["cuda_archs"] = ["8.0;9.0a"]             # one string as TORCH_CUDA_ARCH_LIST gave it
    caps["cap"] = (9, 0)
    assert _extension.cuda_kernel_problem("augment", 0) == ""


def test_public_ops_follow_the_decision(monkeypatch, gen):
    """An op whose kernel cannot run gets its reference, through the same decision function."""
    import sys

    import medcl.ops
    calls = []
    monkeypatch.setattr(_extension, "use_kernel", lambda op, dev: calls.append(op) or False)
    x = torch.randint(0, 4096, (2, 8, 8), generator=gen, dtype=torch.int16)
    out = medcl.ops.intensity(x, center=2048, width=4096)
    want = sys.modules["medcl.ops.intensity"].intensity_reference(
        x, *sys.modules["medcl.ops.intensity"].pack_params(2, center=2048, width=4096), torch.float32)
    assert torch.equal(out, want) and calls == ["intensity"]
