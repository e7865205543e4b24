"""A tiny method for engine tests, runnable as a script (subprocesses for kill -9 / SIGTERM).

python toy_train.py RUN [--epochs 3] [--resume auto] [--kill-at N] [--term-at N] [--int-at N] [--ints K]
                       [--nan-at N,M] ...
N counts forward calls (micro-batches) of this process; --int-at sends K SIGINTs (Ctrl-C) there.
"""
from __future__ import annotations

import argparse
import os
import signal
import sys

import torch
from torch import nn

from medcl.train import Preempted, TrainConfig, Trainer


class Toy(nn.Module):
    """Regression with dropout (uses the RNG, so resume must restore it)."""

    def __init__(self, kill_at=None, term_at=None, nan_at=(), int_at=None, ints=1):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 1))
        self.calls, self.kill_at, self.term_at, self.nan_at = 0, kill_at, term_at, set(nan_at)
        self.int_at, self.ints = int_at, ints

    def forward(self, batch):
        self.calls += 1
        if self.kill_at is not None and self.calls == self.kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        if self.term_at is not None and self.calls == self.term_at:
            os.kill(os.getpid(), signal.SIGTERM)
        if self.int_at is not None and self.calls == self.int_at:
            for _ in range(self.ints):
                os.kill(os.getpid(), signal.SIGINT)
        x, y = batch["x"], batch["y"]
        loss = ((self.net(x).squeeze(1) - y) ** 2).mean()
        if self.calls in self.nan_at:
            loss = loss * float("nan")
        return {"loss": loss, "mse": loss.detach()}


def batches(n_per_epoch: int, bs: int):
    def make(epoch: int, start: int):
        g = torch.Generator().manual_seed(1000 + epoch)
        xs = torch.randn(n_per_epoch * bs, 8, generator=g)
        ys = xs[:, :3].sum(1) + 0.1 * torch.randn(n_per_epoch * bs, generator=g)
        for i in range(start, n_per_epoch):
            yield {"x": xs[i * bs:(i + 1) * bs], "y": ys[i * bs:(i + 1) * bs], "index": torch.arange(bs)}
    return make


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("run")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--per-epoch", type=int, default=6)
    ap.add_argument("--accumulate", type=int, default=1)
    ap.add_argument("--checkpoint-every", type=int, default=2)
    ap.add_argument("--resume", default=None)
    ap.add_argument("--kill-at", type=int, default=None)
    ap.add_argument("--term-at", type=int, default=None)
    ap.add_argument("--int-at", type=int, default=None)
    ap.add_argument("--ints", type=int, default=1)
    ap.add_argument("--nan-at", default="")
    ap.add_argument("--max-nonfinite", type=int, default=3)
    a = ap.parse_args(argv)
    import logging
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from medcl.train import distributed as D
    D.init("cpu")  # joins a gloo group when launched with RANK/WORLD_SIZE (torchrun-style env)
    torch.manual_seed(0)
    method = Toy(a.kill_at, a.term_at, [int(v) for v in a.nan_at.split(",") if v], a.int_at, a.ints)
    cfg = TrainConfig(epochs=a.epochs, lr=1e-2, warmup_epochs=0.5, accumulate=a.accumulate, log_every=1,
                      checkpoint_every=a.checkpoint_every, max_nonfinite=a.max_nonfinite, seed=3)
    trainer = Trainer(method, cfg, a.run, device=torch.device("cpu"), batches=batches(a.per_epoch, 4),
                      micro_batches_per_epoch=a.per_epoch,
                      validate=lambda m, e: {"val_mse": float(m.net[0].weight.abs().mean())})
    try:
        res = trainer.fit(resume=a.resume)
    except Preempted as exc:
        print("PREEMPTED", exc.checkpoint, flush=True)
        return exc.exit_code
    finally:
        D.shutdown()
    print("DONE", res.steps, res.epochs, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
