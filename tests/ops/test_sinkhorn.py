"""medcl.ops.sinkhorn and torch.ops.medcl.sinkhorn_log against the float64 loop reference:
values, marginals, gradients, gradcheck, opcheck, batching, noise, Hungarian matching."""
from __future__ import annotations

import pytest
import torch

from medcl import _extension
from medcl.ops import hungarian, sinkhorn
from medcl.ops.sinkhorn_log import sinkhorn_log_reference

needs_kernel = pytest.mark.skipif(not _extension.state().loaded, reason="medcl._C not built")


def _rel(got, want):
    got, want = got.detach().double().cpu(), want.detach().double().cpu()
    return float((got - want).abs().max() / want.abs().max().clamp_min(1.0))


# CUDA: N <= 16 runs the one-thread-per-line kernels, 17 <= N <= 128 the grouped kernels, one
# instantiation per size class (N <= 20, 32, 36, 48, 64, 80, 100, 128: 19, 27, 36, 45, 64, 77,
# 100, 128 here; 19, 27, 45, 77 leave lanes with fewer entries than others). float64 N = 128
# backward does not fit the grouped layout and runs the line kernel with x in global memory.
@needs_kernel
@pytest.mark.parametrize("B,N", [(1, 1), (3, 2), (5, 3), (4, 9), (2, 16), (3, 19), (2, 27), (3, 36), (3, 45),
                                 (2, 64), (1, 77), (1, 100), (2, 128)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_op_matches_reference_values_and_gradients(device, gen, B, N, dtype):
    n_iters = int(torch.randint(1, 12, (1,), generator=gen))
    x = (3 * torch.randn(B, N, N, generator=gen, dtype=torch.float64)).to(device, dtype)
    x.requires_grad_(True)
    out, rows, cols = torch.ops.medcl.sinkhorn_log(x, n_iters)
    xr = x.detach().double().requires_grad_(True)
    want = sinkhorn_log_reference(xr, n_iters)
    tol = 1e-12 if dtype == torch.float64 else 2e-5
    for g, w in zip((out, rows, cols), want):
        assert g.dtype == dtype and g.shape == w.shape
        assert _rel(g, w) < tol
    grad_out = torch.randn(B, N, N, generator=gen, dtype=torch.float64).to(device)
    gx, = torch.autograd.grad(out, x, grad_out.to(dtype))
    gx_ref, = torch.autograd.grad(want[0], xr, grad_out)
    assert _rel(gx, gx_ref) < (1e-10 if dtype == torch.float64 else 1e-4)


def _op_and_reference_fwd_bwd(x, n_iters, gen):
    """out and grad_x of the op on x, then of the float64 reference loop, for one random grad_out."""
    xk = x.detach().clone().requires_grad_(True)
    out = torch.ops.medcl.sinkhorn_log(xk, n_iters)[0]
    grad_out = torch.randn(x.shape, generator=gen, dtype=torch.float64).to(x.device)
    gx, = torch.autograd.grad(out, xk, grad_out.to(x.dtype))
    xr = x.detach().double().requires_grad_(True)
    want = sinkhorn_log_reference(xr, n_iters)[0]
    gx_ref, = torch.autograd.grad(want, xr, grad_out)
    return out, gx, want, gx_ref


@needs_kernel
@pytest.mark.gpu
@pytest.mark.parametrize("N,per_block", [(19, 6), (36, 3), (45, 2)])
def test_cuda_blocks_of_several_matrices(gen, N, per_block):
    """The grouped CUDA kernels put several matrices in a block only for large batches (at most
    B / (2 SMs) per block): here `per_block` of them per block, warps that straddle two matrices,
    and one matrix more (idle slots in the last block), against the float64 reference."""
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    B = 2 * sms * per_block + 1
    x = (3 * torch.randn(B, N, N, generator=gen, dtype=torch.float64)).to("cuda", torch.float32)
    out, gx, want, gx_ref = _op_and_reference_fwd_bwd(x, 5, gen)
    assert _rel(out, want) < 2e-5
    assert _rel(gx, gx_ref) < 1e-4


@needs_kernel
@pytest.mark.gpu
@pytest.mark.parametrize("N", [9, 36, 100])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cuda_masked_entries(gen, N, dtype):
    """-inf entries (forbidden assignments) stay -inf with zero weight, as in the reference: each
    row and column keeps at least its diagonal entry finite."""
    B = 3
    x = 3 * torch.randn(B, N, N, generator=gen, dtype=torch.float64)
    mask = torch.rand(B, N, N, generator=gen) < 0.3
    mask[:, torch.arange(N), torch.arange(N)] = False
    x[mask] = float("-inf")
    out, gx, want, gx_ref = _op_and_reference_fwd_bwd(x.to("cuda", dtype), 6, gen)
    fin = torch.isfinite(want)
    assert torch.equal(fin, ~mask.cuda()) and torch.equal(torch.isfinite(out), fin)
    assert bool((out[~fin] == float("-inf")).all())
    tol = 1e-12 if dtype == torch.float64 else 2e-5
    assert _rel(out[fin], want[fin]) < tol
    assert bool(torch.isfinite(gx).all()) and bool(torch.isfinite(gx_ref).all())
    assert _rel(gx, gx_ref) < (1e-10 if dtype == torch.float64 else 1e-4)


@pytest.mark.parametrize("N", [2, 9, 36])
def test_marginals_converge(device, gen, N):
    x = torch.randn(8, N, N, generator=gen, dtype=torch.float64).to(device)
    p = sinkhorn(x, n_iters=300, tau=1.0).exp()
    assert (p.sum(1) - 1).abs().max() < 1e-5                        # columns: exact after the last step
    assert (p.sum(2) - 1).abs().max() < 1e-5                        # rows: converged


def test_public_function_gradcheck_float64(gen):
    x = torch.randn(2, 4, 4, generator=gen, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: sinkhorn(t, n_iters=5, tau=0.7), (x,))
    assert torch.autograd.gradgradcheck(lambda t: sinkhorn(t, n_iters=3, tau=0.7), (x,))


@needs_kernel
def test_opcheck(device, gen):
    x = torch.randn(3, 5, 5, generator=gen, dtype=torch.float64).to(device).requires_grad_(True)
    torch.library.opcheck(torch.ops.medcl.sinkhorn_log, (x, 4))
    out, rows, cols = torch.ops.medcl.sinkhorn_log(x.detach(), 4)
    g = torch.randn(3, 5, 5, generator=gen, dtype=torch.float64).to(device)
    torch.library.opcheck(torch.ops.medcl.sinkhorn_log_backward, (g, x.detach(), rows, cols))


def test_batched_equals_one_matrix_at_a_time(device, gen):
    x = torch.randn(6, 7, 7, generator=gen).to(device)
    whole = sinkhorn(x, n_iters=15, tau=0.5)
    for b in range(6):
        assert torch.allclose(whole[b], sinkhorn(x[b:b + 1], n_iters=15, tau=0.5)[0], atol=1e-6)


def test_noise_is_reproducible_and_changes_the_result(gen):
    x = torch.randn(4, 5, 5, generator=gen)
    seed = int(torch.randint(0, 2 ** 31, (1,), generator=gen))
    one = sinkhorn(x, noise=1.0, generator=torch.Generator().manual_seed(seed))
    two = sinkhorn(x, noise=1.0, generator=torch.Generator().manual_seed(seed))
    assert torch.equal(one, two)
    assert not torch.allclose(one, sinkhorn(x))


def test_small_tau_recovers_the_permutation_by_hungarian(device, gen):
    B, N = 16, 9
    perm = torch.stack([torch.randperm(N, generator=gen) for _ in range(B)])      # (B, N)
    scores = torch.randn(B, N, N, generator=gen) * 0.3
    scores[torch.arange(B)[:, None], torch.arange(N)[None, :], perm] += 3.0
    log_p = sinkhorn(scores.to(device), n_iters=30, tau=0.1)
    assert torch.equal(hungarian(log_p).cpu(), perm)
    assert torch.equal(log_p.exp().argmax(2).cpu(), perm)


@pytest.mark.parametrize("kwargs,match", [
    (dict(x=torch.zeros(2, 3, 4)), "must be \\(B, N, N\\)"),
    (dict(x=torch.zeros(1, 129, 129)), "N must be 1 .. 128"),
    (dict(x=torch.zeros(1, 3, 3), n_iters=0), "n_iters must be >= 1"),
    (dict(x=torch.zeros(1, 3, 3), tau=0.0), "tau must be > 0"),
    (dict(x=torch.zeros(1, 3, 3), noise=-1.0), "noise must be >= 0"),
    (dict(x=torch.zeros(1, 3, 3, dtype=torch.long)), "must be floating"),
])
def test_rejects_bad_arguments(kwargs, match):
    x = kwargs.pop("x")
    with pytest.raises(ValueError, match=match):
        sinkhorn(x, **kwargs)


@pytest.mark.parametrize("N", [3, 16, 50])
def test_matches_pot_sinkhorn_log_with_uniform_marginals(gen, N):
    """POT's entropic OT plan for cost M, regularisation ε and uniform marginals 1/N is the
    doubly-stochastic Sinkhorn matrix of exp(−M/ε), divided by N."""
    ot = pytest.importorskip("ot", reason="POT is a test dependency (make test installs it)")
    M = torch.rand(N, N, generator=gen, dtype=torch.float64)
    eps = 0.1
    u = torch.full((N,), 1.0 / N, dtype=torch.float64)
    plan = torch.as_tensor(ot.bregman.sinkhorn_log(u.numpy(), u.numpy(), M.numpy(), eps, numItermax=5000,
                                                   stopThr=1e-13))
    ours = sinkhorn(-M[None] / eps, n_iters=2000).exp()[0] / N
    assert (ours - plan).abs().max() < 1e-8 / N
