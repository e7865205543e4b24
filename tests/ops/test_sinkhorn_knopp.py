"""medcl.ops.sinkhorn_knopp (SwAV codes) against SwAV's exp-domain algorithm in float64,
its marginals, small ε in float32, and global marginals under 2 gloo processes."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from medcl.ops import sinkhorn_knopp

WORKER = Path(__file__).with_name("ddp_sinkhorn_knopp_worker.py")


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


def test_two_gloo_processes_equal_one_process(tmp_path, gen):
    B, K, W = 23, 17, 2
    scores = 2 * torch.rand(B, K, generator=gen, dtype=torch.float64) - 1
    bounds = [0, 9, B]                                                   # unequal rows per rank
    torch.save({"scores": scores, "eps": 0.05, "n_iters": 3, "bounds": bounds}, tmp_path / "scores.pt")
    procs = [subprocess.Popen([sys.executable, str(WORKER), str(r), str(W), str(tmp_path)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for r in range(W)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * W, outs
    codes = torch.cat([torch.load(tmp_path / f"codes{r}.pt", weights_only=True) for r in range(W)])
    assert torch.allclose(codes, sinkhorn_knopp(scores, eps=0.05, n_iters=3), rtol=1e-10, atol=1e-13)


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
