"""End-to-end fine-tuning for `medcl finetune --mode full`: encoder + linear head, AdamW,
training views augmented from the full-resolution images, the epoch with the best validation
score kept for the test (the last epoch when validation cannot score: ``select=False``)."""
from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from medcl.finetune import _labelled, _selection_score, scores, subsample_people


class _Labelled(torch.utils.data.Dataset):
    """Rows of an ImageDataset with their targets; ``epoch`` picks the training views."""

    def __init__(self, base, rows_pos: np.ndarray, y: np.ndarray):
        self.base, self.rows_pos, self.y, self.epoch = base, rows_pos, y, 0

    def __len__(self):
        return len(self.rows_pos)

    def __getitem__(self, i):
        item = self.base[(self.epoch, int(self.rows_pos[i]))]
        if not isinstance(item, dict):
            return item
        item["target"] = torch.tensor(self.y[i])
        return item


def _predict(model, loader, device, task):
    outs = []
    with torch.no_grad():
        for b in loader:
            if len(b.get("index", [])) == 0:
                continue
            outs.append(model(b["image"].to(device)).float().cpu())
    out = torch.cat(outs)
    if task == "regression":
        return out.squeeze(1).numpy(), None
    proba = out.softmax(1).numpy()
    return proba.argmax(1), proba


def finetune_full(cfg, cohort, y_person, encoder: nn.Module, size: int, frac: float, seed: int,
                  device: torch.device, *, select: bool = True) -> dict:
    from medcl.data import AugmentConfig, ImageDataset, make_loader
    from medcl.data.datasets import collate

    def split_data(split, augment_cfg=None, people=None):
        ds = ImageDataset(cohort, size, split=split, augment=augment_cfg, seed=seed, fit=cfg.fit)  # full-image views
        ok, person, y = _labelled(ds.rows, cohort, y_person)
        if people is not None:
            ok &= np.isin(person, people)
        return _Labelled(ds, np.flatnonzero(ok), y[ok])

    ok_tr, person_tr, _ = _labelled(ImageDataset(cohort, size, split="train", fit=cfg.fit).rows, cohort, y_person)
    train_people = np.unique(person_tr[ok_tr])
    chosen = subsample_people(train_people, y_person[train_people], frac, cfg.task, seed)
    tr = split_data("train", AugmentConfig(), chosen)
    va, te = split_data("val"), split_data("test")
    regression = cfg.task == "regression"
    n_out = 1 if regression else int(np.nanmax(y_person)) + 1
    torch.manual_seed(seed)
    model = nn.Sequential(copy.deepcopy(encoder), nn.Linear(encoder.out_dim, n_out)).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=1e-4)
    loss_fn = nn.MSELoss() if regression else nn.CrossEntropyLoss()
    y_mean, y_std = (float(tr.y.mean()), float(tr.y.std() or 1.0)) if regression else (0.0, 1.0)
    cast = (lambda v: v) if regression else (lambda v: v.astype(np.int64))
    best, best_score = None, -np.inf
    for epoch in range(cfg.epochs):
        tr.epoch = epoch
        model.train()
        for b in make_loader(tr, cfg.batch_size, shuffle=True, seed=seed, epoch=epoch, num_workers=cfg.workers,
                             collate_fn=_collate_with_target(collate)):
            if len(b.get("index", [])) < 2:
                continue
            out = model(b["image"].to(device))
            t = b["target"].to(device)
            loss = loss_fn(out.squeeze(1), (t.float() - y_mean) / y_std) if regression else loss_fn(out, t.long())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        model.eval()
        if not select:
            continue
        pred, proba = _predict(model, make_loader(va, cfg.batch_size, shuffle=False, num_workers=cfg.workers,
                                                  collate_fn=_collate_with_target(collate)), device, cfg.task)
        if regression:
            pred = pred * y_std + y_mean
        s = _selection_score(cfg.task, scores(cfg.task, cast(va.y), pred, proba))
        if best is None or (np.isfinite(s) and s > best_score):
            best, best_score = copy.deepcopy(model.state_dict()), s
    if best is not None:
        model.load_state_dict(best)
    model.eval()
    pred, proba = _predict(model, make_loader(te, cfg.batch_size, shuffle=False, num_workers=cfg.workers,
                                              collate_fn=_collate_with_target(collate)), device, cfg.task)
    if regression:
        pred = pred * y_std + y_mean
    return scores(cfg.task, cast(te.y), pred, proba)


def _collate_with_target(collate):
    def fn(items):
        kept = [it for it in items if isinstance(it, dict)]
        batch = collate(items)
        if kept:
            batch["target"] = torch.stack([it["target"] for it in kept])
        return batch
    return fn
