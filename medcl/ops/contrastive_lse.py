"""``torch.ops.medcl.contrastive_lse``: the O(M + N) statistics every InfoNCE-type loss needs.

For a (M, D), b (N, D), masks keep_a (M,), keep_b (N,) and a scale (1/τ):

    S_ij    = scale · a_i · b_j
    kept    = keep_a[i] and keep_b[j] and not (exclude_self and i == j)
    row_lse = log Σ_{j kept} exp S_ij     (M,)     −inf where nothing is kept
    col_lse = log Σ_{i kept} exp S_ij     (N,)
    diag    = S_{i, (i + offset) mod N}   (M,)     the positive pair, whatever the masks

Every loss of medcl.losses.infonce and medcl.losses.ntxent is a few O(B) operations on these three vectors. The
kernels (csrc/ops/cpu/contrastive_lse.cpp, csrc/ops/cuda/contrastive_lse.cu) tile S and keep online
log-sum-exps, so S never exists; the backward op recomputes S tile by tile. This file holds
the reference (the definition, the fallback and the test oracle: it materialises S), the fake
kernels and the autograd registration, and chooses which runs (:func:`lse`).

Statistics are float64 for float32 and float64 inputs and float32 for half types (which
accumulate in float32). float64 for float32 inputs because a log-sum-exp near the logit scale
(CLIP's 100) held in float32 loses ~ulp(100)/2 = 4e-6, all of a confident pair's loss
lse − diag; with float64 statistics the float32 loss is as accurate as a float32
cross-entropy on materialised logits.
"""
from __future__ import annotations

import torch

from medcl import _extension
from medcl.ops._reference_grad import reference_vjp

MAX_CUDA_DIM = 1024       # the CUDA kernels take D ≤ 1024; larger D runs the reference


def stat_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype in (torch.float64, torch.float32) else torch.float32


def safe_logsumexp(x: torch.Tensor, dim: int) -> torch.Tensor:
    """logsumexp over ``dim`` that is −inf where every entry is −inf, with zero (not NaN)
    gradient there."""
    m = x.detach().amax(dim=dim, keepdim=True)
    m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))
    s = torch.exp(x - m).sum(dim=dim)
    ok = s > 0
    out = m.squeeze(dim) + torch.log(torch.where(ok, s, torch.ones_like(s)))
    return torch.where(ok, out, torch.full_like(out, float("-inf")))


def contrastive_lse_reference(a: torch.Tensor, b: torch.Tensor, keep_a: torch.Tensor, keep_b: torch.Tensor,
                              scale: float, offset: int, exclude_self: bool
                              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The op's definition in PyTorch (materialises the (M, N) S; differentiable)."""
    compute = torch.float64 if a.dtype == torch.float64 else torch.float32
    M, N = a.shape[0], b.shape[0]
    S = ((a.to(compute) @ b.to(compute).T) * scale).to(stat_dtype(a.dtype))   # (M, N)
    kept = keep_a[:, None] & keep_b[None, :]                             # (M, N)
    if exclude_self:
        kept = kept & ~torch.eye(M, N, dtype=torch.bool, device=a.device)
    masked = S.masked_fill(~kept, float("-inf"))
    rows = torch.arange(M, device=a.device)
    return safe_logsumexp(masked, 1), safe_logsumexp(masked, 0), S[rows, (rows + offset) % N]


def use_kernel(a: torch.Tensor) -> bool:
    """True when a compiled kernel takes these inputs; otherwise the reference runs."""
    if not _extension.use_kernel("contrastive_lse", a.device):
        return False
    if a.device.type == "cuda":
        if a.dtype == torch.float64 or a.shape[1] > MAX_CUDA_DIM:
            return False
        if a.dtype == torch.float32 and not tf32_allowed():
            return False
    return True


def tf32_allowed() -> bool:
    """fp32 CUDA inputs go through TF32 tensor cores only where the user allows TF32 matmuls
    (torch.backends.cuda.matmul.fp32_precision == "tf32", which allow_tf32 = True and
    set_float32_matmul_precision("high") also set); otherwise they run the reference. The
    backward follows whatever its forward chose."""
    precision = getattr(torch.backends.cuda.matmul, "fp32_precision", None)
    if precision is not None:
        return precision == "tf32"
    return bool(torch.backends.cuda.matmul.allow_tf32)


def autocast_dtype(device_type: str) -> torch.dtype | None:
    """The autocast dtype where autocast is on for ``device_type``, else None."""
    if device_type in ("cuda", "cpu") and torch.is_autocast_enabled(device_type):
        return torch.get_autocast_dtype(device_type)
    return None


def lse(a: torch.Tensor, b: torch.Tensor, keep_a: torch.Tensor, keep_b: torch.Tensor, scale: float,
        offset: int = 0, exclude_self: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(row_lse, col_lse, diag) by the kernel where there is one, else by the reference.

    Autocast-aware, like a matmul: under ``torch.autocast`` float32 a and b are cast to the
    autocast dtype first (their gradients come back in float32 through the cast), so a training
    step under bf16 autocast runs the kernel in bf16 with O(M + N) memory. The statistics of
    half-type inputs are float32."""
    cast = autocast_dtype(a.device.type)
    if cast is not None and a.dtype == torch.float32 and b.dtype == torch.float32:
        a, b = a.to(cast), b.to(cast)
    for name, t in (("b", b), ("keep_a", keep_a), ("keep_b", keep_b)):
        if t.device != a.device:
            raise ValueError(f"contrastive_lse: a is on {a.device} but {name} is on {t.device}; "
                             "move every input to one device")
    if use_kernel(a):
        return torch.ops.medcl.contrastive_lse(a, b, keep_a, keep_b, float(scale), int(offset), bool(exclude_self))
    return contrastive_lse_reference(a, b, keep_a, keep_b, float(scale), int(offset), bool(exclude_self))


def _register() -> None:
    if not _extension.state().loaded or not hasattr(torch.ops.medcl, "contrastive_lse"):
        return

    @torch.library.register_fake("medcl::contrastive_lse")
    def _(a, b, keep_a, keep_b, scale, offset, exclude_self):
        dt = stat_dtype(a.dtype)
        return a.new_empty(a.shape[0], dtype=dt), a.new_empty(b.shape[0], dtype=dt), a.new_empty(a.shape[0], dtype=dt)

    @torch.library.register_fake("medcl::contrastive_lse_backward")
    def _(a, b, keep_a, keep_b, scale, offset, exclude_self, row_lse, col_lse, g_row, g_col, g_diag):
        return a.new_empty(a.shape), b.new_empty(b.shape)      # contiguous, as the kernels return

    def setup_context(ctx, inputs, output):
        a, b, keep_a, keep_b, scale, offset, exclude_self = inputs
        row_lse, col_lse, _ = output
        ctx.save_for_backward(a, b, keep_a, keep_b, row_lse, col_lse)
        ctx.args = (scale, offset, exclude_self)

    def backward(ctx, g_row, g_col, g_diag):
        a, b, keep_a, keep_b, row_lse, col_lse = ctx.saved_tensors
        g_row = torch.zeros_like(row_lse) if g_row is None else g_row
        g_col = torch.zeros_like(col_lse) if g_col is None else g_col
        g_diag = torch.zeros_like(row_lse) if g_diag is None else g_diag
        if torch.is_grad_enabled():     # create_graph: differentiate the reference (O(M·N) memory)
            return reference_vjp(contrastive_lse_reference, (a, b), (g_row, g_col, g_diag),
                                 keep_a, keep_b, *ctx.args) + (None,) * 5
        da, db = torch.ops.medcl.contrastive_lse_backward(a, b, keep_a, keep_b, *ctx.args, row_lse, col_lse,
                                                          g_row, g_col, g_diag)
        return da, db, None, None, None, None, None

    torch.library.register_autograd("medcl::contrastive_lse", backward, setup_context=setup_context)


_register()
