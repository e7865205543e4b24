"""medcl.ops.sinkhorn_knopp (SwAV codes) against SwAV's exp-domain algorithm in float64,
its marginals, small ε in float32, and global marginals under 2 gloo processes; the compiled
ops (torch.ops.medcl.sinkhorn_knopp*) against the float64 reference, opcheck, poisoned outputs."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from medcl import _extension
from medcl.ops import sinkhorn_knopp
from medcl.ops.sinkhorn_knopp import sinkhorn_knopp_reference

WORKER = Path(__file__).with_name("ddp_sinkhorn_knopp_worker.py")
needs_kernel = pytest.mark.skipif(not _extension.state().loaded, reason="medcl._C not built")


def _rel(got, want):
    """Max error over the largest magnitude (codes lie in [0, 1]: an absolute error)."""
    got, want = got.detach().double().cpu(), want.detach().double().cpu()
    return float((got - want).abs().max() / want.abs().max().clamp_min(1e-300))


def swav_exp_domain(scores, eps, n_iters):
    """SwAV's Sinkhorn-Knopp as published (exponentiate, then alternate normalisations)."""
    Q = torch.exp(scores / eps).T                                        # (K, B)
    K, B = Q.shape
    Q = Q / Q.sum()
    for _ in range(n_iters):
        Q = Q / Q.sum(dim=1, keepdim=True) / K
        Q = Q / Q.sum(dim=0, keepdim=True) / B
    return (Q * B).T


@pytest.mark.parametrize("B,K", [(1, 1), (2, 5), (37, 10), (256, 3000)])
@pytest.mark.parametrize("n_iters", [1, 3, 10])
def test_matches_swav_in_float64(device, gen, B, K, n_iters):
    scores = (2 * torch.rand(B, K, generator=gen, dtype=torch.float64) - 1).to(device)
    got = sinkhorn_knopp(scores, eps=0.05, n_iters=n_iters)
    want = swav_exp_domain(scores, 0.05, n_iters)
    assert got.dtype == torch.float64
    assert torch.allclose(got, want, rtol=1e-9, atol=1e-12)
    assert torch.allclose(got.sum(1), torch.ones(B, dtype=torch.float64, device=device))


def test_marginals_are_uniform_after_enough_rounds(device, gen):
    B, K = 120, 8
    scores = torch.randn(B, K, generator=gen).to(device)
    codes = sinkhorn_knopp(scores, eps=0.5, n_iters=500)
    assert (codes.sum(1) - 1).abs().max() < 1e-5
    assert (codes.sum(0) - B / K).abs().max() < 1e-3


def test_small_eps_stays_finite_in_float32(device, gen):
    B, K = 64, 300
    scores = (2 * torch.rand(B, K, generator=gen) - 1).to(device)
    assert not torch.isfinite(swav_exp_domain(scores, 0.01, 3)).all()     # exp(100) overflows float32
    codes = sinkhorn_knopp(scores, eps=0.01, n_iters=3)
    assert codes.dtype == torch.float32 and torch.isfinite(codes).all()
    assert (codes.sum(1) - 1).abs().max() < 1e-4
    want = sinkhorn_knopp(scores.double(), eps=0.01, n_iters=3)
    assert (codes.double() - want).abs().max() < 1e-4


def test_no_gradient_flows(gen):
    scores = torch.randn(5, 4, generator=gen, requires_grad=True)
    assert not sinkhorn_knopp(scores).requires_grad


@pytest.mark.parametrize("kwargs,match", [
    (dict(scores=torch.zeros(3)), "must be \\(B, K\\)"),
    (dict(scores=torch.zeros(3, 2), eps=0.0), "eps must be > 0"),
    (dict(scores=torch.zeros(3, 2), n_iters=0), "n_iters must be >= 1"),
])
def test_rejects_bad_arguments(kwargs, match):
    scores = kwargs.pop("scores")
    with pytest.raises(ValueError, match=match):
        sinkhorn_knopp(scores, **kwargs)


@pytest.mark.parametrize("backend", ["kernel", "reference"])
@pytest.mark.parametrize("dtype,bounds", [(torch.float64, [0, 9, 23]), (torch.float64, [0, 0, 23]),
                                          (torch.float32, [0, 14, 23])])
def test_two_gloo_processes_equal_one_process(tmp_path, gen, backend, dtype, bounds):
    """Unequal rows per rank (one rank empty in the second case); the kernel runs the three pass
    ops with all-reduces between them, the reference its all-reduced loop."""
    import os
    if backend == "kernel" and not _extension.state().loaded:
        pytest.skip("medcl._C not built")
    B, K, W = 23, 17, 2
    scores = (2 * torch.rand(B, K, generator=gen, dtype=torch.float64) - 1).to(dtype)
    torch.save({"scores": scores, "eps": 0.05, "n_iters": 3, "bounds": bounds}, tmp_path / "scores.pt")
    env = {**os.environ, "MEDCL_BACKEND": "reference"} if backend == "reference" else None
    procs = [subprocess.Popen([sys.executable, str(WORKER), str(r), str(W), str(tmp_path)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for r in range(W)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * W, outs
    parts = [torch.load(tmp_path / f"codes{r}.pt", weights_only=True) for r in range(W)]
    assert {p["backend"] for p in parts} == {"cpp" if backend == "kernel" else "reference"}
    codes = torch.cat([p["codes"] for p in parts])
    assert codes.dtype == dtype and codes.shape == (B, K)
    if dtype == torch.float64:
        assert torch.allclose(codes, sinkhorn_knopp(scores, eps=0.05, n_iters=3), rtol=1e-10, atol=1e-13)
    else:
        assert _rel(codes, sinkhorn_knopp_reference(scores.double(), 0.05, 3)) < 1e-6


@pytest.mark.parametrize("B,K", [(7, 5), (64, 300)])
def test_matches_lightly_swav_sinkhorn(gen, B, K):
    """lightly's SwAV sinkhorn, loaded from lightly/loss/swav_loss.py alone (the package's
    __init__ imports torchvision, not installed here: see the Makefile)."""
    import importlib.util
    spec = importlib.util.find_spec("lightly")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("lightly is not installed (make test installs it)")
    path = Path(next(iter(spec.submodule_search_locations))) / "loss" / "swav_loss.py"
    file_spec = importlib.util.spec_from_file_location("_lightly_swav_loss", path)
    module = importlib.util.module_from_spec(file_spec)
    file_spec.loader.exec_module(module)
    scores = 2 * torch.rand(B, K, generator=gen, dtype=torch.float64) - 1
    want = module.sinkhorn(scores, iterations=3, epsilon=0.05)
    assert torch.allclose(sinkhorn_knopp(scores, eps=0.05, n_iters=3), want, rtol=1e-9, atol=1e-12)


# ---------------------------------------------------------------- compiled ops (medcl._C)

@needs_kernel
@pytest.mark.parametrize("B,K", [(1, 1), (1, 7), (9, 1), (2, 5), (37, 10), (100, 513), (257, 3000)])
@pytest.mark.parametrize("eps", [0.05, 0.01])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_kernel_matches_float64_reference(device, gen, B, K, eps, dtype):
    assert _extension.backend("sinkhorn_knopp", device.type) in ("cpp", "cuda")
    scores = (2 * torch.rand(B, K, generator=gen, dtype=torch.float64) - 1).to(dtype)
    for n_iters in range(1, 6):
        torch.full((B, K), float("nan"), dtype=dtype, device=device)        # poison the allocator
        got = sinkhorn_knopp(scores.to(device), eps=eps, n_iters=n_iters)
        want = sinkhorn_knopp_reference(scores.double(), eps, n_iters)       # the same (rounded) scores
        assert got.dtype == dtype and got.shape == (B, K) and got.device.type == device.type
        assert torch.isfinite(got).all()
        # float32: differences of L = scores/eps are taken in float64 or exact float pairs, so the
        # error stays ~1e-7 at eps = 0.01 (float32 PyTorch running the loop: 2-6e-6).
        assert _rel(got, want) < (1e-12 if dtype == torch.float64 else 1e-6), (n_iters, gen.initial_seed())
        assert (got.double().sum(1) - 1).abs().max() < (1e-12 if dtype == torch.float64 else 1e-5)


@needs_kernel
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_pass_ops_match_their_definitions(device, gen, dtype):
    B, K, eps = 45, 70, 0.03
    scores = (3 * torch.randn(B, K, generator=gen, dtype=torch.float64)).to(dtype)
    L = scores.double() / eps
    x = scores.to(device)
    torch.full((K,), float("nan"), dtype=torch.float64, device=device)
    m, s = torch.ops.medcl.sinkhorn_knopp_col_lse(x, eps)
    assert m.dtype == s.dtype == torch.float64 and m.shape == s.shape == (K,)
    assert torch.equal(m.cpu(), L.amax(0))
    tol = 1e-13 if dtype == torch.float64 else 1e-6
    assert _rel(s, torch.exp(L - L.amax(0)).sum(0)) < tol
    v = (L.amax(0) + 3 * torch.rand(K, generator=gen, dtype=torch.float64)).to(device)
    want_codes = torch.softmax(L - v.cpu(), dim=1)
    codes = torch.ops.medcl.sinkhorn_knopp_codes(x, eps, v)
    assert codes.dtype == dtype and _rel(codes, want_codes) < tol
    sums = torch.ops.medcl.sinkhorn_knopp_col_sums(x, eps, v)
    assert sums.dtype == torch.float64 and _rel(sums, want_codes.sum(0)) < tol


@needs_kernel
def test_pass_ops_on_an_empty_rank(device):
    x = torch.empty(0, 6, device=device)
    m, s = torch.ops.medcl.sinkhorn_knopp_col_lse(x, 0.05)
    assert torch.isneginf(m).all() and (s == 0).all()
    v = torch.zeros(6, dtype=torch.float64, device=device)
    assert (torch.ops.medcl.sinkhorn_knopp_col_sums(x, 0.05, v) == 0).all()
    assert torch.ops.medcl.sinkhorn_knopp_codes(x, 0.05, v).shape == (0, 6)


@needs_kernel
def test_kernel_large_scores_and_nan(device, gen):
    # Scores far from [-1, 1] (rows whose shift leaves the exact-pair grid take the float64 path).
    B, K = 33, 40
    scores = 50 * torch.randn(B, K, generator=gen, dtype=torch.float64)
    scores[3] -= 1e4
    for dtype, tol in ((torch.float64, 1e-12), (torch.float32, 1e-6)):
        s = scores.to(dtype)
        got = sinkhorn_knopp(s.to(device), eps=0.5, n_iters=4)
        assert _rel(got, sinkhorn_knopp_reference(s.double(), 0.5, 4)) < tol
    bad = scores.float()
    bad[5, 7] = float("nan")
    assert torch.isnan(sinkhorn_knopp(bad.to(device), eps=0.5, n_iters=2)).all()


@needs_kernel
def test_half_scores_give_float32_codes(device, gen):
    scores = (2 * torch.rand(20, 30, generator=gen) - 1).to(device, torch.bfloat16)
    got = sinkhorn_knopp(scores, eps=0.05, n_iters=3)
    assert got.dtype == torch.float32
    assert _rel(got, sinkhorn_knopp_reference(scores.double().cpu(), 0.05, 3)) < 1e-6


@needs_kernel
def test_opcheck(device, gen):
    scores = (2 * torch.rand(11, 6, generator=gen, dtype=torch.float64) - 1).to(device)
    torch.library.opcheck(torch.ops.medcl.sinkhorn_knopp, (scores, 0.05, 3))
    torch.library.opcheck(torch.ops.medcl.sinkhorn_knopp_col_lse, (scores, 0.05))
    v = torch.rand(6, generator=gen, dtype=torch.float64).to(device) + 20
    torch.library.opcheck(torch.ops.medcl.sinkhorn_knopp_col_sums, (scores, 0.05, v))
    torch.library.opcheck(torch.ops.medcl.sinkhorn_knopp_codes, (scores.float(), 0.05, v))


@needs_kernel
def test_ops_reject_bad_arguments(device):
    x = torch.rand(4, 3, device=device)
    v = torch.zeros(3, dtype=torch.float64, device=device)
    with pytest.raises(RuntimeError, match="eps must be finite and > 0"):
        torch.ops.medcl.sinkhorn_knopp(x, 0.0, 3)
    with pytest.raises(RuntimeError, match="n_iters must be >= 1"):
        torch.ops.medcl.sinkhorn_knopp(x, 0.05, 0)
    with pytest.raises(RuntimeError, match="float32 or float64"):
        torch.ops.medcl.sinkhorn_knopp(x.half(), 0.05, 3)
    with pytest.raises(RuntimeError, match="v must be float64"):
        torch.ops.medcl.sinkhorn_knopp_codes(x, 0.05, v.float())
    with pytest.raises(RuntimeError, match="v must be float64"):
        torch.ops.medcl.sinkhorn_knopp_col_sums(x, 0.05, v[:2])


def test_forced_reference_backend(tmp_path):
    import os
    code = ("import torch\nfrom medcl import _extension\nfrom medcl.ops import sinkhorn_knopp\n"
            "from medcl.ops.sinkhorn_knopp import sinkhorn_knopp_reference\n"
            "s = torch.rand(6, 4, dtype=torch.float64)\n"
            "print(_extension.backend('sinkhorn_knopp', 'cpu'),"
            " torch.equal(sinkhorn_knopp(s), sinkhorn_knopp_reference(s, 0.05, 3)))\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                       env={**os.environ, "MEDCL_BACKEND": "reference"})
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["reference", "True"]
