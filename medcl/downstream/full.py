"""End-to-end fine-tuning for ``medcl finetune --mode full``: the encoder and a linear head
trained as a supervised method of :class:`medcl.train.Trainer` (AdamW, AMP on GPU, clipping off,
non-finite steps skipped, Ctrl-C/SIGTERM honoured, unreadable images skipped and counted),
on training views augmented from the full-resolution images and decoded in batches through
medcl.data.recipes; the epoch with the best validation headline is kept for the test (the last
epoch when validation cannot score: ``select=False``)."""
from __future__ import annotations

import copy
import logging

import numpy as np
import torch
from torch import nn

from medcl.downstream.labels import labelled, training_people
from medcl.downstream.metrics import scores
from medcl.downstream.tasks import get_task

log = logging.getLogger("medcl")

WEIGHT_DECAY = 1e-4   # AdamW's, on the weights (not on norms and biases)


class LabelledImages(torch.utils.data.Dataset):
    """Rows of an ImageDataset as recipes with their targets; keys (epoch, i) pick the views."""

    def __init__(self, base, rows_pos: np.ndarray, y: np.ndarray):
        self.base, self.rows_pos, self.y, self.epoch = base, rows_pos, y, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self):
        return len(self.rows_pos)

    def __getitem__(self, key):
        epoch, i = key if isinstance(key, (tuple, list)) else (self.epoch, key)
        item = self.base.recipe((int(epoch), int(self.rows_pos[i])))
        if isinstance(item, dict):                          # not a Skipped marker
            item["target"] = torch.tensor(self.y[i])        # stacked with the other plain fields
        return item


class Supervised(nn.Module):
    """Encoder + linear head for one task, a Trainer method: ``forward(batch) → {"loss"}``,
    ``evaluate(batches) → {"val_<metric>": value}``."""

    min_batch = 2        # BatchNorm needs two images

    def __init__(self, encoder: nn.Module, task: str, n_classes: int | None, stats: tuple[float, float]):
        super().__init__()
        self.task, self.n_classes, self.stats = task, n_classes, stats
        self.encoder = encoder
        self.head = nn.Linear(encoder.out_dim, get_task(task).outputs(n_classes))

    def forward(self, batch) -> dict:
        out = self.head(self.encoder(batch["image"]))
        return {"loss": get_task(self.task).loss(out, batch["target"], self.stats)}

    @torch.no_grad()
    def predict(self, batches) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """(targets, pred, proba) over ``batches`` (eval mode is the caller's)."""
        outs, ys = [], []
        for b in batches:
            if not b.get("n", len(b.get("index", []))):
                continue
            outs.append(self.head(self.encoder(b["image"])).float().cpu())
            ys.append(b["target"].cpu())
        t = get_task(self.task)
        return (t.cast(torch.cat(ys).numpy()), *t.predict(torch.cat(outs), self.stats))

    def evaluate(self, batches) -> dict:
        y, pred, proba = self.predict(batches)
        return {f"val_{k}": v for k, v in scores(self.task, y, pred, proba).items()}


class Splits:
    """The labelled images of one fine-tuning: the chosen training people's augmented views,
    validation and test; batches decoded on ``device`` (medcl.data.recipes)."""

    def __init__(self, cfg, cohort, y_person, size: int, frac: float, seed: int, device: torch.device):
        from medcl.data import AugmentConfig, BadSampleLog, ImageDataset
        from medcl.data.recipes import decode_place, loader_collate

        self.cfg, self.device, self.seed = cfg, device, seed
        self.decode = decode_place("auto", device)     # on a GPU: workers read bytes, the GPU decodes
        self.collate = loader_collate(self.decode)
        base = {s: ImageDataset(cohort, size, split=s, fit=cfg.fit) for s in ("train", "val", "test")}
        chosen, keep = training_people(base["train"].rows, cohort, y_person, frac, cfg.task, seed)
        views = ImageDataset(cohort, size, split="train", augment=AugmentConfig(), seed=seed, fit=cfg.fit)
        self.train = self._labelled(views, cohort, y_person, keep)                   # full-image views
        self.val, self.test = (self._labelled(base[s], cohort, y_person) for s in ("val", "test"))
        self.bad_log = BadSampleLog(None, max_bad_fraction=1.0)   # unreadable images: skipped and counted
        self.loader = self.make_loader(self.train, shuffle=True)

    @staticmethod
    def _labelled(ds, cohort, y_person, keep=None) -> LabelledImages:
        ok, _, y = labelled(ds.rows, cohort, y_person)
        keep = ok if keep is None else keep
        return LabelledImages(ds, np.flatnonzero(keep), y[keep])

    def make_loader(self, ds, shuffle: bool):
        from medcl.data import make_loader

        return make_loader(ds, self.cfg.batch_size, shuffle=shuffle, seed=self.seed, num_workers=self.cfg.workers,
                           bad_log=self.bad_log if shuffle else None, pin_memory=self.device.type == "cuda",
                           collate_fn=self.collate)

    def batches(self, epoch: int, start: int):
        from medcl.data.recipes import DeviceBatches

        self.loader.set_epoch(epoch, start)
        return DeviceBatches(self.loader, self.device, self.decode, bad_log=self.bad_log)

    def eval_batches(self, ds):
        from medcl.data.recipes import DeviceBatches

        return DeviceBatches(self.make_loader(ds, shuffle=False), self.device, self.decode)


def finetune_full(cfg, cohort, y_person, encoder: nn.Module, size: int, frac: float, seed: int,
                  device: torch.device, *, select: bool = True, n_classes: int | None = None) -> dict:
    """Test scores of ``encoder`` fine-tuned with a head on a seeded ``frac`` of the labelled
    training people (the epoch chosen on validation unless ``select`` is False)."""
    from medcl.train import TrainConfig, Trainer

    task = get_task(cfg.task)
    data = Splits(cfg, cohort, y_person, size, frac, seed, device)
    torch.manual_seed(seed)                                  # the head's initial weights
    method = Supervised(copy.deepcopy(encoder), cfg.task, n_classes, task.target_stats(data.train.y))
    train = TrainConfig(epochs=cfg.epochs, lr=cfg.lr, weight_decay=WEIGHT_DECAY, warmup_epochs=0.0,
                        min_lr_ratio=1.0, clip_grad=0.0, seed=seed, log_every=max(len(data.loader), 1))
    trainer = Trainer(method, train, None, device=device, batches=data.batches,
                      micro_batches_per_epoch=len(data.loader),
                      validate=(lambda m, epoch: m.evaluate(data.eval_batches(data.val))) if select else None,
                      batch_size=lambda b: int(b.get("n", len(b.get("index", [])))), min_batch=Supervised.min_batch,
                      keep_best=f"val_{task.headline}" if select else None, log_epochs=False,
                      title=f"fine-tuning {frac:g} seed {seed}")
    result = trainer.fit()
    log.debug("fine-tuning %g seed %d: epoch %s kept", frac, seed, result.best_epoch or result.epochs)
    method.eval()
    y, pred, proba = method.predict(data.eval_batches(data.test))
    return scores(cfg.task, y, pred, proba)
