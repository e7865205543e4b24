"""Cross-modal retrieval accuracy: does a query's nearest keys include its own partner?"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def topk_accuracy(queries: torch.Tensor, keys: torch.Tensor, target: torch.Tensor,
                  ks: tuple[int, ...] = (1, 5)) -> dict[str, float]:
    """queries (Q, D), keys (K, D), target (Q,) = the row of keys that is each query's partner.

    Cosine similarity ranking. Returns {"top1": ..., "top5": ..., "chance_top1": k/K, ...}; a
    k larger than K counts as K.
    """
    if queries.shape[0] == 0 or keys.shape[0] == 0:
        return {}
    sim = F.normalize(queries.float(), dim=1) @ F.normalize(keys.float(), dim=1).T   # (Q, K)
    own = sim.gather(1, target.view(-1, 1))                                         # (Q, 1)
    rank = (sim > own).sum(1)                                                       # 0 = best; ties favour the partner
    out = {}
    for k in ks:
        kk = min(k, keys.shape[0])
        out[f"top{k}"] = float((rank < kk).float().mean())
        out[f"chance_top{k}"] = kk / keys.shape[0]
    return out
