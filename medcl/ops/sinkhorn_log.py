"""``medcl.ops.sinkhorn`` (op ``sinkhorn_log``): the log-domain Sinkhorn operator over a batch of square matrices.

Sinkhorn normalisation (Sinkhorn, 1964) alternately rescales the rows and the columns of a
positive matrix until it is doubly stochastic; in the log domain with temperature τ and Gumbel
noise it is the Gumbel-Sinkhorn relaxation of a permutation (Mena et al., "Learning Latent
Permutations with Gumbel-Sinkhorn Networks", ICLR 2018), used by jigsaw-puzzle pretraining
(Taleb et al., "Multimodal Self-Supervised Learning for Medical Image Analysis", IPMI 2021):

    x_0 = (log_alpha + noise · Gumbel) / τ                     (B, N, N)
    for t in 0 .. n_iters-1:
        r_t = logsumexp_j x[:, i, j];  x ← x − r_t[:, :, None]    (rows sum to 1)
        c_t = logsumexp_i x[:, i, j];  x ← x − c_t[:, None, :]    (columns sum to 1)
    returns x: the log of a (nearly) doubly-stochastic matrix.

The op ``torch.ops.medcl.sinkhorn_log`` runs the whole loop in one kernel and keeps only the
potentials r_t, c_t ((B, n_iters, N) each); its backward recomputes every iterate from x_0 and
the running sums of the potentials, so the exact gradient of the unrolled iterations costs
O(B·N·n_iters) memory instead of the O(B·N²·n_iters) an autograd graph of the loop holds.
This file holds the reference loop (the definition, fallback and test oracle), the fake
kernels, the autograd registration and Hungarian matching for hard permutations.
"""
from __future__ import annotations

from typing import Optional

import torch

from medcl import _extension
from medcl.ops._reference_grad import reference_vjp

MAX_N = 128


def sinkhorn_log_reference(x: torch.Tensor, n_iters: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The op's definition: (out, row_pot, col_pot) by the plain loop (differentiable)."""
    rows, cols = [], []
    for _ in range(n_iters):
        r = torch.logsumexp(x, dim=2)                                   # (B, N)
        x = x - r[:, :, None]
        c = torch.logsumexp(x, dim=1)                                   # (B, N)
        x = x - c[:, None, :]
        rows.append(r)
        cols.append(c)
    return x, torch.stack(rows, 1), torch.stack(cols, 1)


def _sinkhorn_log(x: torch.Tensor, n_iters: int) -> torch.Tensor:
    if _extension.use_kernel("sinkhorn_log", x.device) and x.dtype in (torch.float32, torch.float64):
        return torch.ops.medcl.sinkhorn_log(x, int(n_iters))[0]
    return sinkhorn_log_reference(x, int(n_iters))[0]


def gumbel(shape, *, generator: Optional[torch.Generator] = None, device=None,
           dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Standard Gumbel samples −log(−log U), U ~ Uniform(0, 1) from ``generator``."""
    u = torch.rand(shape, generator=generator, dtype=torch.float64).to(device=device)
    u = u.clamp(1e-12, 1.0 - 1e-12)
    return (-torch.log(-torch.log(u))).to(dtype)


def sinkhorn(log_alpha: torch.Tensor, *, n_iters: int = 20, tau: float = 1.0, noise: float = 0.0,
             generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Log of the (approximately) doubly-stochastic matrices of (log_alpha + noise·Gumbel)/τ.

    Args:
        log_alpha: (B, N, N) scores, N from 1 to 128 (float32 or float64; half types are
            computed in float32).
        n_iters: row + column normalisation rounds (≥ 1).
        tau: temperature τ > 0 (small τ → near-permutation matrices).
        noise: scale of the Gumbel noise added before dividing by τ (0: none).
        generator: torch.Generator for the noise (CPU generator; reproducible runs).

    Returns:
        (B, N, N) log-probabilities in log_alpha's dtype; exp() has rows and columns summing to
        ~1 (columns exactly, rows to within the convergence after n_iters).
    """
    if not isinstance(log_alpha, torch.Tensor) or log_alpha.dim() != 3 or log_alpha.shape[1] != log_alpha.shape[2]:
        got = tuple(log_alpha.shape) if isinstance(log_alpha, torch.Tensor) else type(log_alpha).__name__
        raise ValueError(f"sinkhorn: log_alpha must be (B, N, N), got {got}")
    N = log_alpha.shape[1]
    if not 1 <= N <= MAX_N:
        raise ValueError(f"sinkhorn: N must be 1 .. {MAX_N}, got {N}")
    if not log_alpha.dtype.is_floating_point:
        raise ValueError(f"sinkhorn: log_alpha must be floating, got {log_alpha.dtype}")
    if int(n_iters) < 1:
        raise ValueError(f"sinkhorn: n_iters must be >= 1, got {n_iters}")
    if not float(tau) > 0:
        raise ValueError(f"sinkhorn: tau must be > 0, got {tau}")
    if not float(noise) >= 0:
        raise ValueError(f"sinkhorn: noise must be >= 0, got {noise}")
    dtype = log_alpha.dtype
    x = log_alpha if dtype in (torch.float32, torch.float64) else log_alpha.float()
    if noise > 0:
        x = x + float(noise) * gumbel(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    x = x / float(tau)
    if log_alpha.shape[0] == 0:
        return x.to(dtype)
    return _sinkhorn_log(x, int(n_iters)).to(dtype)


def hungarian(log_p: torch.Tensor) -> torch.Tensor:
    """Hard permutations maximising Σ log_p[i, perm[i]] per matrix (Hungarian matching, via
    scipy's linear_sum_assignment): (B, N, N) → (B, N) long, perm[b, i] = column of row i."""
    from scipy.optimize import linear_sum_assignment
    if log_p.dim() != 3 or log_p.shape[1] != log_p.shape[2]:
        raise ValueError(f"hungarian: expected (B, N, N), got {tuple(log_p.shape)}")
    scores = log_p.detach().double().cpu().numpy()
    out = torch.empty(log_p.shape[:2], dtype=torch.long)
    for b in range(scores.shape[0]):
        _, cols = linear_sum_assignment(scores[b], maximize=True)
        out[b] = torch.from_numpy(cols)
    return out.to(log_p.device)


def _register() -> None:
    if not _extension.state().loaded or not hasattr(torch.ops.medcl, "sinkhorn_log"):
        return

    @torch.library.register_fake("medcl::sinkhorn_log")
    def _(x, n_iters):
        B, N = x.shape[0], x.shape[1]
        return x.new_empty(x.shape), x.new_empty(B, n_iters, N), x.new_empty(B, n_iters, N)

    @torch.library.register_fake("medcl::sinkhorn_log_backward")
    def _(grad_out, x, row_pot, col_pot):
        return x.new_empty(x.shape)

    def setup_context(ctx, inputs, output):
        x, n_iters = inputs
        _, row_pot, col_pot = output
        ctx.save_for_backward(x, row_pot, col_pot)
        ctx.n_iters = n_iters
        ctx.set_materialize_grads(False)        # unused outputs' gradients arrive as None

    def backward(ctx, grad_out, grad_row, grad_col):
        x, row_pot, col_pot = ctx.saved_tensors
        if grad_out is None and grad_row is None and grad_col is None:
            return None, None
        if grad_row is not None or grad_col is not None or torch.is_grad_enabled():
            # Gradients of the potentials, or a double backward: differentiate the reference.
            return reference_vjp(sinkhorn_log_reference, (x,), (grad_out, grad_row, grad_col), ctx.n_iters) + (None,)
        return torch.ops.medcl.sinkhorn_log_backward(grad_out.contiguous(), x, row_pot, col_pot), None

    torch.library.register_autograd("medcl::sinkhorn_log", backward, setup_context=setup_context)


_register()
