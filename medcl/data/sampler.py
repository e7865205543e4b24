"""Reproducible, resumable batch order across ranks, and the DataLoader around it.

The order of an epoch is a permutation drawn from (seed, epoch) alone. Rank r of W takes every
W-th index of it (like DistributedSampler), cut into batches; ``start_batch`` skips the batches
a resumed run already did in the current epoch. Keys handed to the dataset are
``(epoch, index)`` pairs, so per-sample augmentation follows the sampler's epoch even in
persistent DataLoader workers.

    loader = make_loader(ds, 64, shuffle=True, seed=0, epoch=3, start_batch=120, bad_log=log)
    for batch in loader: ...            # the rest of epoch 3
    loader.set_epoch(4)                 # next epoch, from its first batch
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler

from medcl.data.recipes import render_collate
from medcl.data.seeding import mix_seed


class ResumableBatchSampler(Sampler):
    """Batches of dataset indices for one rank, the same for a given (seed, epoch) on every run.

    n: dataset length. drop_last: False pads the permutation by wrapping around so every rank
    gets ceil(n / W) indices (as DistributedSampler; with W = 1 nothing is padded) and keeps a
    short last batch; True gives each rank floor(n / W) indices and drops the short last batch.
    with_epoch: yield ``(epoch, index)`` keys instead of bare indices.
    """

    def __init__(self, n: int, batch_size: int, *, shuffle: bool = True, seed: int = 0, epoch: int = 0,
                 drop_last: bool = False, rank: int = 0, world_size: int = 1, start_batch: int = 0,
                 with_epoch: bool = False):
        if batch_size < 1 or world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"bad batch_size={batch_size}, rank={rank}, world_size={world_size}")
        self.n, self.batch_size, self.shuffle, self.seed = int(n), int(batch_size), bool(shuffle), int(seed)
        self.drop_last, self.rank, self.world_size = bool(drop_last), int(rank), int(world_size)
        self.with_epoch = bool(with_epoch)
        self.epoch, self.start_batch = 0, 0
        self.set_epoch(epoch, start_batch)

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        """Select the epoch; ``start_batch`` batches of it are skipped (resume mid-epoch)."""
        if start_batch < 0 or start_batch > self.batches_per_epoch:
            raise ValueError(f"start_batch={start_batch} outside 0..{self.batches_per_epoch}")
        self.epoch, self.start_batch = int(epoch), int(start_batch)

    @property
    def per_rank(self) -> int:
        """Indices each rank gets per epoch."""
        return self.n // self.world_size if self.drop_last else math.ceil(self.n / self.world_size)

    @property
    def batches_per_epoch(self) -> int:
        k = self.per_rank
        return k // self.batch_size if self.drop_last else math.ceil(k / self.batch_size)

    def order(self) -> np.ndarray:
        """(per_rank,) this rank's indices for the current epoch, in order."""
        if self.shuffle:
            g = torch.Generator().manual_seed(mix_seed(self.seed, self.epoch))
            perm = torch.randperm(self.n, generator=g).numpy()  # (n,)
        else:
            perm = np.arange(self.n)
        total = self.per_rank * self.world_size
        if total > self.n:  # pad by wrapping (repeats only when n is not a multiple of W)
            perm = np.concatenate([perm, np.resize(perm, total - self.n)])
        return perm[:total][self.rank::self.world_size]

    def batches(self) -> list:
        """Every batch of the current epoch (ignoring start_batch), as lists of indices."""
        idx = self.order()
        return [idx[i:i + self.batch_size].tolist() for i in range(0, self.batches_per_epoch * self.batch_size,
                                                                     self.batch_size)]

    def __iter__(self):
        for batch in self.batches()[self.start_batch:]:
            yield [(self.epoch, i) for i in batch] if self.with_epoch else batch

    def __len__(self) -> int:
        return self.batches_per_epoch - self.start_batch

    def state_dict(self, batches_done: int) -> dict:
        """Where to resume after ``batches_done`` batches of the current epoch (counted from 0,
        including those skipped by start_batch)."""
        if batches_done >= self.batches_per_epoch:
            return {"epoch": self.epoch + 1, "start_batch": 0}
        return {"epoch": self.epoch, "start_batch": int(batches_done)}


def _worker_init(_worker_id: int) -> None:
    torch.set_num_threads(1)  # decoding and augmentation are per sample; no oversubscription


class Loader:
    """A DataLoader over a ResumableBatchSampler that logs bad samples in the main process.

    Batches are dicts from the collate (default :func:`medcl.data.recipes.render_collate`);
    samples that could not be read are dropped (a batch may be short, or hold ``n == 0`` items)
    and passed to ``bad_log``.
    The first non-square image gets one log line (on rank 0) saying how it is fitted
    (medcl.data.fit.announce).
    """

    def __init__(self, loader: DataLoader, sampler: ResumableBatchSampler, bad_log=None):
        self.loader, self.sampler, self.bad_log = loader, sampler, bad_log
        self.dataset = loader.dataset

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        self.sampler.set_epoch(epoch, start_batch)
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)

    @property
    def epoch(self) -> int:
        return self.sampler.epoch

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self):
        for batch in self.loader:
            skipped, seen = batch.pop("skipped", []), batch.pop("seen", batch.get("n", 0))
            if self.bad_log is not None:
                self.bad_log.record(skipped, seen)
            for fit, count in batch.pop("nonsquare", {}).items():
                if self.sampler.rank == 0 and int(torch.as_tensor(count).sum()) > 0:
                    from medcl.data.fit import announce
                    announce(fit)
            yield batch


def make_loader(dataset, batch_size: int, *, shuffle: bool = True, seed: int = 0, epoch: int = 0,
                num_workers: int = 0, drop_last: bool = False, rank: int = 0, world_size: int = 1,
                start_batch: int = 0, bad_log=None, pin_memory: bool = False,
                persistent_workers: bool = False, collate_fn=None) -> Loader:
    """A resumable loader for one rank.

    The order depends on (seed, epoch) only; ``start_batch`` skips batches already done in
    ``epoch``. ``bad_log``: a BadSampleLog to record skipped samples in (main process).
    ``collate_fn``: how a list of dataset items becomes a batch (default: the recipes decoded
    and augmented in the workers, :func:`medcl.data.recipes.render_collate`).
    """
    sampler = ResumableBatchSampler(len(dataset), batch_size, shuffle=shuffle, seed=seed, epoch=epoch,
                                    drop_last=drop_last, rank=rank, world_size=world_size,
                                    start_batch=start_batch, with_epoch=hasattr(dataset, "set_epoch"))
    if hasattr(dataset, "set_epoch"):
        dataset.set_epoch(epoch)
    loader = DataLoader(dataset, batch_sampler=sampler, num_workers=num_workers,
                        collate_fn=collate_fn or render_collate, pin_memory=pin_memory,
                        worker_init_fn=_worker_init if num_workers > 0 else None,
                        persistent_workers=persistent_workers and num_workers > 0,
                        generator=torch.Generator().manual_seed(mix_seed(seed, rank)))
    return Loader(loader, sampler, bad_log)
