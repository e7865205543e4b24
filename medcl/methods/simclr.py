"""SimCLR: two views of each sample pulled together, every other view of the batch pushed away.

Chen et al., "A Simple Framework for Contrastive Learning of Visual Representations", ICML 2020.
Encoder → projection head → NT-Xent (medcl.losses.NTXentLoss, global batch under DDP). Which
images the two views come from is the data's pair strategy (medcl.data.views: two augmentations
of one image, or two images of the same individual).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from medcl.losses import loss_input
from medcl.losses.ntxent import NTXentLoss
from medcl.config import DictConfig
from medcl.methods.retrieval import topk_accuracy
from medcl.models import ImageEncoderConfig, ProjectionHeadConfig, build_image_encoder, build_projection_head


@dataclass
class SimCLRConfig(DictConfig):
    image: ImageEncoderConfig = field(default_factory=ImageEncoderConfig)  # image encoder
    head_hidden: int = 2048                                                # projection head hidden width
    proj_dim: int = 128                                                    # projection size
    temperature: float = 0.1                                               # NT-Xent τ


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


class SimCLRMethod(nn.Module):
    min_batch = 1         # images per process in a training batch (the head sees 2 views of each)
    min_global_batch = 2  # NT-Xent: with one image its two views have no negatives and the loss is 0

    def __init__(self, cfg: SimCLRConfig):
        super().__init__()
        self.cfg = cfg
        self.image_encoder = build_image_encoder(cfg.image)
        self.head = build_projection_head(self.image_encoder.out_dim,
                                          ProjectionHeadConfig(hidden=cfg.head_hidden, out_dim=cfg.proj_dim))
        self.loss = NTXentLoss(temperature=cfg.temperature)

    def forward(self, batch) -> dict[str, torch.Tensor]:
        z = loss_input(project_views(self.image_encoder, self.head, batch["views"]))   # (B, 2, P)
        return {"loss": self.loss(z[:, 0], z[:, 1], distributed=True)}

    @torch.no_grad()
    def evaluate(self, batches) -> dict[str, float]:
        """Validation: mean NT-Xent over batches and view-1 → view-2 retrieval over the split."""
        losses, zs = [], []
        for batch in batches:
            z = loss_input(project_views(self.image_encoder, self.head, batch["views"]))
            if z.shape[0] >= self.min_global_batch:  # a last batch of one image has no negatives: loss 0
                losses.append(float(self.loss(z[:, 0], z[:, 1])))
            zs.append(z.cpu())
        if not zs:
            return {}
        loss = {"val_loss": sum(losses) / len(losses)} if losses else {}
        return {**loss, **view_retrieval(torch.cat(zs))}
