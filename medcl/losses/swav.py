"""SwAV's swapped prediction of cluster codes across crops.

Caron et al., "Unsupervised Learning of Visual Features by Contrasting Cluster Assignments"
(SwAV), NeurIPS 2020. For crops v = 1..V of each sample with prototype scores
p_v = ẑ_v · ĉ_k (cosine similarity to K prototypes), the codes q_a of each assignment crop a
(the two large crops) are the Sinkhorn-Knopp transport of its scores with uniform marginals
(medcl.ops.sinkhorn_knopp, ε, a few rounds; no gradient), and every other crop predicts them:

    L = mean over a of  1/(V−1) Σ_{v ≠ a}  mean over samples of  −Σ_k q_a,k · log softmax(p_v / τ)_k

``queue`` scores (of embeddings from earlier batches, against the current prototypes) join the
batch's scores inside Sinkhorn-Knopp only, to even out the marginals when the batch is much
smaller than K; the codes of the queue rows are dropped. Under DDP the Sinkhorn-Knopp marginals
run over the global batch.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import nn

from medcl.ops.sinkhorn_knopp import sinkhorn_knopp


class SwAVLoss(nn.Module):
    def __init__(self, temperature: float = 0.1, eps: float = 0.05, sinkhorn_iters: int = 3):
        super().__init__()
        if not temperature > 0 or not eps > 0 or sinkhorn_iters < 1:
            raise ValueError("SwAVLoss: temperature and eps must be > 0 and sinkhorn_iters >= 1")
        self.temperature, self.eps, self.sinkhorn_iters = float(temperature), float(eps), int(sinkhorn_iters)

    def codes(self, scores: torch.Tensor, queue: Optional[torch.Tensor] = None, *,
              distributed: bool = False) -> torch.Tensor:
        """(B, K) scores (+ (Q, K) queue scores) → (B, K) codes, rows summing to 1."""
        s = scores.detach().float()
        if queue is not None and queue.shape[0]:
            s = torch.cat([queue.detach().float(), s])                          # (Q + B, K)
        q = sinkhorn_knopp(s, eps=self.eps, n_iters=self.sinkhorn_iters, distributed=distributed)
        return q[-scores.shape[0]:]

    def forward(self, scores: Sequence[torch.Tensor], *, assign: Sequence[int] = (0, 1),
                queues: Optional[Sequence[Optional[torch.Tensor]]] = None,
                distributed: bool = False) -> torch.Tensor:
        """scores: V tensors (B, K) of prototype scores, one per crop (V ≥ 2); assign: the crops whose
        codes are predicted; queues: per assignment crop, (Q, K) queue scores or None."""
        V = len(scores)
        if V < 2:
            raise ValueError("SwAVLoss needs at least two crops")
        total = scores[0].new_zeros((), dtype=torch.float32)
        for n, a in enumerate(assign):
            q = self.codes(scores[a], queues[n] if queues else None, distributed=distributed)   # (B, K)
            for v in range(V):
                if v == a:
                    continue
                logp = torch.log_softmax(scores[v].float() / self.temperature, dim=1)          # (B, K)
                total = total - (q * logp).sum(1).mean() / (V - 1)
        return total / len(assign)
