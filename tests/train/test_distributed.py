"""Launcher detection (torchrun, srun) and the engine under 2 gloo processes."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from medcl.train.distributed import DistInfo, detect, first_host

TOY = Path(__file__).with_name("toy_train.py")


def test_detect_torchrun_srun_and_single():
    assert detect({"RANK": "3", "LOCAL_RANK": "1", "WORLD_SIZE": "8"}) == DistInfo(3, 1, 8, "torchrun")
    slurm = {"SLURM_PROCID": "5", "SLURM_LOCALID": "1", "SLURM_NTASKS": "8"}
    info = detect(slurm)
    assert (info.rank, info.local_rank, info.world_size, info.launcher) == (5, 1, 8, "srun")
    assert detect({"SLURM_PROCID": "0", "SLURM_NTASKS": "1"}).world_size == 1   # a plain sbatch step
    assert detect({}).world_size == 1 and not detect({}).distributed


def test_first_host_of_slurm_nodelists():
    assert first_host("gpu[03-05,07],cpu1") == "gpu03"
    assert first_host("node12") == "node12"
    assert first_host("a[1,4]") == "a1"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_engine_runs_under_two_gloo_processes(tmp_path):
    port = _free_port()
    procs = []
    for rank in range(2):
        env = {**os.environ, "RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": "2",
               "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
        procs.append(subprocess.Popen([sys.executable, str(TOY), str(tmp_path), "--epochs", "2", "--nan-at", "3",
                                       "--term-at", "9"] if rank == 1 else
                                      [sys.executable, str(TOY), str(tmp_path), "--epochs", "2"],
                                      env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outs = [p.communicate(timeout=300) for p in procs]
    # Rank 1 alone saw a NaN (step skipped on both) and alone got SIGTERM: both ranks stop with 143.
    assert [p.returncode for p in procs] == [143, 143], outs
    assert all("PREEMPTED" in o[0] for o in outs)
    assert "skipped: non-finite loss" in outs[0][1]                 # rank 0 logged the agreed skip
    assert (tmp_path / "checkpoints" / "last.pt").is_file()
