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
from medcl.train.metrics import MetricsWriter
from medcl.train.optim import build_optimizer, build_scheduler
from medcl.train.signals import Preempted, StopFlag

log = logging.getLogger("medcl")

_RESUME_FIX = ("resume with the settings the run was started with (RUN/config.yaml), or start a new run "
               "from its weights: --init-from RUN/encoder.safetensors --out NEW_RUN")


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


def seed_everything(seed: int) -> None:
    import random

    import numpy as np
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class Trainer:
    def __init__(self, method: nn.Module, cfg: TrainConfig, run_dir: Path, *, device: torch.device,
                 batches: Callable[[int, int], Iterable], micro_batches_per_epoch: int,
                 validate: Callable[[nn.Module, int], dict] | None = None,
                 batch_size: Callable[[object], int] = lambda b: len(b["index"]),
                 extra_state: dict | None = None, min_batch: int = 1, global_batch: int | None = None,
                 title: str = ""):
        self.cfg, self.device = cfg, device
        self.run_dir = Path(run_dir)
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
    def checkpoint_dir(self) -> Path:
        return self.run_dir / "checkpoints"

    # -- state ---------------------------------------------------------------------------------
    def state(self) -> dict:
        return {"step": self.step, "epoch": self.epoch, "position": self.position,
                "nonfinite_streak": self.nonfinite_streak, "world_size": self.info.world_size,
                "model": self.method.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict(),
                "rng": D.all_gather_object(ckpt.rng_state()), "train_config": asdict(self.cfg),
                "history": self.history, "steps_per_epoch": self.steps_per_epoch, "global_batch": self.global_batch,
                "epoch_sums": dict(self.epoch_sums), "epoch_n": self.epoch_n, **self.extra_state}

    def save(self) -> Path:
        state = self.state()  # every rank joins the RNG gather
        if self.info.is_main:
            self.last_checkpoint = ckpt.save_checkpoint(state, self.checkpoint_dir, self.step,
                                                        keep=self.cfg.keep_checkpoints)
        D.barrier()
        return self.checkpoint_dir / f"step-{self.step}.pt"

    def restore(self, resume: str | Path) -> None:
        """Loads the checkpoint ``resume`` ("auto": the newest in RUN/checkpoints) after checking
        that it belongs to this run's model and batches (MedclError otherwise, before anything
        is written). A larger or smaller ``epochs`` (not below the epochs done) is applied: the
        learning-rate schedule is recomputed for the new total from the current step."""
        seed_everything(self.cfg.seed + self.info.rank)  # the states a checkpoint does not replace
        self.resumed = True
        if str(resume) == "auto":
            found = ckpt.load_latest(self.checkpoint_dir)
            if found is None:
                log.info("no checkpoint in %s: starting from scratch", self.checkpoint_dir)
                return
            state, path = found
        else:
            path = Path(resume)
            state = ckpt.load(path)
        self._check_fits(state, path)
        try:
            self.method.load_state_dict(state["model"])
        except RuntimeError as exc:  # another architecture, width or modality set
            first = str(exc).splitlines()[1:2] or [str(exc)[:200]]
            raise MedclError(f"checkpoint does not fit this model ({first[0].strip()})", path=path,
                             fix=_RESUME_FIX) from None
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.step, self.epoch, self.position = state["step"], state["epoch"], state["position"]
        self.nonfinite_streak = state.get("nonfinite_streak", 0)
        self.history = list(state.get("history", []))
        self.epoch_sums, self.epoch_n = dict(state.get("epoch_sums", {})), int(state.get("epoch_n", 0))
        old_lr = self.optimizer.param_groups[0]["lr"]
        # The schedule of this run's epochs at the restored step (the same value when epochs is
        # unchanged; LambdaLR keeps the step, not the function).
        for group, base, factor in zip(self.optimizer.param_groups, self.scheduler.base_lrs,
                                       self.scheduler.lr_lambdas):
            group["lr"] = base * factor(self.scheduler.last_epoch)
        old_epochs = (state.get("train_config") or {}).get("epochs", self.cfg.epochs)
        if old_epochs != self.cfg.epochs and self.info.is_main:
            log.info("epochs %d → %d: the learning-rate schedule now ends at step %d; lr at step %d: %.3g (was %.3g)",
                     old_epochs, self.cfg.epochs, self.total_steps, self.step,
                     self.optimizer.param_groups[0]["lr"], old_lr)
        rngs = state.get("rng") or []
        if len(rngs) == self.info.world_size:
            ckpt.set_rng_state(rngs[self.info.rank])
        else:
            log.warning("checkpoint was written by %d process(es), this run has %d: RNG states re-seeded",
                        len(rngs), self.info.world_size)
        self.last_checkpoint = path
        if self.info.is_main:
            log.info("resumed from %s at step %d (epoch %d, batch %d)", path, self.step, self.epoch + 1, self.position)

    def _check_fits(self, state: dict, path: Path) -> None:
        """MedclError when the checkpoint is of another method, batch or length of epoch."""
        fix = _RESUME_FIX
        method, mine = state.get("method"), self.extra_state.get("method")
        if method and mine and method != mine:
            raise MedclError(f"checkpoint is of a {method} run, not {mine}", path=path, fix=fix)
        batch = state.get("global_batch")
        if batch and self.global_batch and batch != self.global_batch:
            raise MedclError(f"checkpoint was trained with a global batch of {batch} images "
                             f"(--batch-size × processes), this run has {self.global_batch}", path=path, fix=fix)
        steps = state.get("steps_per_epoch")
        if steps and steps != self.steps_per_epoch:
            raise MedclError(f"checkpoint's run had {steps} optimizer steps per epoch, this one has "
                             f"{self.steps_per_epoch} (the training data, --batch-size, --accumulate or the "
                             "number of processes changed)", path=path, fix=fix)
        reached = state["epoch"] + (1 if state["position"] else 0)  # epochs begun
        if reached > self.cfg.epochs:
            raise MedclError(f"checkpoint is in epoch {reached}, beyond epochs={self.cfg.epochs}",
                             path=path, fix=f"use --epochs {reached} or more")

    # -- the loop ------------------------------------------------------------------------------
    def fit(self, resume: str | Path | None = None) -> TrainResult:
        """Trains to ``cfg.epochs``; ``resume`` restores first (unless :meth:`restore` was called)."""
        cfg = self.cfg
        if resume and not self.resumed:
            self.restore(resume)
        elif not self.resumed:
            seed_everything(cfg.seed + self.info.rank)
        metrics = MetricsWriter(self.run_dir, enabled=self.info.is_main,
                                resume_step=self.step if self.resumed else None)
        # Step lines: every log_every steps with -v, otherwise at most one a minute (no bar) —
        # the epoch lines below say how the run goes.
        progress = Progress("train", self.total_steps, every_s=60.0, start=self.step,
                            every_n=cfg.log_every if log.isEnabledFor(logging.DEBUG) else None,
                            bar=None if self.info.is_main else False)
        sums: dict[str, float] = {}
        n_sums, samples, t_window = 0, 0, time.monotonic()
        epoch_samples, t_epoch = 0, time.monotonic()
        stopping: int | None = None
        window_bad = False  # a micro-batch of the current accumulation window was non-finite
        try:
            with StopFlag() as stop:
                while self.epoch < cfg.epochs:
                    self.model.train()
                    for i, batch in enumerate(self.batches(self.epoch, self.position), start=self.position):
                        if i >= self.micro_per_epoch:
                            break
                        sync = (i + 1) % cfg.accumulate == 0
                        # A batch whose samples were unreadable (see bad_samples.csv) down to fewer
                        # than the method needs contributes nothing but keeps its place, so positions
                        # stay those of the sampler.
                        empty = self.batch_size(batch) < self.min_batch
                        out = None if empty else self._forward(batch)
                        finite = empty or bool(torch.isfinite(out["loss"].detach()))
                        bad, asked = D.any_rank(not finite, stop.requested, device=self.device)
                        if asked and stopping is None:
                            stopping = stop.signum or 15
                        if bad:  # every rank agrees: drop this window's gradients, skip its step
                            window_bad = True
                            self.optimizer.zero_grad(set_to_none=True)
                        elif not window_bad and not empty:
                            # Read the loss terms before queueing the backward (the finite check has
                            # already synchronised them): float() after it would wait for the backward.
                            for k, v in out.items():
                                value = float(v.detach())
                                sums[k] = sums.get(k, 0.0) + value
                                self.epoch_sums[k] = self.epoch_sums.get(k, 0.0) + value
                            n_sums += 1
                            self.epoch_n += 1
                            samples += self.batch_size(batch) * self.info.world_size
                            epoch_samples += self.batch_size(batch) * self.info.world_size
                            ctx = self.model.no_sync() if (self.info.distributed and not sync) else contextlib.nullcontext()
                            with ctx:
                                self.scaler.scale(out["loss"] / cfg.accumulate).backward()
                        self.position = i + 1
                        if not sync:
                            continue
                        stepped = False
                        if window_bad:
                            self._skip("non-finite loss")
                        elif self._optimizer_step():
                            self.step += 1
                            self.nonfinite_streak = 0
                            stepped = True
                        window_bad = False
                        if stepped and self.step % cfg.log_every == 0 and n_sums:
                            now = time.monotonic()
                            row = {k: v / n_sums for k, v in sums.items()}
                            row["lr"] = self.optimizer.param_groups[0]["lr"]
                            row["samples_per_s"] = samples / max(now - t_window, 1e-9)
                            metrics.log(self.step, self.epoch + 1, row)
                            progress.update(self.step, postfix=f"epoch {self.epoch + 1}/{cfg.epochs} "
                                                               f"loss {row['loss']:.4g} lr {row['lr']:.2g}")
                            sums, n_sums, samples, t_window = {}, 0, 0, now
                        if stopping is not None:
                            raise Preempted(self.save(), stopping)
                        if stepped and cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0:
                            self.save()
                    self.epoch, self.position = self.epoch + 1, 0
                    rate = epoch_samples / max(time.monotonic() - t_epoch, 1e-9)
                    self._end_epoch(metrics, rate)
                    epoch_samples, t_epoch = 0, time.monotonic()
                    D.barrier()
                    saved = self.save()
                    _, asked = D.any_rank(False, stop.requested, device=self.device)
                    if asked and self.epoch < cfg.epochs:  # the signal came during validation or the save
                        raise Preempted(saved, stop.signum or 15)
        finally:
            progress.close()
            metrics.close()
            self.model = self.method  # drop the DDP wrapper: it must go before the process group (D.shutdown)
        return TrainResult(self.step, self.epoch, self.last_checkpoint, self.history)

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
        if row:
            metrics.log(self.step, self.epoch, row)
        lr = self.optimizer.param_groups[0]["lr"]
        log.info("epoch %d/%d (step %d): %s", self.epoch, self.cfg.epochs, self.step,
                 summary.epoch_line(row, lr=lr, samples_per_s=rate))
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
