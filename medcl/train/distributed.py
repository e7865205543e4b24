"""Process groups for torchrun and plain srun, and the collectives the methods need.

torchrun sets RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT. Under plain ``srun``
(one task per GPU) SLURM sets SLURM_PROCID, SLURM_LOCALID, SLURM_NTASKS; the master is the
first host of SLURM_JOB_NODELIST and the port is derived from SLURM_JOB_ID unless
MASTER_ADDR / MASTER_PORT are given.
"""
from __future__ import annotations

import gc
import logging
import os
import re
from dataclasses import dataclass

import torch
import torch.distributed as dist

from medcl.dist import all_reduce_max, gather_with_grad, world_size  # noqa: F401 (re-exported)

log = logging.getLogger("medcl")


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0          # global rank
    local_rank: int = 0    # rank on this node (picks the GPU)
    world_size: int = 1    # number of processes
    launcher: str = "none"  # "torchrun", "srun" or "none"

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def first_host(nodelist: str) -> str:
    """First host of a SLURM node list: 'gpu[03-05,07],cpu1' -> 'gpu03'."""
    m = re.match(r"([^,\[]+)(\[([^\]]+)\])?", nodelist.strip())
    if not m:
        return nodelist
    prefix, _, ranges = m.groups()
    if not ranges:
        return prefix
    return prefix + ranges.split(",")[0].split("-")[0]


def detect(env: dict | None = None) -> DistInfo:
    """The launcher's view of this process, from the environment."""
    env = os.environ if env is None else env
    if "RANK" in env and "WORLD_SIZE" in env:
        return DistInfo(int(env["RANK"]), int(env.get("LOCAL_RANK", 0)), int(env["WORLD_SIZE"]), "torchrun")
    if "SLURM_PROCID" in env and int(env.get("SLURM_NTASKS", "1")) > 1:
        return DistInfo(int(env["SLURM_PROCID"]), int(env.get("SLURM_LOCALID", 0)), int(env["SLURM_NTASKS"]), "srun")
    return DistInfo()


def init(device_type: str) -> DistInfo:
    """Joins the process group when launched with several processes; returns this process's DistInfo."""
    info = detect()
    if not info.distributed or dist.is_initialized():
        return info
    if info.launcher == "srun":
        os.environ.setdefault("MASTER_ADDR", first_host(os.environ.get("SLURM_JOB_NODELIST", "127.0.0.1")))
        os.environ.setdefault("MASTER_PORT", str(20000 + int(os.environ.get("SLURM_JOB_ID", "0")) % 20000))
        os.environ["RANK"], os.environ["WORLD_SIZE"] = str(info.rank), str(info.world_size)
        os.environ["LOCAL_RANK"] = str(info.local_rank)
    backend = "nccl" if device_type == "cuda" else "gloo"
    if device_type == "cuda":
        torch.cuda.set_device(info.local_rank)
    dist.init_process_group(backend=backend)
    if info.is_main:
        log.info("distributed: %d processes (%s, %s)", info.world_size, info.launcher, backend)
    return info


def shutdown() -> None:
    """Leaves the process group. Callers drop their DDP wrappers first; the collection here frees
    them (and their reducers) while the group is still alive: left to interpreter exit, gloo's
    threads outlive it and the process aborts ("terminate called", about 1 exit in 15)."""
    if dist.is_initialized():
        gc.collect()
        dist.destroy_process_group()


def any_rank(*flags: bool, device: torch.device | None = None) -> list[bool]:
    """For each flag: True if it is True on any rank (one small all-reduce for all of them)."""
    if world_size() == 1:
        return [bool(f) for f in flags]
    t = torch.tensor([1.0 if f else 0.0 for f in flags], device=device or torch.device("cpu"))
    return [bool(v) for v in all_reduce_max(t).tolist()]


def all_gather_object(obj):
    """[obj of rank 0, obj of rank 1, ...] (a list of one item without a process group)."""
    if world_size() == 1:
        return [obj]
    out = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


def barrier() -> None:
    if world_size() > 1:
        dist.barrier()
