"""Projection heads: the MLP between an encoder and the contrastive loss.

Two layers, Linear → BatchNorm1d → ReLU → Linear, as in SimCLR (Chen et al., "A Simple
Framework for Contrastive Learning of Visual Representations", ICML 2020) and ContIG
(Taleb et al., CVPR 2022: 2048 → 2048 → 128). The first Linear has no bias: the BatchNorm
after it would cancel one.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


class ProjectionHead(nn.Module):
    """``forward(x: (B, in_dim)) -> (B, out_dim)``.

    Args:
        in_dim: features from the encoder.
        hidden: width of the hidden layer.
        out_dim: dimension of the embedding the loss sees.
    """

    def __init__(self, in_dim: int, hidden: int = 2048, out_dim: int = 128):
        super().__init__()
        if min(in_dim, hidden, out_dim) < 1:
            raise ValueError(f"ProjectionHead: dimensions must be ≥ 1, got in_dim={in_dim}, "
                             f"hidden={hidden}, out_dim={out_dim}")
        self.in_dim, self.out_dim = int(in_dim), int(out_dim)
        self.net = nn.Sequential(nn.Linear(in_dim, hidden, bias=False), nn.BatchNorm1d(hidden),
                                 nn.ReLU(inplace=True), nn.Linear(hidden, out_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:        # (B, in_dim) → (B, out_dim)
        if x.dim() != 2 or x.shape[1] != self.in_dim:
            raise ValueError(f"ProjectionHead: expected input (B, {self.in_dim}), got {tuple(x.shape)}")
        return self.net(x)


@dataclass
class ProjectionHeadConfig:
    hidden: int = 2048                 # width of the hidden layer (ContIG: 2048)
    out_dim: int = 128                 # embedding dimension seen by the loss (ContIG: 128)


def build_projection_head(in_dim: int, cfg: ProjectionHeadConfig) -> ProjectionHead:
    """The head over an encoder with ``in_dim`` output features."""
    return ProjectionHead(in_dim, cfg.hidden, cfg.out_dim)
