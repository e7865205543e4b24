"""torch.ops.medcl.contrastive_lse and its backward against the float64 reference: shapes that
cross tile and wave boundaries, offsets, exclude_self, masks, gradcheck, opcheck."""
from __future__ import annotations

import contextlib

import pytest
import torch

from medcl import _extension
from medcl.ops.contrastive_lse import contrastive_lse_reference, lse

needs_kernel = pytest.mark.skipif(not _extension.state().loaded, reason="medcl._C not built")

# (M, N, D): single rows, odd D, M != N, and sizes past the CPU tiles (128 rows x 512 columns)
# and its per-thread parts, none a multiple of a tile.
SHAPES = [(1, 1, 1), (1, 6, 3), (7, 7, 5), (9, 4, 8), (130, 130, 33), (300, 1030, 17), (513, 700, 24)]


def _inputs(gen, M, N, D, dtype, device, masks):
    a = torch.randn(M, D, generator=gen, dtype=torch.float64)
    b = torch.randn(N, D, generator=gen, dtype=torch.float64)
    if masks == "random":
        keep_a, keep_b = torch.rand(M, generator=gen) < 0.7, torch.rand(N, generator=gen) < 0.7
    elif masks == "all_but_one":
        keep_a, keep_b = torch.zeros(M, dtype=torch.bool), torch.zeros(N, dtype=torch.bool)
        keep_a[M // 2] = keep_b[N // 3] = True
    else:
        keep_a, keep_b = torch.ones(M, dtype=torch.bool), torch.ones(N, dtype=torch.bool)
    return [t.to(device) for t in (a.to(dtype), b.to(dtype), keep_a, keep_b)]


def _close(got, want, tol):
    """Same -inf pattern; finite entries within tol relative to max(|want|, 1)."""
    got, want = got.double().cpu(), want.double().cpu()
    assert torch.equal(torch.isinf(got), torch.isinf(want))
    fin = torch.isfinite(want)
    if fin.any():
        err = (got[fin] - want[fin]).abs().max() / want[fin].abs().max().clamp_min(1.0)
        assert err < tol, float(err)


# Tolerances relative to max(|reference|, 1): (statistics, gradients). Half-type gradients are
# returned in that type (rounding 2^-9 for bf16, 2^-12 for fp16) and on CUDA dS is rounded to it
# before the dS·B product; fp32 on CUDA runs on TF32 tensor cores (10-bit mantissa).
TOL = {("cpu", torch.float64): (1e-12, 1e-12), ("cpu", torch.float32): (1e-5, 1e-5),
       ("cpu", torch.bfloat16): (1e-5, 8e-3), ("cpu", torch.float16): (1e-5, 1e-3),
       ("cuda", torch.float32): (2e-3, 1e-2), ("cuda", torch.bfloat16): (1e-4, 2e-2),
       ("cuda", torch.float16): (1e-4, 4e-3)}


@contextlib.contextmanager
def _tf32(device):
    """TF32 matmuls allowed on CUDA (the kernels' fp32 path) for the duration."""
    if torch.device(device).type != "cuda":
        yield
        return
    before = torch.backends.cuda.matmul.fp32_precision
    torch.backends.cuda.matmul.fp32_precision = "tf32"
    try:
        yield
    finally:
        torch.backends.cuda.matmul.fp32_precision = before


@needs_kernel
@pytest.mark.parametrize("M,N,D", SHAPES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("masks", ["none", "random", "all_but_one"])
def test_statistics_and_gradients_match_reference(device, gen, M, N, D, dtype, masks):
    dev = torch.device(device).type
    if (dev, dtype) not in TOL:
        pytest.skip("float64 runs the reference on CUDA")
    a, b, keep_a, keep_b = _inputs(gen, M, N, D, dtype, device, masks)
    offset = int(torch.randint(0, 2 * N, (1,), generator=gen))
    exclude_self = M <= N and bool(torch.rand(1, generator=gen) < 0.5)
    scale = 2.5
    args = (keep_a, keep_b, scale, offset, exclude_self)
    x, y = a.detach().requires_grad_(True), b.detach().requires_grad_(True)
    with _tf32(device):
        got = torch.ops.medcl.contrastive_lse(x, y, *args)
    xr, yr = a.double().requires_grad_(True), b.double().requires_grad_(True)
    want = contrastive_lse_reference(xr, yr, *args)
    tol_stats, tol_grads = TOL[(dev, dtype)]
    for g, w in zip(got, want):
        assert g.dtype == (torch.float64 if dtype in (torch.float64, torch.float32) else torch.float32)
        _close(g, w, tol_stats)
    # Upstream gradients: random where the statistic is finite, 0 where it is -inf (as a loss gives).
    ups = [torch.where(torch.isfinite(w.detach().cpu()), torch.randn(w.shape, generator=gen, dtype=torch.float64),
                       0.0) for w in want]
    ups[2][torch.rand(M, generator=gen) < 0.3] = 0.0                 # some positives unused
    ups = [u.to(device) for u in ups]
    with _tf32(device):
        da, db = torch.autograd.grad(got, (x, y), [u.to(device, got[0].dtype) for u in ups])
    da_ref, db_ref = torch.autograd.grad(want, (xr, yr), ups)
    _close(da, da_ref, tol_grads)
    _close(db, db_ref, tol_grads)
    assert da.dtype == dtype and db.dtype == dtype


@needs_kernel
def test_matches_reference_under_several_threads(gen):
    """The wave schedule: P parts of rows and columns, conflict-free tasks per wave."""
    a, b, keep_a, keep_b = _inputs(gen, 411, 389, 16, torch.float64, "cpu", "random")
    before = torch.get_num_threads()
    try:
        for threads in (1, 3, 4):
            torch.set_num_threads(threads)
            x, y = a.detach().requires_grad_(True), b.detach().requires_grad_(True)
            out = torch.ops.medcl.contrastive_lse(x, y, keep_a, keep_b, 1.7, 5, False)
            want = contrastive_lse_reference(a, b, keep_a, keep_b, 1.7, 5, False)
            for g, w in zip(out, want):
                _close(g, w, 1e-12)
            g = [torch.where(torch.isfinite(w), 1.0, 0.0).double() for w in want]
            grads = torch.autograd.grad(out, (x, y), g)
            xr, yr = a.detach().requires_grad_(True), b.detach().requires_grad_(True)
            refs = torch.autograd.grad(contrastive_lse_reference(xr, yr, keep_a, keep_b, 1.7, 5, False), (xr, yr), g)
            for got, ref in zip(grads, refs):
                _close(got, ref, 1e-12)
    finally:
        torch.set_num_threads(before)


@needs_kernel
@pytest.mark.parametrize("exclude_self", [False, True])
def test_gradcheck_float64(gen, exclude_self):
    a, b, keep_a, keep_b = _inputs(gen, 5, 6, 3, torch.float64, "cpu", "random")
    keep_a[0] = keep_b[0] = True
    a.requires_grad_(True)
    b.requires_grad_(True)
    fn = lambda x, y: torch.ops.medcl.contrastive_lse(x, y, keep_a, keep_b, 1.3, 2, exclude_self)  # noqa: E731
    # Rows or columns with nothing kept have -inf statistics: gradcheck only the finite ones.
    row, col, _ = fn(a, b)
    rows, cols = torch.isfinite(row), torch.isfinite(col)
    assert torch.autograd.gradcheck(lambda x, y: [o[m] for o, m in zip(fn(x, y), (rows, cols, slice(None)))], (a, b))


@needs_kernel
def test_opcheck(device, gen):
    dtype = torch.bfloat16 if torch.device(device).type == "cuda" else torch.float64
    a, b, keep_a, keep_b = _inputs(gen, 9, 12, 8, dtype, device, "random")
    keep_a[0] = keep_b[0] = True
    a.requires_grad_(True)
    b.requires_grad_(True)
    torch.library.opcheck(torch.ops.medcl.contrastive_lse, (a, b, keep_a, keep_b, 0.7, 3, True))
    row, col, _ = torch.ops.medcl.contrastive_lse(a, b, keep_a, keep_b, 0.7, 3, True)
    g = [torch.where(torch.isfinite(t), torch.rand(t.shape, generator=gen, dtype=t.dtype).to(device), 0.0)
         for t in (row, col, row)]
    torch.library.opcheck(torch.ops.medcl.contrastive_lse_backward,
                          (a.detach(), b.detach(), keep_a, keep_b, 0.7, 3, True, row.detach(), col.detach(), *g))


@needs_kernel
def test_rejects_bad_arguments(gen):
    a, b, keep_a, keep_b = _inputs(gen, 4, 5, 3, torch.float32, "cpu", "none")
    op = torch.ops.medcl.contrastive_lse
    with pytest.raises(RuntimeError, match="must be \\(M, D\\) and \\(N, D\\)"):
        op(a, b[:, :2], keep_a, keep_b, 1.0, 0, False)
    with pytest.raises(RuntimeError, match="share one floating dtype"):
        op(a, b.double(), keep_a, keep_b, 1.0, 0, False)
    with pytest.raises(RuntimeError, match="keep_b must be bool"):
        op(a, b, keep_a, keep_b.float(), 1.0, 0, False)
    with pytest.raises(RuntimeError, match="offset must be >= 0"):
        op(a, b, keep_a, keep_b, 1.0, -1, False)
    with pytest.raises(RuntimeError, match="exclude_self needs M <= N"):
        op(b, a, keep_b, keep_a, 1.0, 0, True)


def test_dispatch_follows_extension_state(gen):
    """lse() gives the reference's numbers on every backend (kernel or fallback)."""
    a, b, keep_a, keep_b = _inputs(gen, 20, 30, 7, torch.float64, "cpu", "random")
    for got, want in zip(lse(a, b, keep_a, keep_b, 2.0, 4, True),
                         contrastive_lse_reference(a, b, keep_a, keep_b, 2.0, 4, True)):
        _close(got, want, 1e-12)


@needs_kernel
@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_cuda_half_gradients_at_batch_4096(gen, dtype):
    """Symmetric InfoNCE gradients at B = 4096 through the CUDA kernels: negative-pair dS ~ 1/B²
    lies below float16's normal range, so dS·B must not be rounded to the input type; the grids
    are small enough that the passes split their column tiles. The error must stay within 2x that
    of the exact gradient rounded to dtype (the float32 reference, then a cast)."""
    B, D, scale = 4096, 128, 1 / 0.07
    z = torch.randn(B, D, generator=gen, dtype=torch.float64)
    views = [torch.nn.functional.normalize(z + 0.5 * torch.randn(B, D, generator=gen, dtype=torch.float64), dim=1)
             for _ in range(2)]
    a, b = (v.to(dtype).to("cuda") for v in views)
    keep = torch.ones(B, dtype=torch.bool, device="cuda")

    def grads(x, y, fn):
        x, y = x.detach().requires_grad_(True), y.detach().requires_grad_(True)
        row, col, diag = fn(x, y, keep, keep, scale, 0, False)
        return torch.autograd.grad((row.sum() + col.sum() - 2 * diag.sum()) / B, (x, y))

    got = grads(a, b, torch.ops.medcl.contrastive_lse)
    want = grads(a.double(), b.double(), contrastive_lse_reference)
    before = torch.backends.cuda.matmul.fp32_precision
    torch.backends.cuda.matmul.fp32_precision = "ieee"      # a true float32 reference, no TF32
    try:
        rounded = [g.to(dtype) for g in grads(a.float(), b.float(), contrastive_lse_reference)]
    finally:
        torch.backends.cuda.matmul.fp32_precision = before

    def rel(x, ref):
        return float((x.double() - ref).norm() / ref.norm())

    for name, g, w, r in zip(("da", "db"), got, want, rounded):
        assert g.dtype == dtype
        err, floor = rel(g, w), rel(r, w)
        assert err < 2 * floor + 1e-6, (name, err, floor, gen.initial_seed())
