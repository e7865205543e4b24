"""SimCLR's NT-Xent loss between two views of each sample.

Chen et al., "A Simple Framework for Contrastive Learning of Visual Representations" (SimCLR),
ICML 2020. For N samples with projections z1, z2 of two views (2N views in all), each view's
positive is the other view of its sample and its negatives are the other 2N − 2 views:

    ℓ_i = −log( exp(s(z_i, z_i⁺)/τ) / Σ_{k ≠ i} exp(s(z_i, z_k)/τ) ),   s = cosine similarity
    L   = mean of ℓ over the 2N views

:func:`ntxent_loss` is a few O(N) operations on the row log-sum-exps and positive logits of
``torch.ops.medcl.contrastive_lse`` (medcl/ops/contrastive_lse.py), never holding the 2N × 2N
logits. Under DDP (``distributed=True``, W > 1 ranks) the negatives are every rank's views (the
columns are gathered with their gradient); the value is the global batch's loss and its gradient
W times the global loss's gradient with respect to this rank's rows (as medcl.losses.infonce).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from medcl import dist
from medcl.losses.infonce import Temperature, check_pair, check_temperature, global_mean, with_temperature_grad
from medcl.ops.contrastive_lse import lse


def ntxent_loss(z1: torch.Tensor, z2: torch.Tensor, *, temperature: Temperature = 0.5,
                normalize: bool = True, distributed: bool = False) -> torch.Tensor:
    """SimCLR's NT-Xent over the 2N views [z1; z2] (see the module docstring).

    Args:
        z1, z2: (N, D) embeddings of two views of the same N samples.
        temperature: τ > 0, a float or a 0-d tensor (gradients flow to a tensor).
        normalize: L2-normalise rows first (cosine similarity, as SimCLR).
        distributed: z1 and z2 are this rank's rows of a global batch spread over the ranks of
            torch.distributed (ignored with one process): every view of every rank is a
            negative, as one process holding the whole batch would see it.

    Returns:
        The scalar loss, the mean over the 2N anchors (0-d tensor in the dtype of z1).
    """
    op = "ntxent_loss"
    check_pair(z1, z2, op)
    tau = check_temperature(temperature, op)
    n = z1.shape[0]
    z = torch.cat([z1, z2])                                              # (2n, D)
    if normalize:
        z = F.normalize(z, dim=1)
    za = with_temperature_grad(z, temperature, tau)
    W = dist.world_size() if distributed else 1
    if W == 1:
        keep = torch.ones(2 * n, dtype=torch.bool, device=z.device)
        row_lse, _, diag = lse(za, z, keep, keep, 1.0 / tau, offset=n, exclude_self=True)
        return (row_lse - diag).mean().to(z1.dtype)
    # Columns: [z1 of every rank; z2 of every rank] (2N). Rolled so that this rank's anchors sit
    # at the front, each anchor's own column is its row index (exclude_self) and its positive,
    # the other view, is N further on (offset N).
    start = sum(dist.all_sizes(n, z.device)[:dist.rank()])
    cols = torch.cat([dist.gather_with_grad(z[:n]), dist.gather_with_grad(z[n:])])   # (2N, D)
    N = cols.shape[0] // 2
    keep = torch.ones(2 * N, dtype=torch.bool, device=z.device)
    keep_a = keep[:n]
    local = z.new_zeros((), dtype=torch.float64)
    for half, shift in ((za[:n], start), (za[n:], N + start)):
        row_lse, _, diag = lse(half, cols.roll(-shift, 0), keep_a, keep, 1.0 / tau, offset=N, exclude_self=True)
        local = local + (row_lse - diag).sum()
    return global_mean(local, torch.tensor(2 * n, device=z.device), W).to(z1.dtype)


class NTXentLoss(nn.Module):
    def __init__(self, temperature: float = 0.1, normalize: bool = True):
        super().__init__()
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.temperature, self.normalize = float(temperature), bool(normalize)

    def forward(self, z1: torch.Tensor, z2: torch.Tensor, *, distributed: bool = False) -> torch.Tensor:
        """z1, z2: (N, D) projections of the two views → scalar loss."""
        return ntxent_loss(z1, z2, temperature=self.temperature, normalize=self.normalize,
                           distributed=distributed)
