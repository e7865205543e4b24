"""The few torch.distributed collectives the ops, losses and methods need, each a no-op in a
single process.

``gather_with_grad`` is an all-gather whose backward sums each rank's gradient for every row
and hands it to the row's owner (a reduce-scatter): DisCo-CLIP's scheme (Chen et al.,
"DisCo-CLIP: A Distributed Contrastive Loss for Memory Efficient CLIP Training", CVPR 2023).
"""
from __future__ import annotations

import torch
import torch.distributed as dist


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if world_size() > 1 else 0


def all_sizes(n: int, device: torch.device) -> list[int]:
    """[n of rank 0, n of rank 1, ...] (one small all-gather)."""
    if world_size() == 1:
        return [n]
    t = torch.tensor([n], device=device)
    out = [torch.zeros_like(t) for _ in range(world_size())]
    dist.all_gather(out, t)
    return [int(s) for s in out]


class _GatherRows(torch.autograd.Function):
    """All-gather of rows (padded to the longest rank); backward: sum over ranks, own rows kept."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, sizes: list[int]) -> torch.Tensor:
        longest = max(sizes)
        padded = torch.cat([x, x.new_zeros((longest - x.shape[0], *x.shape[1:]))]) if longest != x.shape[0] else x
        parts = [torch.empty_like(padded) for _ in sizes]
        dist.all_gather(parts, padded.contiguous())
        ctx.sizes, ctx.rank = sizes, dist.get_rank()
        return torch.cat([p[:s] for p, s in zip(parts, sizes)], dim=0)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        lo = sum(ctx.sizes[:ctx.rank])
        if dist.get_backend() == "nccl":        # reduce-scatter: each rank receives only its rows
            longest = max(ctx.sizes)
            chunks = list(grad.split(ctx.sizes))
            chunks = [torch.cat([c, c.new_zeros((longest - c.shape[0], *c.shape[1:]))]) for c in chunks]
            out = grad.new_empty((longest, *grad.shape[1:]))
            dist.reduce_scatter_tensor(out, torch.cat(chunks).contiguous())
            return out[:ctx.sizes[ctx.rank]], None
        total = grad.contiguous().clone()       # gloo has no reduce-scatter: all-reduce, keep own rows
        dist.all_reduce(total)
        return total[lo:lo + ctx.sizes[ctx.rank]], None


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """(B_r, ...) on rank r -> (sum_r B_r, ...) in rank order, the gradient flowing back to each
    rank's own rows, summed over ranks (so negatives span the global batch). B_r may differ
    between ranks (a batch shortened by a skipped bad sample): rows are padded for the exchange
    and dropped after."""
    if world_size() == 1:
        return x
    return _GatherRows.apply(x, all_sizes(x.shape[0], x.device))


def gather(x: torch.Tensor) -> torch.Tensor:
    """As :func:`gather_with_grad` without a gradient (masks, counts)."""
    with torch.no_grad():
        return gather_with_grad(x.detach())


def all_reduce_sum(x: torch.Tensor) -> torch.Tensor:
    """Sum over ranks of a tensor (a detached copy; no gradient)."""
    return _all_reduce(x, dist.ReduceOp.SUM)


def all_reduce_max(x: torch.Tensor) -> torch.Tensor:
    """Elementwise max over ranks of a tensor (a detached copy; no gradient)."""
    return _all_reduce(x, dist.ReduceOp.MAX)


def _all_reduce(x: torch.Tensor, op) -> torch.Tensor:
    x = x.detach().clone()
    if world_size() > 1:
        dist.all_reduce(x, op=op)
    return x
