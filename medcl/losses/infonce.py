"""``contrastive_loss``: the two-direction InfoNCE over paired embeddings.

For rows a_i, b_i of the same person (van den Oord et al., "Representation Learning with
Contrastive Predictive Coding", 2018; Radford et al., "Learning Transferable Visual Models
From Natural Language Supervision" (CLIP), ICML 2021; Taleb et al., "ContIG: Self-supervised
Multimodal Contrastive Learning for Medical Imaging with Genetics", CVPR 2022):

    s_ij = a_i · b_j / τ                       (rows L2-normalised first when normalize=True)
    L(a→b) = mean over anchors i of  −log( exp(s_ii) / Σ_{j kept in b} exp(s_ij) )
    L(b→a) = mean over anchors j of  −log( exp(s_jj) / Σ_{i kept in a} exp(s_ij) )
    loss   = α · L(a→b) + (1 − α) · L(b→a)

Masks (``mask_a``, ``mask_b``: (B,) bool, True = row kept) say which rows exist. A masked row
of a is neither an anchor of a→b nor a negative of b→a; the same for b. An anchor i needs a_i
and b_i both kept, so both directions share the anchors ``mask_a & mask_b``. A direction with
no anchor contributes 0, still attached to the graph of a and b (gradients are zeros, never
NaN). Masked rows may hold anything, NaN included: they reach neither the loss nor a
gradient. With α = 0.5 and normalize=True this is CLIP's symmetric loss with logit scale 1/τ.

``temperature`` is a float or a 0-d tensor; a tensor that requires grad (CLIP's learnable
logit scale is ``1 / temperature``) receives its gradient.

The loss (and medcl.losses.ntxent's ``ntxent_loss``) is a few O(B) operations on the statistics of ``torch.ops.medcl.contrastive_lse``
(medcl/ops/contrastive_lse.py): row and column log-sum-exps and the positive logits, computed
by tiled kernels that never hold the B×B logits. ``contrastive_loss_reference`` below is the
loss written out with the full logits: the definition and the test oracle.

Distributed (``distributed=True`` under torch.distributed with W > 1 ranks): each rank passes
its own rows (B_r, D); b is all-gathered (its gradient reduce-scattered back), each rank
computes the (B_r × B) block of logits for its rows only, and the column log-sum-exps are
combined across ranks (O(B) communication). The returned value is the loss of the global batch;
its gradient is W times the global loss's gradient with respect to this rank's rows, so that
DDP's averaging of parameter gradients gives exactly the global-batch gradient.
"""
from __future__ import annotations

from typing import Optional, Union

import torch
import torch.nn.functional as F

from medcl import dist
from medcl.ops.contrastive_lse import lse, safe_logsumexp

Temperature = Union[float, torch.Tensor]


def _direction(logits: torch.Tensor, anchors: torch.Tensor, keep_cols: torch.Tensor) -> torch.Tensor:
    """Mean over ``anchors`` of the cross-entropy of row i against target column i.

    logits (B, B), anchors (B,) bool, keep_cols (B,) bool. Columns not kept are excluded
    from every row's softmax; rows that are not anchors are replaced by zeros (so their
    softmax stays finite) and weighted 0.
    """
    masked = logits.masked_fill(~keep_cols[None, :], float("-inf"))     # (B, B)
    masked = torch.where(anchors[:, None], masked, torch.zeros_like(masked))
    positive = masked.diagonal()                                        # (B,)
    per_row = torch.logsumexp(masked, dim=1) - positive                 # (B,)
    weight = anchors.to(per_row.dtype)                                  # (B,)
    return (per_row * weight).sum() / weight.sum().clamp_min(1.0)


def contrastive_loss_reference(a: torch.Tensor, b: torch.Tensor, temperature: Temperature, alpha: float,
                               normalize: bool, mask_a: Optional[torch.Tensor],
                               mask_b: Optional[torch.Tensor]) -> torch.Tensor:
    """The loss in pure PyTorch, in the dtype of ``a`` and ``b`` (float64 works).

    Arguments as :func:`contrastive_loss`, already validated; masks may be None (all kept).
    """
    B = a.shape[0]
    keep_a = torch.ones(B, dtype=torch.bool, device=a.device) if mask_a is None else mask_a
    keep_b = torch.ones(B, dtype=torch.bool, device=a.device) if mask_b is None else mask_b
    # Masked rows become zeros before anything touches them: NaN there cannot leak into
    # the matmul's backward (0 · NaN = NaN), and their gradient is exactly 0.
    a = torch.where(keep_a[:, None], a, torch.zeros_like(a))            # (B, D)
    b = torch.where(keep_b[:, None], b, torch.zeros_like(b))            # (B, D)
    if normalize:
        a = F.normalize(a, dim=1)
        b = F.normalize(b, dim=1)
    logits = (a @ b.T) / temperature                                    # (B, B): s_ij
    anchors = keep_a & keep_b                                           # (B,)
    a_to_b = _direction(logits, anchors, keep_b)
    b_to_a = _direction(logits.T, anchors, keep_a)
    return alpha * a_to_b + (1.0 - alpha) * b_to_a


def _check_mask(mask: Optional[torch.Tensor], name: str, B: int, device: torch.device) -> Optional[torch.Tensor]:
    if mask is None:
        return None
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool or mask.shape != (B,):
        got = f"{tuple(mask.shape)} {mask.dtype}" if isinstance(mask, torch.Tensor) else type(mask).__name__
        raise ValueError(f"contrastive_loss: {name} must be a ({B},) bool tensor (True = row kept), got {got}")
    if mask.device != device:
        raise ValueError(f"contrastive_loss: {name} is on {mask.device}, the embeddings on {device}")
    return mask


def check_temperature(temperature: Temperature, op: str) -> float:
    """τ > 0 as a float (a tensor is read once: the kernels take the scale as a number)."""
    if isinstance(temperature, torch.Tensor):
        if temperature.dim() != 0:
            raise ValueError(f"{op}: a temperature tensor must be 0-d, got {tuple(temperature.shape)}")
        value = float(temperature.detach())
    else:
        value = float(temperature)
    if not value > 0.0:
        raise ValueError(f"{op}: temperature must be > 0, got {value}")
    return value


def check_pair(a: torch.Tensor, b: torch.Tensor, op: str) -> None:
    if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)):
        raise TypeError(f"{op}: the embeddings must be tensors")
    if a.dim() != 2 or a.shape != b.shape:
        raise ValueError(f"{op}: both embeddings must be (B, D) with the same shape, "
                         f"got {tuple(a.shape)} and {tuple(b.shape)}")
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise ValueError(f"{op}: empty embeddings {tuple(a.shape)}")
    if not a.dtype.is_floating_point or a.dtype != b.dtype or a.device != b.device:
        raise ValueError(f"{op}: the embeddings must share one floating dtype and device, "
                         f"got {a.dtype} on {a.device} and {b.dtype} on {b.device}")


def with_temperature_grad(x: torch.Tensor, temperature: Temperature, tau: float) -> torch.Tensor:
    """x times exactly 1, carrying d/dτ when τ is a tensor that requires grad: with
    S = (x · τ₀/τ)·y / τ₀ the value is unchanged and dS/dτ = −S/τ."""
    if isinstance(temperature, torch.Tensor) and temperature.requires_grad:
        return x * (temperature.detach() / temperature).to(x.device)
    return x


def contrastive_loss(a: torch.Tensor, b: torch.Tensor, *, temperature: Temperature = 0.1, alpha: float = 0.5,
                     normalize: bool = True, mask_a: Optional[torch.Tensor] = None,
                     mask_b: Optional[torch.Tensor] = None, distributed: bool = False) -> torch.Tensor:
    """Two-direction InfoNCE between paired rows of ``a`` and ``b`` (see the module docstring).

    Args:
        a, b: (B, D) floating embeddings, row i of both from the same person; same dtype and device.
        temperature: τ > 0, a float or a 0-d tensor (gradients flow to a tensor).
        alpha: weight of a→b in [0, 1]; b→a gets 1 − alpha.
        normalize: L2-normalise rows before the dot products.
        mask_a, mask_b: (B,) bool, True = row kept; None keeps every row.
        distributed: a and b are this rank's rows of a global batch spread over the ranks of
            torch.distributed (ignored with one process); see the module docstring.

    Returns:
        The scalar loss (0-d tensor in the dtype of ``a``).
    """
    op = "contrastive_loss"
    check_pair(a, b, op)
    tau = check_temperature(temperature, op)
    if not 0.0 <= float(alpha) <= 1.0:
        raise ValueError(f"{op}: alpha must be in [0, 1], got {alpha}")
    alpha = float(alpha)
    B = a.shape[0]
    mask_a = _check_mask(mask_a, "mask_a", B, a.device)
    mask_b = _check_mask(mask_b, "mask_b", B, a.device)
    keep_a = torch.ones(B, dtype=torch.bool, device=a.device) if mask_a is None else mask_a
    keep_b = torch.ones(B, dtype=torch.bool, device=a.device) if mask_b is None else mask_b
    if mask_a is not None:      # masked rows may hold NaN: zero them before anything touches them
        a = torch.where(keep_a[:, None], a, torch.zeros_like(a))
    if mask_b is not None:
        b = torch.where(keep_b[:, None], b, torch.zeros_like(b))
    if normalize:
        a, b = F.normalize(a, dim=1), F.normalize(b, dim=1)
    a = with_temperature_grad(a, temperature, tau)
    anchors = keep_a & keep_b                                           # (B,)
    W = dist.world_size() if distributed else 1
    # This rank's rows of a against every rank's b (all of b in one process).
    offset = sum(dist.all_sizes(B, a.device)[:dist.rank()]) if W > 1 else 0
    b_all = dist.gather_with_grad(b) if W > 1 else b            # (N, D)
    keep_b_all = dist.gather(keep_b) if W > 1 else keep_b        # (N,)
    row_lse, col_lse, diag = lse(a, b_all, keep_a, keep_b_all, 1.0 / tau, offset)
    if W > 1:   # column statistics over every rank's rows of a, then this rank's columns
        col_lse = safe_logsumexp(dist.gather_with_grad(col_lse[None]), 0)[offset:offset + B]
    per_row = alpha * (row_lse - diag) + (1.0 - alpha) * (col_lse - diag)
    local = torch.where(anchors, per_row, torch.zeros_like(per_row)).sum()
    if W == 1:
        return (local / anchors.sum().clamp_min(1)).to(a.dtype)
    return global_mean(local, anchors.sum(), W).to(a.dtype)


def global_mean(local: torch.Tensor, count: torch.Tensor, W: int) -> torch.Tensor:
    """The mean of a per-row sum over every rank's rows: its value is the global mean, its
    gradient W times the global mean's (DDP then averages W equal contributions)."""
    n = dist.all_reduce_sum(count).clamp_min(1)
    total = dist.all_reduce_sum(local) / n
    scaled = local * W / n
    return scaled + (total - scaled).detach()
