"""``medcl.ops.sinkhorn_knopp``: SwAV's cluster codes with uniform marginals, in the log domain.

Caron et al., "Unsupervised Learning of Visual Features by Contrasting Cluster Assignments"
(SwAV), NeurIPS 2020: the codes Q (B, K) of a batch against K prototypes are the entropic
optimal transport of the scores with uniform marginals — every prototype gets B/K of the batch,
every sample one unit of mass:

    L = scores / ε
    repeat n_iters:  L ← L − logsumexp over samples (per prototype) − log K
                     L ← L − logsumexp over prototypes (per sample) − log B
    Q = exp(L) · B                                   (each row sums to 1)

SwAV's own code exponentiates scores/ε first, which overflows float32 once ε < ~0.02 at
|scores| ≤ 1 (exp(50+)); every step here stays in logs. Under torch.distributed the sums over
samples run over the global batch (an all-reduce of the per-prototype max and sum), so the
codes equal those of one process holding the concatenated batch (SwAV's distributed_sinkhorn).
The codes are targets: no gradient flows through them.

Kernels (``torch.ops.medcl.sinkhorn_knopp*``, csrc/ops/sinkhorn_knopp.cpp) carry the loop by the
column potentials v (K,) alone: the codes after any round are the row softmax of L − v, and

    v = lse over samples of L + log K                               (round 1)
    v ← v + log(Σ_samples softmax_row(L − v)) + log K − log B       (every later round)

so each round is one read of the scores and the memory is the output plus O(K) (see the schema
file for the derivation). One process runs the fused op; under torch.distributed this file runs
the loop over the three pass ops, combining each column reduction across ranks (max and sum in
round 1, a sum after). ``sinkhorn_knopp_reference`` is the definition, fallback and test oracle.
"""
from __future__ import annotations

import math

import torch

from medcl import _extension
from medcl import dist


def _lse_over_ranks(m: torch.Tensor, s: torch.Tensor, distributed: bool) -> torch.Tensor:
    """Per-column partials of this rank's rows, m = max and s = Σ exp(x − m) (K,) each → the
    log Σ exp over every rank's rows (this rank's alone if not distributed)."""
    finite = lambda t: torch.where(torch.isfinite(t), t, torch.zeros_like(t))   # noqa: E731  (−inf: no rows)
    if distributed:
        M = dist.all_reduce_max(m)
        s = dist.all_reduce_sum(torch.where(s > 0, s * torch.exp(finite(m) - finite(M)), s))
        m = M
    return finite(m) + torch.log(s)


def _global_logsumexp_over_samples(L: torch.Tensor, distributed: bool) -> torch.Tensor:
    """(B, K) → (K,): log Σ over the samples of every rank (this rank's alone if not distributed)."""
    m = L.amax(dim=0) if L.shape[0] else L.new_full((L.shape[1],), float("-inf"))   # (K,)
    s = torch.exp(L - torch.where(torch.isfinite(m), m, torch.zeros_like(m))).sum(dim=0)  # (K,)
    return _lse_over_ranks(m, s, distributed)


def _check(scores, eps, n_iters) -> None:
    if not isinstance(scores, torch.Tensor) or scores.dim() != 2 or scores.shape[1] == 0:
        got = tuple(scores.shape) if isinstance(scores, torch.Tensor) else type(scores).__name__
        raise ValueError(f"sinkhorn_knopp: scores must be (B, K) with K >= 1, got {got}")
    if not (float(eps) > 0 and math.isfinite(float(eps))):
        raise ValueError(f"sinkhorn_knopp: eps must be > 0 and finite, got {eps}")
    if int(n_iters) < 1:
        raise ValueError(f"sinkhorn_knopp: n_iters must be >= 1, got {n_iters}")


def _global_batch(B: int, device: torch.device, dist_on: bool) -> int:
    B_global = int(dist.all_reduce_sum(torch.tensor(B, device=device))) if dist_on else B
    if B_global == 0:
        raise ValueError("sinkhorn_knopp: no sample on any rank")
    return B_global


@torch.no_grad()
def sinkhorn_knopp_reference(scores: torch.Tensor, eps: float, n_iters: int, distributed: bool = True) -> torch.Tensor:
    """The definition: the log-domain loop of the module docstring on a (B, K) tensor, in float64
    for float64 scores and float32 otherwise (``distributed`` as in :func:`sinkhorn_knopp`)."""
    _check(scores, eps, n_iters)
    dist_on = bool(distributed) and dist.world_size() > 1
    dtype = torch.float64 if scores.dtype == torch.float64 else torch.float32
    L = scores.detach().to(dtype) / float(eps)                           # (B, K)
    B, K = L.shape
    B_global = _global_batch(B, L.device, dist_on)
    log_K, log_B = math.log(K), math.log(B_global)
    for _ in range(int(n_iters)):
        L = L - (_global_logsumexp_over_samples(L, dist_on) + log_K)[None, :]   # prototypes: mass 1/K
        L = L - (torch.logsumexp(L, dim=1, keepdim=True) + log_B)              # samples: mass 1/B
    return torch.exp(L + log_B)


def _kernel_distributed(x: torch.Tensor, eps: float, n_iters: int, B_global: int) -> torch.Tensor:
    """The kernel loop with this rank's rows (x contiguous float32/float64): the potentials'
    column reductions are combined across ranks; the updates are the fused op's, in its order."""
    K = x.shape[1]
    log_K, log_B = math.log(K), math.log(B_global)
    m, s = torch.ops.medcl.sinkhorn_knopp_col_lse(x, eps)              # (K,), (K,) float64
    v = _lse_over_ranks(m, s, True) + log_K                             # (K,) column potentials
    for _ in range(n_iters - 1):
        col = dist.all_reduce_sum(torch.ops.medcl.sinkhorn_knopp_col_sums(x, eps, v))
        v = v + torch.log(col) + (log_K - log_B)
    return torch.ops.medcl.sinkhorn_knopp_codes(x, eps, v)


@torch.no_grad()
def sinkhorn_knopp(scores: torch.Tensor, *, eps: float = 0.05, n_iters: int = 3,
                   distributed: bool = True) -> torch.Tensor:
    """SwAV codes of ``scores`` (see the module docstring).

    Args:
        scores: (B, K) sample-prototype scores (e.g. cosine similarities), B ≥ 1, K ≥ 1.
        eps: entropic regularisation ε > 0 (SwAV: 0.05); small ε gives sharper codes.
        n_iters: Sinkhorn-Knopp rounds (SwAV: 3).
        distributed: under torch.distributed, make the marginals global (all ranks must call).

    Returns:
        (B, K) float32 (float64 for float64 scores) codes; each row sums to 1 and each column to
        ~B_global / K (exactly after enough rounds).
    """
    _check(scores, eps, n_iters)
    dist_on = bool(distributed) and dist.world_size() > 1
    x = scores.detach()
    if x.dtype not in (torch.float32, torch.float64):
        x = x.float()                                                    # half types: float32 codes
    if not _extension.use_kernel("sinkhorn_knopp", x.device):
        return sinkhorn_knopp_reference(x, eps, n_iters, distributed)
    x = x.contiguous()
    B_global = _global_batch(x.shape[0], x.device, dist_on)
    if not dist_on:
        return torch.ops.medcl.sinkhorn_knopp(x, float(eps), int(n_iters))
    return _kernel_distributed(x, float(eps), int(n_iters), B_global)


def _register() -> None:
    if not _extension.state().loaded or not hasattr(torch.ops.medcl, "sinkhorn_knopp"):
        return

    @torch.library.register_fake("medcl::sinkhorn_knopp")
    def _(scores, eps, n_iters):
        return scores.new_empty(scores.shape)

    @torch.library.register_fake("medcl::sinkhorn_knopp_col_lse")
    def _(scores, eps):
        K = scores.shape[1]
        return scores.new_empty(K, dtype=torch.float64), scores.new_empty(K, dtype=torch.float64)

    @torch.library.register_fake("medcl::sinkhorn_knopp_col_sums")
    def _(scores, eps, v):
        return scores.new_empty(scores.shape[1], dtype=torch.float64)

    @torch.library.register_fake("medcl::sinkhorn_knopp_codes")
    def _(scores, eps, v):
        return scores.new_empty(scores.shape)


_register()
