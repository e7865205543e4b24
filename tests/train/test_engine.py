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


def losses(run_dir) -> list[tuple[str, str, str, str, str]]:
    with open(Path(run_dir) / "metrics.csv", newline="") as fh:
        return [(r["step"], r["epoch"], r.get("loss", ""), r.get("train_loss", ""), r.get("val_mse", ""))
                for r in csv.DictReader(fh)]


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


def test_sigint_checkpoints_like_sigterm(tmp_path, reference):
    """Ctrl-C: a checkpoint after the step, exit 130, the way to resume named; the resumed run
    gives the uninterrupted run's numbers (epoch means included)."""
    rc, out, err = run(tmp_path, "--int-at", "5", "--checkpoint-every", "0")
    assert rc == 130, err
    assert "PREEMPTED" in out and (tmp_path / "checkpoints" / "step-5.pt").is_file()
    assert "--resume auto" in err and "Ctrl-C again" in err
    rc, out, err = run(tmp_path, "--resume", "auto", "--checkpoint-every", "0")
    assert rc == 0, err
    assert losses(tmp_path) == reference


def test_second_sigint_aborts_at_once(tmp_path):
    rc, out, err = run(tmp_path, "--int-at", "5", "--ints", "2", "--checkpoint-every", "0")
    assert rc in (130, -signal.SIGINT), err              # KeyboardInterrupt, as Ctrl-C always does
    assert "PREEMPTED" not in out and "KeyboardInterrupt" in err
    assert not (tmp_path / "checkpoints").exists()


def test_epoch_numbers_agree(reference):
    """Step rows and the epoch's row (train_loss, validation) carry the same 1-based epoch."""
    steps = [(int(s), int(e)) for s, e, loss, _, _ in reference if loss]
    assert steps == [(s, (s - 1) // 6 + 1) for s in range(1, 19)]
    ends = [(int(s), int(e)) for s, e, loss, train, val in reference if not loss]
    assert ends == [(6, 1), (12, 2), (18, 3)]
    assert all(train and val for _, _, loss, train, val in reference if not loss)


def _toy_trainer(run_dir, epochs=2, global_batch=4, method="toy", width=16):
    import torch
    from torch import nn

    from medcl.train import TrainConfig, Trainer
    sys.path.insert(0, str(TOY.parent))
    from toy_train import Toy, batches
    torch.manual_seed(0)
    toy = Toy()
    toy.net[0], toy.net[3] = nn.Linear(8, width), nn.Linear(width, 1)
    cfg = TrainConfig(epochs=epochs, lr=1e-2, warmup_epochs=0.5, log_every=1, seed=3)
    return Trainer(toy, cfg, run_dir, device=torch.device("cpu"), batches=batches(6, 4), micro_batches_per_epoch=6,
                   extra_state={"method": method}, global_batch=global_batch, title="toy")


def test_resume_refuses_another_model_or_batch(tmp_path):
    _toy_trainer(tmp_path).fit()
    for kwargs, says in [({"method": "other"}, "toy run, not other"),
                         ({"global_batch": 8}, "global batch of 4"),
                         ({"width": 32}, "does not fit this model"),
                         ({"epochs": 1}, "beyond epochs=1")]:
        with pytest.raises(MedclError, match=says):
            _toy_trainer(tmp_path, **{"epochs": 2, **kwargs}).restore("auto")


def test_resume_with_more_epochs_follows_the_new_schedule(tmp_path):
    """2 epochs done (lr 0 at the end); 4 epochs: the lr is the 4-epoch schedule's at step 12."""
    from medcl.train.optim import warmup_cosine
    _toy_trainer(tmp_path, epochs=2).fit()
    longer = _toy_trainer(tmp_path, epochs=4)
    longer.restore("auto")
    assert longer.step == 12
    expected = 1e-2 * warmup_cosine(24, 3)(12)
    assert longer.optimizer.param_groups[0]["lr"] == pytest.approx(expected, rel=1e-12) and expected > 1e-3
    result = longer.fit()
    assert result.steps == 24 and [h["epoch"] for h in result.history] == [1, 2, 3, 4]
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
