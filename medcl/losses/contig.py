"""ContIG's multimodal contrastive loss: the image against each genetic modality.

Taleb et al., "ContIG: Self-supervised Multimodal Contrastive Learning for Medical Imaging
with Genetics", CVPR 2022. For each genetic modality m (raw SNPs, PRS, burden scores, …) with
embeddings z_m of the same people as the image embeddings:

    L_m   = α · InfoNCE(image → m) + (1 − α) · InfoNCE(m → image)       (temperature τ)
    total = mean of L_m over the modalities with at least 2 people in the batch

People lacking modality m (``masks[m]`` False) are left out of L_m, as anchors and as
negatives, in both directions, and still count in every other modality's term. A modality
with fewer than 2 people has no negatives: its term is 0 and it is left out of the mean; when
no modality qualifies the total is a zero still attached to the graph (gradients are zeros).

Which people reach the batch is the caller's choice: "outer" aggregation keeps everyone with
an image and passes each modality's availability as its mask; "inner" keeps only people with
every modality, whose masks are then all True (or omitted). Under DDP (``distributed=True``)
each rank passes its own rows: every term is computed over the global batch by
contrastive_loss's distributed path (each rank holds only its rows' block of logits), and the
2-people rule counts people over all ranks.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Optional

import torch
from torch import nn

from medcl import dist
from medcl.losses.infonce import contrastive_loss


@dataclass
class ContigLossConfig:
    temperature: float = 0.1           # τ of every InfoNCE term (ContIG: 0.1)
    alpha: float = 0.75                # weight of image → modality; modality → image gets 1 − α (ContIG: 0.75)
    normalize: bool = True             # L2-normalise embeddings before the dot products


class ContigLoss(nn.Module):
    """``forward(image_emb, modality_embs, masks) -> (total, terms)``; see the module docstring.

    Args:
        temperature: τ > 0.
        alpha: weight of the image → modality direction, in [0, 1].
        normalize: L2-normalise embeddings first.
    """

    def __init__(self, temperature: float = 0.1, alpha: float = 0.75, normalize: bool = True):
        super().__init__()
        if not float(temperature) > 0:
            raise ValueError(f"ContigLoss: temperature must be > 0, got {temperature}")
        if not 0.0 <= float(alpha) <= 1.0:
            raise ValueError(f"ContigLoss: alpha must be in [0, 1], got {alpha}")
        self.temperature, self.alpha, self.normalize = float(temperature), float(alpha), bool(normalize)

    @classmethod
    def from_config(cls, cfg: ContigLossConfig) -> "ContigLoss":
        return cls(cfg.temperature, cfg.alpha, cfg.normalize)

    def forward(self, image_emb: torch.Tensor, modality_embs: Mapping[str, torch.Tensor],
                masks: Optional[Mapping[str, torch.Tensor]] = None, distributed: bool = False
                ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """
        Args:
            image_emb: (B, D) image embeddings, one row per person.
            modality_embs: name → (B, D) embeddings of that genetic modality, rows aligned
                with ``image_emb``; the values of missing people are ignored.
            masks: name → (B,) bool, True = the person has the modality; a modality without
                an entry (or masks=None) has every person.
            distributed: the rows are this rank's part of a batch spread over the ranks of
                torch.distributed (see medcl.losses.infonce); ignored with one process.

        Returns:
            total: 0-d tensor, the mean of the qualifying modalities' terms.
            terms: name → 0-d tensor L_m (0 for a modality with < 2 people), in the order of
                ``modality_embs``; attached to the graph (detach before logging).
        """
        if not modality_embs:
            raise ValueError("ContigLoss: no genetic modality given")
        masks = {} if masks is None else dict(masks)
        unknown = sorted(set(masks) - set(modality_embs))
        if unknown:
            raise ValueError(f"ContigLoss: masks for modalities without embeddings: {unknown}")
        B = image_emb.shape[0]
        terms: dict[str, torch.Tensor] = {}
        qualifies = []
        for name, z in modality_embs.items():
            mask = masks.get(name)
            if mask is None:
                mask = torch.ones(B, dtype=torch.bool, device=image_emb.device)
            term = contrastive_loss(image_emb, z, temperature=self.temperature, alpha=self.alpha,
                                    normalize=self.normalize, mask_a=mask, mask_b=mask, distributed=distributed)
            people = dist.all_reduce_sum(mask.sum()) if distributed else mask.sum()
            ok = people >= 2                                           # () bool, no host sync
            terms[name] = torch.where(ok, term, torch.zeros_like(term))
            qualifies.append(ok)
        ok_all = torch.stack(qualifies)                                # (M,) bool
        stacked = torch.stack(list(terms.values()))                    # (M,)
        weight = ok_all.to(stacked.dtype)
        total = (stacked * weight).sum() / weight.sum().clamp_min(1.0)
        return total, terms

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}, alpha={self.alpha}, normalize={self.normalize}"
