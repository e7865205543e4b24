"""SimCLR's NT-Xent loss between two views of each sample.

Chen et al., "A Simple Framework for Contrastive Learning of Visual Representations" (SimCLR),
ICML 2020. For N samples with projections z1, z2 of two views (2N views in all), each view's
positive is the other view of its sample and its negatives are the other 2N − 2 views:

    ℓ_i = −log( exp(s(z_i, z_i⁺)/τ) / Σ_{k ≠ i} exp(s(z_i, z_k)/τ) ),   s = cosine similarity
    L   = mean of ℓ over the 2N views

Under DDP (``distributed=True``) the negatives are every rank's views (global batch), computed
by medcl.ops.ntxent_loss without ever holding the 2N × 2N logits.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from medcl.ops.contrastive import ntxent_loss


@dataclass
class NTXentLossConfig:
    temperature: float = 0.1           # τ (SimCLR: 0.1–0.5; 0.1 suits small batches)
    normalize: bool = True             # cosine similarity (L2-normalise the projections)


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
