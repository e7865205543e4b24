"""The training loop shared by every method: AdamW + warmup-cosine, gradient accumulation,
bf16 autocast on GPU, clipping, DDP, non-finite-step skipping, preemption (SIGTERM, SIGUSR1,
Ctrl-C), exact resume.

What a run shows: metrics.csv rows every ``log_every`` steps and one row per epoch (``train_*``
means over the epoch and the validation metrics), all with the same 1-based epoch number; one
log line per epoch (medcl.train.summary), step lines only with -v (or once a minute); and
RUN/curves.png redrawn at each epoch's end (medcl.train.curves).

A *method* is an ``nn.Module`` whose ``forward(batch)`` returns a dict of scalar losses with
the total under ``"loss"`` (other entries are logged). The data come from
``batches(epoch, start)``, which must yield the same micro-batches for the same (epoch, start)
on every call (a seeded, resumable sampler), so a resumed run sees exactly the data the
uninterrupted run would have.
"""
from __future__ import annotations

import contextlib
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import torch
from torch import nn

from medcl.config import option
from medcl.errors import MedclError
from medcl.progress import Progress
from medcl.train import checkpoint as ckpt
from medcl.train import curves, summary
from medcl.train import distributed as D
from medcl.train.best import BestState
from medcl.train.metrics import MetricsWriter
from medcl.train.optim import build_optimizer, build_scheduler
from medcl.train.resume import Resumable, seed_everything
from medcl.train.signals import Preempted, StopFlag

log = logging.getLogger("medcl")

@dataclass
class TrainConfig:
    epochs: int = option(10, "Passes over the training split (1 or more).")
    lr: float = option(1e-3, "Peak learning rate, reached after warmup.")
    weight_decay: float = option(1e-4, "AdamW decoupled weight decay (none on norms and biases).")
    warmup_epochs: float = option(1.0, "Linear warmup length, in epochs.")
    min_lr_ratio: float = 0.0     # final lr as a fraction of the peak (cosine decay)
    accumulate: int = option(1, "Micro-batches per optimizer step.")
    clip_grad: float = option(1.0, "Max global gradient L2 norm (0: off).")
    precision: str = option("auto", "auto: bf16 autocast on GPU, fp32 on CPU.", choices=("auto", "bf16", "fp16", "fp32"))
    seed: int = option(0, "Base seed (rank r seeds with seed + r); also draws the splits.")
    log_every: int = option(10, "Steps between metrics.csv rows (and step log lines with -v; else one line per epoch).")
    checkpoint_every: int = option(0, "Steps between checkpoints (0: end of each epoch).")
    keep_checkpoints: int = 2     # step-N.pt files kept (last.pt besides)
    max_nonfinite: int = 5        # consecutive skipped (non-finite) steps before aborting


@dataclass
class TrainResult:
    steps: int                                    # optimizer steps done in total
    epochs: int                                   # epochs completed
    checkpoint: Path | None                       # the last checkpoint written
    history: list[dict] = field(default_factory=list)  # per epoch: train_loss… and validation metrics
    best_epoch: int | None = None                 # with keep_best: the epoch whose weights the method ends with


@dataclass
class _Loop:
    """What one call of Trainer.fit tracks besides the Trainer's state: its writers, the loss
    sums since the last metrics.csv row, sample counts for the rates, a stop asked for, and
    whether the current accumulation window saw a non-finite loss."""
    metrics: MetricsWriter
    progress: Progress
    sums: dict = field(default_factory=dict)
    n_sums: int = 0
    samples: int = 0
    t_window: float = field(default_factory=time.monotonic)
    epoch_samples: int = 0
    t_epoch: float = field(default_factory=time.monotonic)
    stopping: int | None = None
    window_bad: bool = False


class Trainer(Resumable):
    """Trains ``method`` on ``batches`` (see the module docstring).

    run_dir: RUN/ for metrics.csv, curves.png and checkpoints/; None writes no file (a short
        training inside another command: fine-tuning), and a stop signal then saves nothing.
    validate: ``validate(method, epoch) → {name: value}`` after each epoch (rank 0, eval mode,
        no gradients); its values join the epoch's row and history.
    keep_best: a key of the validation row to maximise: the method ends with the weights of the
        epoch where it was highest (medcl.train.best), kept in checkpoints too.
    log_epochs: False logs the epoch lines at debug level only (-v).
    """

    def __init__(self, method: nn.Module, cfg: TrainConfig, run_dir: Path | None, *, device: torch.device,
                 batches: Callable[[int, int], Iterable], micro_batches_per_epoch: int,
                 validate: Callable[[nn.Module, int], dict] | None = None,
                 batch_size: Callable[[object], int] = lambda b: len(b["index"]),
                 extra_state: dict | None = None, min_batch: int = 1, global_batch: int | None = None,
                 title: str = "", keep_best: str | None = None, log_epochs: bool = True):
        self.cfg, self.device = cfg, device
        self.run_dir = None if run_dir is None else Path(run_dir)
        self.best = None if keep_best is None else BestState(keep_best)
        self.log_epochs = log_epochs
        self.info = D.detect() if D.world_size() > 1 else D.DistInfo()
        self.batches, self.validate, self.batch_size = batches, validate, batch_size
        self.extra_state = extra_state or {}
        self.min_batch = max(int(min_batch), 1)  # smaller batches (unreadable samples) are skipped
        self.global_batch, self.title = global_batch, title
        if micro_batches_per_epoch < cfg.accumulate:
            raise MedclError(f"only {micro_batches_per_epoch} batch(es) per epoch for accumulate={cfg.accumulate}",
                             fix="use a smaller --batch-size or --accumulate, or more data")
        self.steps_per_epoch = micro_batches_per_epoch // cfg.accumulate
        self.micro_per_epoch = self.steps_per_epoch * cfg.accumulate  # a trailing partial window is dropped
        self.total_steps = cfg.epochs * self.steps_per_epoch
        self.method = method.to(device)
        self.model = method
        if self.info.distributed:
            if device.type == "cuda":  # batch statistics over the global batch, as one process would
                method = self.method = nn.SyncBatchNorm.convert_sync_batchnorm(method)
            ids = [device.index or 0] if device.type == "cuda" else None
            self.model = nn.parallel.DistributedDataParallel(method, device_ids=ids)
        self.optimizer = build_optimizer(method, lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.scheduler = build_scheduler(self.optimizer, total_steps=self.total_steps,
                                         warmup_steps=round(cfg.warmup_epochs * self.steps_per_epoch),
                                         min_ratio=cfg.min_lr_ratio)
        self.amp_dtype = self._amp_dtype()
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.amp_dtype == torch.float16)
        self.step = self.epoch = self.position = self.nonfinite_streak = 0
        self.last_checkpoint: Path | None = None
        self.history: list[dict] = []
        self.epoch_sums: dict[str, float] = {}  # loss terms summed over this epoch's micro-batches
        self.epoch_n = 0
        self.resumed = False

    # -- set-up --------------------------------------------------------------------------------
    def _amp_dtype(self):
        p = self.cfg.precision
        if p == "auto":
            p = "bf16" if self.device.type == "cuda" else "fp32"
        if p not in ("bf16", "fp16", "fp32"):
            raise MedclError(f"precision must be auto, bf16, fp16 or fp32, not {p!r}")
        if p != "fp32" and self.device.type != "cuda":
            raise MedclError(f"precision {p} needs a CUDA device", fix="use --precision fp32 on CPU")
        return {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": None}[p]

    def _autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    @property
    def checkpoint_dir(self) -> Path | None:
        return None if self.run_dir is None else self.run_dir / "checkpoints"

    # -- state ---------------------------------------------------------------------------------
    def state(self) -> dict:
        return {"step": self.step, "epoch": self.epoch, "position": self.position,
                "nonfinite_streak": self.nonfinite_streak, "world_size": self.info.world_size,
                "model": self.method.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict(),
                "rng": D.all_gather_object(ckpt.rng_state()), "train_config": asdict(self.cfg),
                "history": self.history, "steps_per_epoch": self.steps_per_epoch, "global_batch": self.global_batch,
                "epoch_sums": dict(self.epoch_sums), "epoch_n": self.epoch_n,
                **({} if self.best is None else {"best": self.best.state_dict()}), **self.extra_state}

    def save(self) -> Path | None:
        """Writes RUN/checkpoints/step-N.pt (every rank takes part); None without a run folder."""
        if self.run_dir is None:
            return None
        state = self.state()  # every rank joins the RNG gather
        if self.info.is_main:
            self.last_checkpoint = ckpt.save_checkpoint(state, self.checkpoint_dir, self.step,
                                                        keep=self.cfg.keep_checkpoints)
        D.barrier()
        return self.checkpoint_dir / f"step-{self.step}.pt"

    # -- the loop ------------------------------------------------------------------------------
    def fit(self, resume: str | Path | None = None) -> TrainResult:
        """Trains to ``cfg.epochs``; ``resume`` restores first (unless :meth:`restore` was called).
        With ``keep_best``, the method ends with the weights of the best validated epoch."""
        if resume and not self.resumed:
            self.restore(resume)
        elif not self.resumed:
            seed_everything(self.cfg.seed + self.info.rank)
        loop = self._open_loop()
        try:
            with StopFlag() as stop:
                while self.epoch < self.cfg.epochs:
                    self._train_epoch(loop, stop)
                    self._close_epoch(loop, stop)
        finally:
            loop.progress.close()
            loop.metrics.close()
            self.model = self.method  # drop the DDP wrapper: it must go before the process group (D.shutdown)
        if self.best is not None:
            self.best.load_into(self.method)
        return TrainResult(self.step, self.epoch, self.last_checkpoint, self.history,
                           None if self.best is None else self.best.epoch)

    def _open_loop(self) -> _Loop:
        metrics = MetricsWriter(self.run_dir, enabled=self.info.is_main and self.run_dir is not None,
                                resume_step=self.step if self.resumed else None)
        # Step lines: every log_every steps with -v, otherwise at most one a minute (no bar) —
        # the epoch lines say how the run goes.
        progress = Progress("train", self.total_steps, every_s=60.0, start=self.step,
                            every_n=self.cfg.log_every if log.isEnabledFor(logging.DEBUG) else None,
                            bar=None if self.info.is_main else False)
        return _Loop(metrics, progress)

    def _train_epoch(self, loop: _Loop, stop: StopFlag) -> None:
        self.model.train()
        for i, batch in enumerate(self.batches(self.epoch, self.position), start=self.position):
            if i >= self.micro_per_epoch:
                break
            self._micro_batch(loop, stop, i, batch)

    def _micro_batch(self, loop: _Loop, stop: StopFlag, i: int, batch) -> None:
        """Forward, the agreement of every rank on a non-finite loss or a stop signal, backward;
        the optimizer step at the end of an accumulation window."""
        sync = (i + 1) % self.cfg.accumulate == 0
        # A batch whose samples were unreadable (see bad_samples.csv) down to fewer than the method
        # needs contributes nothing but keeps its place, so positions stay those of the sampler.
        empty = self.batch_size(batch) < self.min_batch
        out = None if empty else self._forward(batch)
        finite = empty or bool(torch.isfinite(out["loss"].detach()))
        bad, asked = D.any_rank(not finite, stop.requested, device=self.device)
        if asked and loop.stopping is None:
            loop.stopping = stop.signum or 15
        if bad:  # every rank agrees: drop this window's gradients, skip its step
            loop.window_bad = True
            self.optimizer.zero_grad(set_to_none=True)
        elif not loop.window_bad and not empty:
            self._backward(loop, out, self.batch_size(batch) * self.info.world_size, sync)
        self.position = i + 1
        if sync:
            self._end_window(loop)

    def _backward(self, loop: _Loop, out: dict, samples: int, sync: bool) -> None:
        # Read the loss terms before queueing the backward (the finite check has already
        # synchronised them): float() after it would wait for the backward.
        for k, v in out.items():
            value = float(v.detach())
            loop.sums[k] = loop.sums.get(k, 0.0) + value
            self.epoch_sums[k] = self.epoch_sums.get(k, 0.0) + value
        loop.n_sums += 1
        self.epoch_n += 1
        loop.samples += samples
        loop.epoch_samples += samples
        ctx = self.model.no_sync() if (self.info.distributed and not sync) else contextlib.nullcontext()
        with ctx:
            self.scaler.scale(out["loss"] / self.cfg.accumulate).backward()

    def _end_window(self, loop: _Loop) -> None:
        """The optimizer step (or its skip), the metrics row, a stop or a checkpoint."""
        stepped = False
        if loop.window_bad:
            self._skip("non-finite loss")
        elif self._optimizer_step():
            self.step += 1
            self.nonfinite_streak = 0
            stepped = True
        loop.window_bad = False
        if stepped and self.step % self.cfg.log_every == 0 and loop.n_sums:
            self._log_window(loop)
        if loop.stopping is not None:
            raise Preempted(self.save(), loop.stopping)
        if stepped and self.cfg.checkpoint_every and self.step % self.cfg.checkpoint_every == 0:
            self.save()

    def _log_window(self, loop: _Loop) -> None:
        now = time.monotonic()
        row = {k: v / loop.n_sums for k, v in loop.sums.items()}
        row["lr"] = self.optimizer.param_groups[0]["lr"]
        row["samples_per_s"] = loop.samples / max(now - loop.t_window, 1e-9)
        loop.metrics.log(self.step, self.epoch + 1, row)
        loop.progress.update(self.step, postfix=f"epoch {self.epoch + 1}/{self.cfg.epochs} "
                                                f"loss {row['loss']:.4g} lr {row['lr']:.2g}")
        loop.sums, loop.n_sums, loop.samples, loop.t_window = {}, 0, 0, now

    def _close_epoch(self, loop: _Loop, stop: StopFlag) -> None:
        """Validation and the epoch's row, then a checkpoint; a stop asked meanwhile ends here."""
        self.epoch, self.position = self.epoch + 1, 0
        rate = loop.epoch_samples / max(time.monotonic() - loop.t_epoch, 1e-9)
        self._end_epoch(loop.metrics, rate)
        loop.epoch_samples, loop.t_epoch = 0, time.monotonic()
        D.barrier()
        saved = self.save()
        _, asked = D.any_rank(False, stop.requested, device=self.device)
        if asked and self.epoch < self.cfg.epochs:  # the signal came during validation or the save
            raise Preempted(saved, stop.signum or 15)

    def _end_epoch(self, metrics: MetricsWriter, rate: float) -> None:
        """Validation (rank 0), the epoch's row in metrics.csv and history, one log line, curves.png."""
        row = {f"train_{k}": v / self.epoch_n for k, v in self.epoch_sums.items()} if self.epoch_n else {}
        self.epoch_sums, self.epoch_n = {}, 0
        if not self.info.is_main:
            return
        val = {}
        if self.validate is not None:
            self.model.eval()
            with torch.no_grad():
                val = self.validate(self.method, self.epoch)
        row.update(val)
        self.history.append({"epoch": self.epoch, "step": self.step, **row})
        if self.best is not None:
            self.best.offer(self.epoch, val, self.method)
        if row:
            metrics.log(self.step, self.epoch, row)
        lr = self.optimizer.param_groups[0]["lr"]
        log.log(logging.INFO if self.log_epochs else logging.DEBUG, "%sepoch %d/%d (step %d): %s",
                f"{self.title}: " if not self.log_epochs and self.title else "", self.epoch, self.cfg.epochs,
                self.step, summary.epoch_line(row, lr=lr, samples_per_s=rate))
        if self.run_dir is not None:
            curves.write_curves(self.run_dir / "curves.png", metrics.rows, title=self.title)

    def _forward(self, batch) -> dict:
        with self._autocast():
            out = self.model(batch)
        if not isinstance(out, dict) or "loss" not in out:
            raise TypeError("a method's forward must return a dict with the total under 'loss'")
        return out

    def _skip(self, why: str) -> None:
        """Skips this optimizer step on every rank (they all agreed it is bad)."""
        self.optimizer.zero_grad(set_to_none=True)
        self.nonfinite_streak += 1
        if self.info.is_main:
            log.warning("step %d skipped: %s (%d in a row)", self.step + 1, why, self.nonfinite_streak)
        if self.nonfinite_streak >= self.cfg.max_nonfinite:
            raise MedclError(
                f"training diverged: {self.nonfinite_streak} steps in a row had a {why}",
                fix="lower --lr, raise --warmup-epochs, check the inputs (bad_samples.csv), "
                    "or use --precision fp32")

    def _optimizer_step(self) -> bool:
        """Unscale, clip, step; returns False (and skips) when the gradient is not finite."""
        self.scaler.unscale_(self.optimizer)
        params = [p for g in self.optimizer.param_groups for p in g["params"]]
        max_norm = self.cfg.clip_grad if self.cfg.clip_grad > 0 else math.inf
        norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
        if not torch.isfinite(norm):  # identical on every rank: DDP has averaged the gradients
            self.scaler.update()
            self._skip("non-finite gradient")
            return False
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return True
