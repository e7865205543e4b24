"""SimCLR and SwAV methods: forward terms, gradients, prototype freezing, the queue, evaluation."""
from __future__ import annotations

import pytest
import torch

from medcl.losses.swav import SwAVLoss
from medcl.methods.simclr import SimCLRConfig, SimCLRMethod
from medcl.methods.swav import SwAVConfig, SwAVMethod
from medcl.models import ImageEncoderConfig
from medcl.losses import ntxent_loss

SMALL = ImageEncoderConfig(arch="resnet18", width=0.125)


def _batch(B, gen, small=0):
    b = {"views": torch.rand(B, 2, 1, 32, 32, generator=gen), "index": torch.arange(B),
         "person": torch.arange(B), "n": B}
    if small:
        b["small"] = torch.rand(B, small, 1, 16, 16, generator=gen)
    return b


def test_simclr_forward_is_ntxent_of_the_projections(gen):
    torch.manual_seed(0)
    m = SimCLRMethod(SimCLRConfig(image=SMALL, head_hidden=32, proj_dim=16, temperature=0.2)).eval()
    b = _batch(5, gen)
    with torch.no_grad():
        out = m(b)
        z = m.head(m.image_encoder(b["views"].flatten(0, 1))).view(5, 2, -1)
        want = ntxent_loss(z[:, 0], z[:, 1], temperature=0.2)
    assert float(out["loss"]) == pytest.approx(float(want), rel=1e-5)
    m.train()
    m(b)["loss"].backward()
    assert all(p.grad is not None for p in m.parameters())


def test_simclr_evaluate_reports_loss_and_view_retrieval(gen):
    m = SimCLRMethod(SimCLRConfig(image=SMALL, head_hidden=32, proj_dim=16)).eval()
    b = _batch(6, gen)
    b["views"][:, 1] = b["views"][:, 0]                    # identical views: each finds its own
    res = m.evaluate([b])
    assert res["val_view_top1"] == 1.0 and res["val_view_chance_top1"] == pytest.approx(1 / 6)
    assert res["val_loss"] > 0
    assert m.evaluate([]) == {}


def _swav(**kw):
    torch.manual_seed(0)
    cfg = SwAVConfig(image=SMALL, head_hidden=32, proj_dim=16, prototypes=10, **kw)
    return SwAVMethod(cfg)


def test_swav_forward_is_the_swapped_prediction(gen):
    m = _swav(freeze_prototypes_iters=0).eval()
    b = _batch(4, gen, small=3)
    with torch.no_grad():
        out = m(b)
        z = torch.nn.functional.normalize(m.head(m.image_encoder(b["views"].flatten(0, 1))).view(4, 2, -1), dim=-1)
        zs = torch.nn.functional.normalize(m.head(m.image_encoder(b["small"].flatten(0, 1))).view(4, 3, -1), dim=-1)
        c = torch.nn.functional.normalize(m.prototypes.weight, dim=1)
        crops = [z[:, 0], z[:, 1]] + [zs[:, k] for k in range(3)]
        want = SwAVLoss()([x @ c.T for x in crops])
    assert float(out["loss"]) == pytest.approx(float(want), rel=1e-5)


def test_swav_prototypes_frozen_for_the_first_forwards(gen):
    m = _swav(freeze_prototypes_iters=2).train()
    for k in range(3):
        m.zero_grad()
        m(_batch(4, gen, small=2))["loss"].backward()
        g = m.prototypes.weight.grad
        assert g is not None
        assert (float(g.abs().sum()) == 0.0) == (k < 2)
        assert float(next(m.image_encoder.parameters()).grad.abs().sum()) > 0
    assert int(m.forwards) == 3


def test_swav_queue_fills_then_joins_the_codes(gen, monkeypatch):
    m = _swav(queue_length=6, freeze_prototypes_iters=0).train()
    seen = []
    real = m.loss.forward

    def spy(scores, *, assign=(0, 1), queues=None, distributed=False):
        seen.append(None if queues is None else tuple(q.shape for q in queues))
        return real(scores, assign=assign, queues=queues, distributed=distributed)
    monkeypatch.setattr(m.loss, "forward", spy)
    b1, b2 = _batch(4, gen), _batch(4, gen)
    m(b1)
    assert int(m.queued) == 4 and seen[-1] is None              # not full yet: no queue
    m(b2)
    assert int(m.queued) == 6 and seen[-1] is None
    m(_batch(4, gen))
    assert seen[-1] == ((6, 10), (6, 10))                        # full: 6 queued rows per large crop
    assert "queue" in m.state_dict() and "queued" in m.state_dict()   # checkpointed: exact resume


def test_swav_evaluate(gen):
    m = _swav().eval()
    res = m.evaluate([_batch(5, gen, small=2), _batch(3, gen, small=2)])
    assert set(res) >= {"val_loss", "val_view_top1", "val_view_top5"} and res["val_loss"] > 0


def test_config_round_trip():
    cfg = SwAVConfig(image=SMALL, prototypes=7, queue_length=3)
    assert SwAVConfig.from_dict(cfg.to_dict()) == cfg
    c2 = SimCLRConfig(image=SMALL, temperature=0.3)
    assert SimCLRConfig.from_dict(c2.to_dict()) == c2
