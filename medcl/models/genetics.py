"""Genetics encoders: one per modality (raw SNPs, PRS, burden scores).

As in ContIG (Taleb et al., "ContIG: Self-supervised Multimodal Contrastive Learning for
Medical Imaging with Genetics", CVPR 2022), a modality's encoder is either the identity (the
projection head then works on the features directly) or 1-2 hidden layers of
Linear → ReLU → BatchNorm1d, 2048 wide. Inputs are standardised features (B, in_dim);
imputation and standardisation happen upstream (medcl.io / medcl.data).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from medcl.config import option


class GeneticsEncoder(nn.Module):
    """``forward(x: (B, in_dim)) -> (B, out_dim)``; ``out_dim`` is ``in_dim`` for the identity,
    else ``hidden``.

    Args:
        in_dim: features of the modality (SNPs, scores).
        hidden_layers: 0 (identity), 1 or 2 blocks of Linear → ReLU → BatchNorm1d.
        hidden: width of every hidden block.
    """

    def __init__(self, in_dim: int, hidden_layers: int = 1, hidden: int = 2048):
        super().__init__()
        if in_dim < 1:
            raise ValueError(f"GeneticsEncoder: in_dim must be ≥ 1, got {in_dim}")
        if hidden_layers not in (0, 1, 2):
            raise ValueError(f"GeneticsEncoder: hidden_layers must be 0, 1 or 2, got {hidden_layers}")
        if hidden_layers and hidden < 1:
            raise ValueError(f"GeneticsEncoder: hidden must be ≥ 1, got {hidden}")
        layers: list[nn.Module] = []
        cin = in_dim
        for _ in range(hidden_layers):
            layers += [nn.Linear(cin, hidden), nn.ReLU(inplace=True), nn.BatchNorm1d(hidden)]
            cin = hidden
        self.in_dim, self.hidden_layers = int(in_dim), int(hidden_layers)
        self.net = nn.Sequential(*layers) if layers else nn.Identity()
        self.out_dim = cin

    def forward(self, x: torch.Tensor) -> torch.Tensor:        # (B, in_dim) → (B, out_dim)
        if x.dim() != 2 or x.shape[1] != self.in_dim:
            raise ValueError(f"GeneticsEncoder: expected input (B, {self.in_dim}), got {tuple(x.shape)}")
        return self.net(x)


@dataclass
class GeneticsEncoderConfig:
    hidden_layers: int = option(1, "Hidden layers of each genetic encoder (0: identity, else 1-2 blocks of "
                                   "Linear → ReLU → BatchNorm1d).", low=0, high=2)
    hidden: int = option(2048, "Width of each hidden block (ContIG: 2048).")


def build_genetics_encoder(in_dim: int, cfg: GeneticsEncoderConfig) -> GeneticsEncoder:
    """The encoder of one modality with ``in_dim`` input features."""
    return GeneticsEncoder(in_dim, cfg.hidden_layers, cfg.hidden)
