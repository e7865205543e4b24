"""One rank of the 2-process ContIG check: python ddp_contig_worker.py RANK WORLD TMPDIR.

Reads TMPDIR/batch.pt (the global batch), takes its slice, runs the DDP-wrapped method and
backward; rank 0 writes TMPDIR/rank0.pt with the loss and the (DDP-averaged) gradients.
"""
from __future__ import annotations

import sys

import torch

from medcl.methods import ContigConfig, ContigMethod
from medcl.models import GeneticsEncoderConfig, ImageEncoderConfig
from medcl.train.distributed import shutdown

DIMS = {"snp": 12, "prs": 1}


def make_method(seed: int = 0) -> ContigMethod:
    torch.manual_seed(seed)
    cfg = ContigConfig(modalities=("snp", "prs"), image=ImageEncoderConfig(arch="resnet18", width=0.125),
                       genetics=GeneticsEncoderConfig(hidden_layers=1, hidden=16), head_hidden=16, proj_dim=8)
    return ContigMethod(cfg, DIMS).double()


def main(rank: int, world: int, tmp: str) -> None:
    import torch.distributed as dist
    dist.init_process_group("gloo", init_method=f"file://{tmp}/store", rank=rank, world_size=world)
    torch.set_num_threads(1)
    full = torch.load(f"{tmp}/batch.pt", weights_only=True)
    m = make_method().eval()     # BatchNorm on running statistics: per-sample, so ranks agree exactly
    ddp = torch.nn.parallel.DistributedDataParallel(m)
    B = full["image"].shape[0] // world
    part = {k: ({kk: vv[rank * B:(rank + 1) * B] for kk, vv in v.items()} if isinstance(v, dict)
                else v[rank * B:(rank + 1) * B]) for k, v in full.items()}
    out = ddp(part)
    out["loss"].backward()
    if rank == 0:
        torch.save({"loss": out["loss"].detach(), "grads": {n: p.grad for n, p in m.named_parameters()}},
                   f"{tmp}/rank0.pt")
    del out, ddp                 # the DDP wrapper goes before the process group (see shutdown)
    shutdown()


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3])
