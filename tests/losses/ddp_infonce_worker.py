"""One rank of the 2-process loss check: python ddp_infonce_worker.py RANK WORLD TMPDIR.

Reads TMPDIR/inputs.pt (the global batch, each rank's row range and the loss: "contrastive" or
"ntxent"), runs contrastive_loss or ntxent_loss with distributed=True on this rank's rows,
backward, and writes TMPDIR/rank{R}.pt
with the loss and the gradients of its rows and of the temperature.
"""
from __future__ import annotations

import sys

import torch

from medcl.train.distributed import shutdown


def main(rank: int, world: int, tmp: str) -> None:
    import torch.distributed as dist

    from medcl.losses import contrastive_loss, ntxent_loss
    dist.init_process_group("gloo", init_method=f"file://{tmp}/store", rank=rank, world_size=world)
    torch.set_num_threads(1)
    full = torch.load(f"{tmp}/inputs.pt", weights_only=True)
    lo, hi = full["bounds"][rank], full["bounds"][rank + 1]
    a = full["a"][lo:hi].clone().requires_grad_(True)
    b = full["b"][lo:hi].clone().requires_grad_(True)
    tau = full["tau"].clone().requires_grad_(True)
    if full["loss"] == "ntxent":
        loss = ntxent_loss(a, b, temperature=tau, distributed=True)
    else:
        loss = contrastive_loss(a, b, temperature=tau, alpha=full["alpha"], mask_a=full["mask_a"][lo:hi],
                                mask_b=full["mask_b"][lo:hi], distributed=True)
    loss.backward()
    torch.save({"loss": loss.detach(), "a": a.grad, "b": b.grad, "tau": tau.grad}, f"{tmp}/rank{rank}.pt")
    shutdown()


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3])
