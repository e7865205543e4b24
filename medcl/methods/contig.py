"""ContIG: contrastive alignment of images with several genetic modalities.

Taleb et al., "ContIG: Self-supervised Multimodal Contrastive Learning for Medical Imaging
with Genetics", CVPR 2022. An image encoder and one encoder per genetic modality (raw SNPs,
PRS, burden scores), each with a projection head; per modality m the loss is
α·L(image→m) + (1−α)·L(m→image) (InfoNCE, temperature τ), people lacking m are masked out of
m's term, and the total is the mean over the modalities present in the batch. Under DDP
negatives span the global batch: each rank computes only its own rows' block of logits against
the gathered embeddings (medcl.ops.contrastive_loss's distributed path).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from medcl.losses import ContigLoss, loss_input
from medcl.config import option
from medcl.methods.base import ProjectionConfig
from medcl.methods.retrieval import topk_accuracy
from medcl.models import (GeneticsEncoderConfig, ImageEncoderConfig, ProjectionHeadConfig, build_genetics_encoder,
                          build_image_encoder, build_projection_head)


@dataclass
class ContigConfig(ProjectionConfig):
    modalities: tuple = option(("snp",), cli=False)  # genetic modalities aligned with the image (the run's --modalities less image)
    image: ImageEncoderConfig = option(default_factory=ImageEncoderConfig, cli=False)  # the run's --arch, --width
    genetics: GeneticsEncoderConfig = option(default_factory=GeneticsEncoderConfig, flag="genetics")  # per modality
    alpha: float = option(0.75, "Weight of image→genetics in each modality's loss.")


class ContigMethod(nn.Module):
    min_batch = 2         # images per process in a training batch: BatchNorm1d over the rows (heads, genetic encoders)
    min_global_batch = 2  # InfoNCE: one partner and at least one negative per image

    def __init__(self, cfg: ContigConfig, genetic_dims: dict[str, int]):
        super().__init__()
        missing = [m for m in cfg.modalities if m not in genetic_dims]
        if missing:
            raise ValueError(f"no input size for modalities {missing}")
        self.cfg = cfg
        self.image_encoder = build_image_encoder(cfg.image)
        head = ProjectionHeadConfig(hidden=cfg.head_hidden, out_dim=cfg.proj_dim)
        self.image_head = build_projection_head(self.image_encoder.out_dim, head)
        self.genetic_encoders = nn.ModuleDict({
            m: build_genetics_encoder(genetic_dims[m], cfg.genetics) for m in cfg.modalities})
        self.genetic_heads = nn.ModuleDict({
            m: build_projection_head(self.genetic_encoders[m].out_dim, head) for m in cfg.modalities})
        self.loss = ContigLoss(temperature=cfg.temperature, alpha=cfg.alpha)

    def project(self, batch) -> tuple[torch.Tensor, dict, dict]:
        """Local projections: image (B, P), {m: (B, P)}, {m: (B,) bool present}."""
        zi = self.image_head(self.image_encoder(batch["image"]))
        zm = {m: self.genetic_heads[m](self.genetic_encoders[m](batch["genetics"][m])) for m in self.cfg.modalities}
        present = {m: batch["present"][m].to(zi.device, torch.bool) for m in self.cfg.modalities}
        return zi, zm, present

    def forward(self, batch) -> dict[str, torch.Tensor]:
        zi, zm, present = self.project(batch)                               # this rank's rows
        total, terms = self.loss(loss_input(zi), {m: loss_input(z) for m, z in zm.items()}, present, distributed=True)
        return {"loss": total, **{f"loss_{m}": t.detach() for m, t in terms.items()}}

    @torch.no_grad()
    def evaluate(self, batches) -> dict[str, float]:
        """Validation: mean contrastive loss over batches and image→genetics retrieval over the
        whole split (queries: every image; keys: one genetic embedding per individual)."""
        losses, zi_all, zm_all, present_all, person_all = [], [], {m: [] for m in self.cfg.modalities}, \
            {m: [] for m in self.cfg.modalities}, []
        for batch in batches:
            zi, zm, present = self.project(batch)
            if zi.shape[0] >= self.min_global_batch:  # a last batch of one image has no negatives: loss 0
                total, _ = self.loss(loss_input(zi), {m: loss_input(z) for m, z in zm.items()}, present)
                losses.append(float(total))
            zi_all.append(zi.float().cpu())
            person_all.append(batch["person"].cpu())
            for m in self.cfg.modalities:
                zm_all[m].append(zm[m].float().cpu())
                present_all[m].append(present[m].cpu())
        if not zi_all:
            return {}
        out = {"val_loss": sum(losses) / len(losses)} if losses else {}
        zi, person = torch.cat(zi_all), torch.cat(person_all)
        for m in self.cfg.modalities:
            z, ok = torch.cat(zm_all[m]), torch.cat(present_all[m])
            people, first = _first_rows(person[ok])
            if len(people) < 2:
                continue
            keys = z[ok][first]                                             # one key per individual
            lookup = {int(p): k for k, p in enumerate(people.tolist())}
            q_rows = [r for r in range(len(person)) if bool(ok[r])]
            target = torch.tensor([lookup[int(person[r])] for r in q_rows])
            acc = topk_accuracy(zi[q_rows], keys, target, ks=(1, 5))
            out.update({f"val_{m}_{k}": v for k, v in acc.items()})
        return out


def _first_rows(person: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Unique individuals and the first row where each occurs."""
    seen: dict[int, int] = {}
    for r, p in enumerate(person.tolist()):
        seen.setdefault(int(p), r)
    people = torch.tensor(list(seen.keys()), dtype=torch.long)
    return people, torch.tensor(list(seen.values()), dtype=torch.long)
