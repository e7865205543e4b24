"""SimCLR: two views of each sample pulled together, every other view of the batch pushed away.

Chen et al., "A Simple Framework for Contrastive Learning of Visual Representations", ICML 2020.
Encoder → projection head → NT-Xent (medcl.losses.NTXentLoss, global batch under DDP). Which
images the two views come from is the data's pair strategy (medcl.data.datasets.views: two augmentations
of one image, or two images of the same individual).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from medcl.config import option
from medcl.losses import loss_input
from medcl.losses.ntxent import NTXentLoss
from medcl.methods.base import ProjectionConfig, project_views, view_retrieval
from medcl.models import ImageEncoderConfig, ProjectionHeadConfig, build_image_encoder, build_projection_head


@dataclass
class SimCLRConfig(ProjectionConfig):
    image: ImageEncoderConfig = option(default_factory=ImageEncoderConfig, cli=False)  # the run's --arch, --width


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
