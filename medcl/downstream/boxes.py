"""Boxes for detection: overlap, non-maximum suppression and the FROC sensitivities.

Boxes are ``(N, 4)`` tensors ``x0, y0, x1, y1`` in pixels of the stored image (the layout of the
boxes CSV), ``x1 > x0`` and ``y1 > y0`` for a real box; a box of zero area overlaps nothing.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

FROC_RATES = (0.5, 1.0, 2.0, 4.0)  # false positives per image at which FROC sensitivity is read


def box_area(boxes: torch.Tensor) -> torch.Tensor:
    """(N,) areas (0 for an empty or inverted box)."""
    wh = (boxes[:, 2:] - boxes[:, :2]).clamp(min=0)
    return wh[:, 0] * wh[:, 1]


def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(N, M) intersection over union of every box of ``a`` with every box of ``b`` (0 where the
    union is empty)."""
    lo = torch.maximum(a[:, None, :2], b[None, :, :2])
    hi = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = (hi - lo).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    union = box_area(a)[:, None] + box_area(b)[None, :] - inter
    return torch.where(union > 0, inter / union.clamp(min=torch.finfo(union.dtype).tiny), torch.zeros_like(inter))


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float = 0.5) -> torch.Tensor:
    """Greedy non-maximum suppression: indices of the kept boxes, highest score first. A box is
    dropped when its IoU with a kept, higher-scoring box exceeds ``iou_threshold`` (ties in score:
    the lower index wins)."""
    if boxes.ndim != 2 or boxes.shape[-1] != 4 or scores.shape != boxes.shape[:1]:
        raise ValueError(f"nms: expected boxes (N, 4) and scores (N,), got {tuple(boxes.shape)} and "
                         f"{tuple(scores.shape)}")
    order = torch.argsort(scores, descending=True, stable=True)
    iou = box_iou(boxes[order], boxes[order])
    alive = torch.ones(len(order), dtype=torch.bool, device=boxes.device)
    for i in range(len(order)):
        if alive[i]:
            alive[i + 1:] &= iou[i, i + 1:] <= iou_threshold
    return order[alive]


def froc(predictions: Sequence[tuple[torch.Tensor, torch.Tensor]], truths: Sequence[torch.Tensor], *,
         iou_threshold: float = 0.5, rates: Sequence[float] = FROC_RATES) -> dict[float, float]:
    """FROC sensitivity at each average number of false positives per image in ``rates``.

    ``predictions[k]`` = (boxes (P, 4), scores (P,)) of image k, ``truths[k]`` its true boxes (T, 4).
    Within each image, predictions are matched in score order: one hitting (IoU >= threshold) a
    true box not yet found finds it; one hitting only true boxes already found is a duplicate and
    counted neither way (as in LUNA16's evaluation); any other is a false positive. Sweeping the
    score threshold down gives (false positives per image, fraction of true boxes found) pairs; the
    sensitivity at rate r is the highest one reached with at most r false positives per image.
    NaN when there are no true boxes."""
    if len(predictions) != len(truths):
        raise ValueError(f"froc: {len(predictions)} images of predictions, {len(truths)} of truths")
    events = []  # (score, is_true_positive, is_false_positive)
    total = 0
    for (boxes, scores), truth in zip(predictions, truths):
        total += len(truth)
        order = torch.argsort(scores, descending=True, stable=True)
        hits = box_iou(boxes[order].double(), truth.double()) >= iou_threshold if len(truth) else None
        found = torch.zeros(len(truth), dtype=torch.bool)
        for j, k in enumerate(order.tolist()):
            s = float(scores[k])
            if hits is None or not bool(hits[j].any()):
                events.append((s, 0, 1))
                continue
            new = hits[j] & ~found
            if bool(new.any()):
                found[int(torch.nonzero(new)[0])] = True
                events.append((s, 1, 0))
    if total == 0:
        return {float(r): float("nan") for r in rates}
    if not events:
        return {float(r): 0.0 for r in rates}
    ev = np.array(sorted(events, key=lambda e: -e[0]), dtype=np.float64)
    # a threshold keeps every prediction with score >= it: only the last event of a run of equal scores counts
    last = np.r_[ev[1:, 0] != ev[:-1, 0], True]
    sens = np.cumsum(ev[:, 1])[last] / total
    fps = np.cumsum(ev[:, 2])[last] / len(truths)
    out = {}
    for r in rates:
        ok = fps <= r
        out[float(r)] = float(sens[ok].max()) if ok.any() else 0.0
    return out
