"""Restoring a Trainer from a checkpoint (RUN/checkpoints): the checks that it belongs to this
run, the states it holds, and the learning-rate schedule of a changed ``epochs``."""
from __future__ import annotations

import logging
from pathlib import Path

import torch

from medcl.errors import MedclError
from medcl.train import checkpoint as ckpt

log = logging.getLogger("medcl")

_RESUME_FIX = ("resume with the settings the run was started with (RUN/config.yaml), or start a new run "
               "from its weights: --init-from RUN/encoder.safetensors --out NEW_RUN")


def seed_everything(seed: int) -> None:
    import random

    import numpy as np
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class Resumable:
    """The resume half of :class:`medcl.train.engine.Trainer` (its attributes: cfg, info, method,
    optimizer, scheduler, scaler, best, extra_state, global_batch, steps_per_epoch, checkpoint_dir)."""

    def restore(self, resume: str | Path) -> None:
        """Loads the checkpoint ``resume`` ("auto": the newest in RUN/checkpoints) after checking
        that it belongs to this run's model and batches (MedclError otherwise, before anything
        is written). A larger or smaller ``epochs`` (not below the epochs done) is applied: the
        learning-rate schedule is recomputed for the new total from the current step."""
        seed_everything(self.cfg.seed + self.info.rank)  # the states a checkpoint does not replace
        self.resumed = True
        found = self._find_checkpoint(resume)
        if found is None:
            return
        state, path = found
        self._check_fits(state, path)
        self._load_states(state, path)
        self._reschedule(state)
        rngs = state.get("rng") or []
        if len(rngs) == self.info.world_size:
            ckpt.set_rng_state(rngs[self.info.rank])
        else:
            log.warning("checkpoint was written by %d process(es), this run has %d: RNG states re-seeded",
                        len(rngs), self.info.world_size)
        self.last_checkpoint = path
        if self.info.is_main:
            log.info("resumed from %s at step %d (epoch %d, batch %d)", path, self.step, self.epoch + 1, self.position)

    def _find_checkpoint(self, resume: str | Path) -> tuple[dict, Path] | None:
        """(state, path) of ``resume``, or of the newest checkpoint for "auto" (None: there is none)."""
        if str(resume) != "auto":
            return ckpt.load(Path(resume)), Path(resume)
        found = None if self.checkpoint_dir is None else ckpt.load_latest(self.checkpoint_dir)
        if found is None:
            log.info("no checkpoint in %s: starting from scratch", self.checkpoint_dir)
        return found

    def _load_states(self, state: dict, path: Path) -> None:
        """The model, optimizer, schedule, scaler, position and tallies of a checkpoint."""
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
        if self.best is not None and state.get("best"):
            self.best.load_state_dict(state["best"])

    def _reschedule(self, state: dict) -> None:
        """The schedule of this run's epochs at the restored step (the same value when epochs is
        unchanged; LambdaLR keeps the step, not the function)."""
        old_lr = self.optimizer.param_groups[0]["lr"]
        for group, base, factor in zip(self.optimizer.param_groups, self.scheduler.base_lrs,
                                       self.scheduler.lr_lambdas):
            group["lr"] = base * factor(self.scheduler.last_epoch)
        old_epochs = (state.get("train_config") or {}).get("epochs", self.cfg.epochs)
        if old_epochs != self.cfg.epochs and self.info.is_main:
            log.info("epochs %d → %d: the learning-rate schedule now ends at step %d; lr at step %d: %.3g (was %.3g)",
                     old_epochs, self.cfg.epochs, self.total_steps, self.step,
                     self.optimizer.param_groups[0]["lr"], old_lr)

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
