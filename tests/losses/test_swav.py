"""SwAVLoss against a float64 loop written from the paper, and its parts."""
from __future__ import annotations

import math

import pytest
import torch

from medcl.losses.ntxent import NTXentLoss
from medcl.losses.swav import SwAVLoss
from medcl.losses import ntxent_loss


def _codes_loop(s: torch.Tensor, eps: float, iters: int) -> torch.Tensor:
    """SwAV's exp-domain Sinkhorn-Knopp, one row/column at a time (float64)."""
    Q = torch.exp(s.double() / eps).T.clone()                  # (K, B)
    K, B = Q.shape
    Q /= Q.sum()
    for _ in range(iters):
        for k in range(K):
            Q[k] /= Q[k].sum() * K
        for b in range(B):
            Q[:, b] /= Q[:, b].sum() * B
    return (Q * B).T


def _loss_loop(scores, tau, eps, iters, assign):
    V, total = len(scores), 0.0
    for a in assign:
        q = _codes_loop(scores[a], eps, iters)
        for v in range(V):
            if v == a:
                continue
            B = scores[v].shape[0]
            for i in range(B):
                logp = torch.log_softmax(scores[v][i].double() / tau, dim=0)
                total -= float((q[i] * logp).sum()) / B / (V - 1)
    return total / len(assign)


@pytest.mark.parametrize("V,B,K", [(2, 5, 7), (4, 8, 3), (3, 1, 4)])
def test_matches_the_loop(gen, V, B, K):
    scores = [torch.nn.functional.normalize(torch.randn(B, 6, generator=gen), dim=1)
              @ torch.nn.functional.normalize(torch.randn(K, 6, generator=gen), dim=1).T for _ in range(V)]
    loss = SwAVLoss(temperature=0.1, eps=0.05, sinkhorn_iters=3)
    got = float(loss(scores))
    assert got == pytest.approx(_loss_loop(scores, 0.1, 0.05, 3, (0, 1)), rel=1e-4)


def test_codes_have_uniform_marginals_and_queue_rows_are_dropped(gen):
    loss = SwAVLoss(eps=0.5, sinkhorn_iters=100)
    s = torch.rand(12, 4, generator=gen) * 2 - 1
    q = loss.codes(s)
    torch.testing.assert_close(q.sum(1), torch.ones(12))
    torch.testing.assert_close(q.sum(0), torch.full((4,), 3.0), atol=1e-4, rtol=0)
    queue = torch.rand(20, 4, generator=gen) * 2 - 1
    qq = loss.codes(s, queue)
    assert qq.shape == (12, 4)
    full = loss.codes(torch.cat([queue, s]))
    torch.testing.assert_close(qq, full[-12:])


def test_gradient_reaches_predictions_not_codes(gen):
    s = [torch.randn(6, 5, generator=gen, requires_grad=True) for _ in range(3)]
    SwAVLoss()(s).backward()
    assert all(t.grad is not None and torch.isfinite(t.grad).all() for t in s)
    s0 = torch.randn(6, 5, generator=gen, requires_grad=True)
    s1 = torch.randn(6, 5, generator=gen)
    SwAVLoss()([s0, s1], assign=(1,)).backward()     # s0 only predicts: its gradient is the prediction's
    q = SwAVLoss().codes(s1)
    want = (torch.softmax(s0.detach() / 0.1, 1) - q) / 0.1 / 6
    torch.testing.assert_close(s0.grad, want, rtol=1e-4, atol=1e-6)


def test_bad_arguments():
    with pytest.raises(ValueError):
        SwAVLoss(temperature=0)
    with pytest.raises(ValueError):
        SwAVLoss()([torch.zeros(2, 3)])


def test_ntxent_module_is_the_op(gen):
    z1, z2 = torch.randn(7, 4, generator=gen), torch.randn(7, 4, generator=gen)
    assert float(NTXentLoss(temperature=0.2)(z1, z2)) == pytest.approx(float(ntxent_loss(z1, z2, temperature=0.2)))
    assert math.isfinite(float(NTXentLoss()(z1[:1], z2[:1])))
