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
"""
from __future__ import annotations

import math

import torch

from medcl.ops import collectives


def _global_logsumexp_over_samples(L: torch.Tensor, distributed: bool) -> torch.Tensor:
    """(B, K) → (K,): log Σ over the samples of every rank (this rank's alone if not distributed)."""
    m = L.amax(dim=0) if L.shape[0] else L.new_full((L.shape[1],), float("-inf"))   # (K,)
    if distributed:
        m = collectives.all_reduce_max(m)
    m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))
    s = torch.exp(L - m).sum(dim=0)                                      # (K,)
    if distributed:
        s = collectives.all_reduce_sum(s)
    return m + torch.log(s)


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
    if not isinstance(scores, torch.Tensor) or scores.dim() != 2 or scores.shape[1] == 0:
        got = tuple(scores.shape) if isinstance(scores, torch.Tensor) else type(scores).__name__
        raise ValueError(f"sinkhorn_knopp: scores must be (B, K) with K >= 1, got {got}")
    if not float(eps) > 0:
        raise ValueError(f"sinkhorn_knopp: eps must be > 0, got {eps}")
    if int(n_iters) < 1:
        raise ValueError(f"sinkhorn_knopp: n_iters must be >= 1, got {n_iters}")
    dist_on = bool(distributed) and collectives.world_size() > 1
    dtype = torch.float64 if scores.dtype == torch.float64 else torch.float32
    L = scores.detach().to(dtype) / float(eps)                           # (B, K)
    B, K = L.shape
    B_global = int(collectives.all_reduce_sum(torch.tensor(B, device=L.device))) if dist_on else B
    if B_global == 0:
        raise ValueError("sinkhorn_knopp: no sample on any rank")
    log_K, log_B = math.log(K), math.log(B_global)
    for _ in range(int(n_iters)):
        L = L - (_global_logsumexp_over_samples(L, dist_on) + log_K)[None, :]   # prototypes: mass 1/K
        L = L - (torch.logsumexp(L, dim=1, keepdim=True) + log_B)              # samples: mass 1/B
    return torch.exp(L + log_B)
