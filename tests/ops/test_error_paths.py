"""Every op's C++ argument checks raise RuntimeError with the op's own message, on CPU and on
CUDA, and never take the process down: each case runs in its own subprocess, so a crash (the
first GPU run of medcl segfaulted on a TORCH_CHECK in CUDA glue) fails one case with its signal
instead of ending the test session. On CUDA also: a CPU tensor among CUDA arguments."""
from __future__ import annotations

import subprocess
import sys

import pytest

from medcl import _extension

needs_ext = pytest.mark.skipif(not _extension.state().loaded, reason="medcl._C not built")

# name -> (python statements with `dev` defined, a substring of the expected message)
CASES = {
    "intensity": ("torch.ops.medcl.intensity(torch.zeros(2, 3, 3, dtype=torch.int16, device=dev), "
                  "torch.zeros(3, 4, dtype=torch.float64, device=dev), torch.zeros(2, dtype=torch.int32, device=dev), "
                  "torch.zeros(2, dtype=torch.bool, device=dev), torch.float32)", "medcl::intensity"),
    "contrastive_lse": ("x = torch.randn(4, 8, device=dev, dtype=torch.bfloat16)\n"
                        "torch.ops.medcl.contrastive_lse(x, x, torch.ones(4, device=dev), "
                        "torch.ones(4, dtype=torch.bool, device=dev), 1.0, 0, False)", "keep_a must be bool"),
    "contrastive_lse_backward": ("x = torch.randn(4, 8, device=dev, dtype=torch.bfloat16)\n"
                                 "k = torch.ones(4, dtype=torch.bool, device=dev)\n"
                                 "s = torch.zeros(3, device=dev)\n"
                                 "torch.ops.medcl.contrastive_lse_backward(x, x, k, k, 1.0, 0, False, s, s, s, s, s)",
                                 "statistics and their gradients"),
    "sinkhorn_log": ("torch.ops.medcl.sinkhorn_log(torch.zeros(2, 3, 3, device=dev), 0)", "n_iters"),
    "sinkhorn_knopp": ("torch.ops.medcl.sinkhorn_knopp(torch.rand(4, 3, device=dev), 0.0, 3)",
                       "eps must be finite and > 0"),
    "decode_pixels": ("torch.ops.medcl.decode_pixels(torch.zeros(8, dtype=torch.uint8, device=dev), "
                      "torch.zeros(2, dtype=torch.int64, device=dev), torch.zeros(1, 5, dtype=torch.int64, device=dev), "
                      "torch.zeros(1, 4, dtype=torch.float64, device=dev), torch.zeros(1, dtype=torch.int32, device=dev), "
                      "torch.zeros(1, dtype=torch.bool, device=dev), 4, 4, torch.float32)", "medcl::decode_pixels"),
    "augment": ("torch.ops.medcl.augment(torch.zeros(1, 4, 4, device=dev), torch.ones(1, 2, dtype=torch.int64, device=dev), "
                "torch.zeros(1, 1, 5, dtype=torch.float64, device=dev), 2, 2, 0.0, 1.0, torch.float32)",
                "medcl::augment"),
}
# CUDA only: one CPU tensor among CUDA arguments gets the op's message, not the device guard's.
MIXED = {
    "contrastive_lse": ("x = torch.randn(4, 8, device='cpu', dtype=torch.bfloat16)\n"
                        "y = torch.randn(4, 8, device=dev, dtype=torch.bfloat16)\n"
                        "k = torch.ones(4, dtype=torch.bool, device=dev)\n"
                        "torch.ops.medcl.contrastive_lse(x, y, k, k, 1.0, 0, False)", "medcl::contrastive_lse"),
    "augment": ("torch.ops.medcl.augment(torch.zeros(1, 4, 4), torch.ones(1, 2, dtype=torch.int64, device=dev), "
                "torch.zeros(1, 1, 13, dtype=torch.float64, device=dev), 2, 2, 0.0, 1.0, torch.float32)",
                "medcl::augment"),
    "intensity": ("torch.ops.medcl.intensity(torch.zeros(2, 3, 3, dtype=torch.int16), "
                  "torch.zeros(2, 4, dtype=torch.float64, device=dev), torch.zeros(2, dtype=torch.int32, device=dev), "
                  "torch.zeros(2, dtype=torch.bool, device=dev), torch.float32)", "medcl::intensity"),
    "decode_pixels": ("torch.ops.medcl.decode_pixels(torch.zeros(8, dtype=torch.uint8), "
                      "torch.zeros(2, dtype=torch.int64, device=dev), torch.zeros(1, 7, dtype=torch.int64, device=dev), "
                      "torch.zeros(1, 4, dtype=torch.float64, device=dev), torch.zeros(1, dtype=torch.int32, device=dev), "
                      "torch.zeros(1, dtype=torch.bool, device=dev), 4, 4, torch.float32)", "medcl::decode_pixels"),
}

SCRIPT = """
import sys, torch
import medcl.ops  # registers the ops and their fake kernels
dev = torch.device(sys.argv[1])
try:
{body}
except RuntimeError as exc:
    print("RAISED", str(exc).replace(chr(10), " ")[:600])
else:
    print("NO ERROR")
"""


def _run(body: str, device: str) -> subprocess.CompletedProcess:
    code = SCRIPT.format(body="\n".join("    " + line for line in body.splitlines()))
    return subprocess.run([sys.executable, "-X", "faulthandler", "-c", code, device], capture_output=True,
                          text=True, timeout=300)


def _check(p: subprocess.CompletedProcess, want: str) -> None:
    assert p.returncode == 0, f"exit {p.returncode} (a negative code is a signal)\n{p.stdout}\n{p.stderr[-3000:]}"
    assert p.stdout.startswith("RAISED"), p.stdout + p.stderr[-2000:]
    assert want in p.stdout, p.stdout


@needs_ext
@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_arguments_raise_the_ops_message(device, case):
    if not _extension.has_kernel(case.removesuffix("_backward"), device.type):
        pytest.skip(f"no {device.type} kernel")
    body, want = CASES[case]
    _check(_run(body, str(device)), want)


@needs_ext
@pytest.mark.gpu
@pytest.mark.parametrize("case", sorted(MIXED))
def test_cpu_tensor_among_cuda_arguments(case):
    body, want = MIXED[case]
    p = _run(body, "cuda")
    _check(p, want)
    assert "device" in p.stdout.lower()
