"""What a pretraining method is, and the parts several methods share.

A method is an ``nn.Module`` with

- ``image_encoder``: the encoder the run exports (``medcl.models`` registry; what ``embed`` and
  ``finetune`` load),
- ``forward(batch) → dict of losses``: ``"loss"`` is what the Trainer minimises; other entries
  (its parts) are logged,
- ``evaluate(batches) → dict of floats``: validation numbers over an iterable of batches
  (``val_loss`` and retrieval accuracies with their chance levels),
- ``min_batch`` / ``min_global_batch``: the smallest batch per process and over all processes
  that gives a meaningful loss (checked before a run starts).

``medcl.pretrain.registry`` names the methods ``medcl pretrain --method`` knows; a method's
options and its data live beside it in ``medcl/pretrain/<method>.py``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Protocol, runtime_checkable

import torch
from torch import nn

from medcl.config import DictConfig, option
from medcl.methods.retrieval import topk_accuracy


@runtime_checkable
class Method(Protocol):
    image_encoder: nn.Module
    min_batch: int
    min_global_batch: int

    def forward(self, batch: dict) -> dict[str, torch.Tensor]: ...

    def evaluate(self, batches: Iterable[dict]) -> dict[str, float]: ...


@dataclass
class ProjectionConfig(DictConfig):
    """The projection head and the softmax temperature the contrastive methods share."""

    head_hidden: int = option(2048, "Projection head hidden width.")
    proj_dim: int = option(128, "Embedding size of the projections.")
    temperature: float = option(0.1, "Temperature τ of InfoNCE (contig), NT-Xent (simclr) and the prototype "
                                     "softmax (swav).")


def project_views(encoder: nn.Module, head: nn.Module, views: torch.Tensor) -> torch.Tensor:
    """(B, V, C, S, S) views → (B, V, P) projections (all views through the encoder at once)."""
    B, V = views.shape[:2]
    return head(encoder(views.flatten(0, 1))).view(B, V, -1)


def view_retrieval(z: torch.Tensor) -> dict[str, float]:
    """z (N, 2, P): does view 1 of each image find its own view 2 among all N? (top-1/5, chance)."""
    if z.shape[0] < 2:
        return {}
    acc = topk_accuracy(z[:, 0], z[:, 1], torch.arange(z.shape[0]), ks=(1, 5))
    return {f"val_view_{k}": v for k, v in acc.items()}
