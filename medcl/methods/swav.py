"""SwAV: each crop predicts the cluster codes of the other crops of the same image.

Caron et al., "Unsupervised Learning of Visual Features by Contrasting Cluster Assignments",
NeurIPS 2020. Encoder → projection head → L2-normalised z → scores against K L2-normalised
prototypes → swapped prediction (medcl.losses.SwAVLoss) with codes from Sinkhorn-Knopp
(medcl.ops.sinkhorn_knopp, marginals over the global batch under DDP). Multi-crop: the two
large views plus ``small_crops`` small ones (medcl.data.datasets.views); the codes come from the large
views only. The prototypes receive no update for the first ``freeze_prototypes_iters`` training
forwards (as SwAV, for stability).

Queue (``queue_length`` > 0): the large views' z of the last batches — global over ranks,
identical on every rank, so it is a checkpointed buffer — are scored against the current
prototypes and join Sinkhorn-Knopp once the queue is full (rank 0 contributes them, so each
counts once in the global marginals). It matters when the batch is small against K.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from medcl.config import option
from medcl.losses.swav import SwAVLoss
from medcl.methods.base import ProjectionConfig, project_views, view_retrieval
from medcl.models import ImageEncoderConfig, ProjectionHeadConfig, build_image_encoder, build_projection_head
from medcl import dist as collectives


@dataclass
class SwAVConfig(ProjectionConfig):
    image: ImageEncoderConfig = option(default_factory=ImageEncoderConfig, cli=False)  # the run's --arch, --width
    prototypes: int = option(3000, "Number of prototypes K (SwAV: 3000).")
    eps: float = option(0.05, "Sinkhorn-Knopp ε.", flag="sk_eps")
    sinkhorn_iters: int = option(3, "Sinkhorn-Knopp rounds.", flag="sk_iters")
    queue_length: int = option(0, "Embeddings of past batches joining Sinkhorn-Knopp once filled (0: no queue).")
    freeze_prototypes_iters: int = option(300, "Training forwards before the prototypes are updated.")


class SwAVMethod(nn.Module):
    min_batch = 1         # images per process in a training batch
    min_global_batch = 2  # Sinkhorn-Knopp spreads a batch over the prototypes: one image gets uniform codes

    def __init__(self, cfg: SwAVConfig):
        super().__init__()
        if cfg.prototypes < 1 or cfg.queue_length < 0:
            raise ValueError("SwAV: prototypes must be >= 1 and queue_length >= 0")
        self.cfg = cfg
        self.image_encoder = build_image_encoder(cfg.image)
        self.head = build_projection_head(self.image_encoder.out_dim,
                                          ProjectionHeadConfig(hidden=cfg.head_hidden, out_dim=cfg.proj_dim))
        self.prototypes = nn.Linear(cfg.proj_dim, cfg.prototypes, bias=False)
        self.loss = SwAVLoss(temperature=cfg.temperature, eps=cfg.eps, sinkhorn_iters=cfg.sinkhorn_iters)
        self.register_buffer("forwards", torch.zeros((), dtype=torch.long))
        self.register_buffer("queue", torch.zeros(2, cfg.queue_length, cfg.proj_dim))   # (2, L, P)
        self.register_buffer("queued", torch.zeros((), dtype=torch.long))

    def _embed(self, batch) -> list[torch.Tensor]:
        """Normalised z of every crop: [large 0, large 1, small 0, …], each (B, P)."""
        z = F.normalize(project_views(self.image_encoder, self.head, batch["views"]).float(), dim=-1)
        crops = [z[:, 0], z[:, 1]]
        if "small" in batch:
            zs = F.normalize(project_views(self.image_encoder, self.head, batch["small"]).float(), dim=-1)
            crops += [zs[:, k] for k in range(zs.shape[1])]
        return crops

    def _prototypes(self, frozen: bool) -> torch.Tensor:
        w = self.prototypes.weight.float()
        if frozen:   # no update, but still in the graph (DDP expects a gradient, zero here)
            w = w.detach() + 0.0 * w
        return F.normalize(w, dim=1)                                        # (K, P)

    def forward(self, batch) -> dict[str, torch.Tensor]:
        crops = self._embed(batch)
        frozen = bool(self.forwards < self.cfg.freeze_prototypes_iters)
        self.forwards += 1
        c = self._prototypes(frozen)
        scores = [z @ c.T for z in crops]                                   # V × (B, K)
        queues = None
        if self.cfg.queue_length and int(self.queued) >= self.cfg.queue_length:
            use = collectives.world_size() == 1 or collectives.rank() == 0
            queues = [(self.queue[n] @ c.T) if use else c.new_zeros(0, c.shape[0]) for n in range(2)]
        loss = self.loss(scores, queues=queues, distributed=True)
        if self.cfg.queue_length:
            self._push(torch.stack([crops[0], crops[1]]).detach())
        return {"loss": loss}

    @torch.no_grad()
    def _push(self, z: torch.Tensor) -> None:
        """z (2, B, P) of this rank → the global batch's rows at the front of the queue."""
        if collectives.world_size() > 1:                                    # one gather: (B_global, 2, P)
            z = collectives.gather(z.transpose(0, 1).contiguous()).transpose(0, 1)
        L = self.cfg.queue_length
        self.queue.copy_(torch.cat([z.to(self.queue.dtype), self.queue], dim=1)[:, :L])
        self.queued.fill_(min(int(self.queued) + z.shape[1], L))

    @torch.no_grad()
    def evaluate(self, batches) -> dict[str, float]:
        """Validation: mean swapped-prediction loss (no queue) and view-1 → view-2 retrieval."""
        losses, zs = [], []
        c = self._prototypes(False)
        for batch in batches:
            crops = self._embed(batch)
            if crops[0].shape[0] >= self.min_global_batch:  # a last batch of one image: uniform codes
                losses.append(float(self.loss([z @ c.T for z in crops])))
            zs.append(torch.stack([crops[0], crops[1]], dim=1).cpu())
        if not zs:
            return {}
        loss = {"val_loss": sum(losses) / len(losses)} if losses else {}
        return {**loss, **view_retrieval(torch.cat(zs))}
