"""The jigsaw-puzzle loss: a relaxed permutation against the true one.

Taleb et al., "Multimodal Self-Supervised Learning for Medical Image Analysis", IPMI 2021,
after Mena et al., "Learning Latent Permutations with Gumbel-Sinkhorn Networks", ICLR 2018.
A network scores every (tile, position) pair; the Sinkhorn operator turns the scores into the
log of a doubly-stochastic matrix P = exp(log_p) (B, N, N), row i the soft position of tile i.
The target is the permutation matrix T with T[b, i, perm[b, i]] = 1:

    "mse" (the paper):  mean over b, i, j of (P[b, i, j] − T[b, i, j])²
    "ce":               −mean over b, i of log_p[b, i, perm[b, i]]   (cross-entropy per tile)
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

KINDS = ("mse", "ce")


class PuzzleLoss(nn.Module):
    """``forward(log_p: (B, N, N), perm: (B, N) long) -> 0-d loss``; see the module docstring.

    Args:
        kind: "mse" (squared error of the soft permutation matrix, as the paper) or "ce"
            (negative log-probability of each tile's true position).
    """

    def __init__(self, kind: str = "mse"):
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"PuzzleLoss: kind must be one of {KINDS}, got {kind!r}")
        self.kind = kind

    def forward(self, log_p: torch.Tensor, perm: torch.Tensor) -> torch.Tensor:
        if log_p.dim() != 3 or log_p.shape[1] != log_p.shape[2]:
            raise ValueError(f"PuzzleLoss: log_p must be (B, N, N), got {tuple(log_p.shape)}")
        if tuple(perm.shape) != tuple(log_p.shape[:2]):
            raise ValueError(f"PuzzleLoss: perm must be {tuple(log_p.shape[:2])}, got {tuple(perm.shape)}")
        perm = perm.to(device=log_p.device, dtype=torch.long)
        if self.kind == "ce":
            return -log_p.gather(2, perm.unsqueeze(2)).mean()              # (B, N, 1) → ()
        target = F.one_hot(perm, log_p.shape[2]).to(log_p.dtype)           # (B, N, N)
        return (log_p.exp() - target).square().mean()

    def extra_repr(self) -> str:
        return f"kind={self.kind!r}"
