"""Trainer options of fine-tuning: no run folder (nothing written), the best validated epoch's
weights kept (medcl.train.best), and a stop signal without a checkpoint."""
from __future__ import annotations

import importlib.util
import math
import signal
from pathlib import Path

import pytest
import torch

from medcl.train import Preempted, TrainConfig, Trainer
from medcl.train.best import BestState


def _toy():
    spec = importlib.util.spec_from_file_location("toy_train", Path(__file__).with_name("toy_train.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _trainer(toy, method, validate, **kw):
    cfg = TrainConfig(epochs=3, lr=1e-2, warmup_epochs=0.0, log_every=1, seed=3)
    return Trainer(method, cfg, None, device=torch.device("cpu"), batches=toy.batches(4, 4),
                   micro_batches_per_epoch=4, validate=validate, **kw)


def test_without_a_run_folder_nothing_is_written_and_the_best_epoch_is_kept(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    toy = _toy()
    torch.manual_seed(0)
    method = toy.Toy()
    seen = {}

    def validate(m, epoch):
        seen[epoch] = {k: v.clone() for k, v in m.state_dict().items()}
        return {"val_score": {1: 0.2, 2: 0.9, 3: 0.5}[epoch]}

    result = _trainer(toy, method, validate, keep_best="val_score", log_epochs=False).fit()
    assert result.epochs == 3 and result.best_epoch == 2 and result.checkpoint is None
    assert [h["val_score"] for h in result.history] == [0.2, 0.9, 0.5]
    assert all(torch.equal(method.state_dict()[k], v) for k, v in seen[2].items())      # epoch 2's weights
    assert not all(torch.equal(seen[3][k], v) for k, v in seen[2].items())
    assert list(tmp_path.iterdir()) == []                                                  # no file anywhere


def test_without_keep_best_the_last_epoch_stays():
    toy = _toy()
    torch.manual_seed(0)
    method = toy.Toy()
    last = {}

    def validate(m, epoch):
        last.update({k: v.clone() for k, v in m.state_dict().items()})
        return {"val_score": 1.0 / epoch}

    assert _trainer(toy, method, validate).fit().best_epoch is None
    assert all(torch.equal(method.state_dict()[k], v) for k, v in last.items())


def test_best_state_ignores_undefined_values():
    net = torch.nn.Linear(2, 1)
    best = BestState("val_auc")
    assert best.offer(1, {"val_auc": math.nan}, net)            # the first epoch is always kept
    with torch.no_grad():
        net.weight.fill_(3.0)
    assert best.offer(2, {"val_auc": 0.6}, net) and not best.offer(3, {"val_auc": math.nan}, net)
    assert not best.offer(4, {"val_auc": 0.5}, net) and best.epoch == 2
    with torch.no_grad():
        net.weight.fill_(-1.0)
    best.load_into(net)
    assert torch.equal(net.weight, torch.full((1, 2), 3.0))
    restored = BestState("val_auc")
    restored.load_state_dict(best.state_dict())
    assert (restored.epoch, restored.score) == (2, 0.6)


def test_a_stop_signal_without_a_run_folder_saves_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    toy = _toy()
    method = toy.Toy(term_at=3)
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(Preempted) as err:
        _trainer(toy, method, None).fit()
    assert err.value.checkpoint is None and err.value.exit_code == 143
    assert "nothing was saved" in str(err.value) and "--resume" not in str(err.value)
    assert list(tmp_path.iterdir()) == [] and signal.getsignal(signal.SIGTERM) == before    # handler put back
