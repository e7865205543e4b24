"""The training engine: exact resume after kill -9, SIGTERM preemption, non-finite steps."""
from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from medcl.errors import MedclError

TOY = Path(__file__).with_name("toy_train.py")


def run(run_dir, *args):
    p = subprocess.run([sys.executable, str(TOY), str(run_dir), *args], capture_output=True, text=True,
                       timeout=300)
    return p.returncode, p.stdout, p.stderr


def losses(run_dir) -> list[tuple[str, str, str]]:
    with open(Path(run_dir) / "metrics.csv", newline="") as fh:
        return [(r["step"], r.get("loss", ""), r.get("val_mse", "")) for r in csv.DictReader(fh)]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    d = tmp_path_factory.mktemp("straight")
    rc, out, err = run(d)
    assert rc == 0, err
    return losses(d)


def test_kill_9_then_resume_is_bitwise_identical(tmp_path, reference):
    rc, _, _ = run(tmp_path, "--kill-at", "10")          # dies inside micro-batch 10 (after step-8 ckpt)
    assert rc == -signal.SIGKILL
    assert (tmp_path / "checkpoints" / "last.pt").is_file()
    rc, out, err = run(tmp_path, "--resume", "auto")
    assert rc == 0, err
    assert losses(tmp_path) == reference                  # the same floats, to the last bit


def test_sigterm_checkpoints_and_exits_143(tmp_path, reference):
    rc, out, err = run(tmp_path, "--term-at", "5", "--checkpoint-every", "0")
    assert rc == 143, err
    assert "PREEMPTED" in out and (tmp_path / "checkpoints" / "step-5.pt").is_file()
    rc, out, err = run(tmp_path, "--resume", "auto", "--checkpoint-every", "0")
    assert rc == 0, err
    assert losses(tmp_path) == reference


def test_corrupt_newest_checkpoint_falls_back(tmp_path, reference):
    rc, _, _ = run(tmp_path, "--kill-at", "12")
    ck = tmp_path / "checkpoints"
    steps = sorted(ck.glob("step-*.pt"), key=lambda p: int(p.stem.split("-")[1]))
    assert [p.name for p in steps] == ["step-8.pt", "step-10.pt"]   # the last two kept
    (ck / "last.pt").write_bytes(b"garbage")
    steps[-1].write_bytes(steps[-1].read_bytes()[:100])             # truncated newest
    rc, out, err = run(tmp_path, "--resume", "auto")
    assert rc == 0, err
    assert "unreadable" in err and "step 8" in err
    assert losses(tmp_path) == reference


def test_nonfinite_steps_are_skipped(tmp_path):
    rc, out, err = run(tmp_path, "--nan-at", "3,7")
    assert rc == 0, err
    assert "DONE 16 3" in out                             # 18 micro-batches, 2 skipped steps
    assert err.count("skipped: non-finite loss") == 2
    rows = losses(tmp_path)
    assert all(r[1] not in ("nan", "inf") for r in rows)


def test_nonfinite_streak_aborts(tmp_path):
    rc, out, err = run(tmp_path, "--nan-at", "4,5,6")
    assert rc != 0 and "training diverged: 3 steps in a row" in err


def test_accumulation_skips_the_whole_window(tmp_path):
    rc, out, err = run(tmp_path, "--accumulate", "2", "--nan-at", "3")
    assert rc == 0, err
    assert "DONE 8 3" in out                              # 9 windows of 2, one skipped


def test_load_rejects_non_checkpoints(tmp_path):
    from medcl.train import checkpoint as ckpt
    import torch
    torch.save({"x": 1}, tmp_path / "w.pt")
    with pytest.raises(MedclError, match="not a medcl checkpoint"):
        ckpt.load(tmp_path / "w.pt")
    (tmp_path / "bad.pt").write_bytes(os.urandom(64))
    with pytest.raises(MedclError, match="cannot read"):
        ckpt.load(tmp_path / "bad.pt")
