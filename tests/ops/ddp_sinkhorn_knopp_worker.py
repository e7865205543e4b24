"""One rank of the 2-process SwAV-codes check: python ddp_sinkhorn_knopp_worker.py RANK WORLD TMPDIR.

Reads TMPDIR/scores.pt (the global batch and each rank's row range), computes sinkhorn_knopp on
this rank's rows with global marginals and writes TMPDIR/codes{R}.pt: the codes and which
backend ran ("cpp": the pass ops with all-reduces between them; "reference" under
MEDCL_BACKEND=reference).
"""
from __future__ import annotations

import sys

import torch

from medcl.train.distributed import shutdown


def main(rank: int, world: int, tmp: str) -> None:
    import torch.distributed as dist

    from medcl import _extension
    from medcl.ops import sinkhorn_knopp
    dist.init_process_group("gloo", init_method=f"file://{tmp}/store", rank=rank, world_size=world)
    torch.set_num_threads(1)
    full = torch.load(f"{tmp}/scores.pt", weights_only=True)
    lo, hi = full["bounds"][rank], full["bounds"][rank + 1]
    codes = sinkhorn_knopp(full["scores"][lo:hi], eps=full["eps"], n_iters=full["n_iters"])
    torch.save({"codes": codes, "backend": _extension.backend("sinkhorn_knopp", "cpu")}, f"{tmp}/codes{rank}.pt")
    shutdown()


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3])
