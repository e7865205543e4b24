"""medcl.losses.PuzzleLoss: MSE and cross-entropy against hand computations, gradients, checks."""
from __future__ import annotations

import math

import pytest
import torch

from medcl.losses import PuzzleLoss
from medcl.ops import sinkhorn


def _random_case(gen, B=4, N=5):
    log_p = sinkhorn(torch.randn(B, N, N, generator=gen, dtype=torch.float64), n_iters=30)
    perm = torch.stack([torch.randperm(N, generator=gen) for _ in range(B)])
    return log_p, perm


def test_mse_by_hand():
    # One 2×2 puzzle: P = [[.7, .3], [.3, .7]], tile 0 belongs in cell 1, tile 1 in cell 0.
    log_p = torch.tensor([[[0.7, 0.3], [0.3, 0.7]]], dtype=torch.float64).log()
    perm = torch.tensor([[1, 0]])
    want = ((0.7 - 0) ** 2 + (0.3 - 1) ** 2 + (0.3 - 1) ** 2 + (0.7 - 0) ** 2) / 4
    assert float(PuzzleLoss("mse")(log_p, perm)) == pytest.approx(want, rel=1e-12)
    assert float(PuzzleLoss("mse")(log_p, perm.flip(1))) == pytest.approx(4 * 0.3 ** 2 / 4, rel=1e-12)


def test_ce_by_hand():
    log_p = torch.tensor([[[0.7, 0.3], [0.3, 0.7]]], dtype=torch.float64).log()
    want = -(math.log(0.3) + math.log(0.3)) / 2
    assert float(PuzzleLoss("ce")(log_p, torch.tensor([[1, 0]]))) == pytest.approx(want, rel=1e-12)


def test_random_batches_against_loops(gen):
    log_p, perm = _random_case(gen)
    B, N = perm.shape
    mse = sum((math.exp(log_p[b, i, j]) - float(perm[b, i] == j)) ** 2
              for b in range(B) for i in range(N) for j in range(N)) / (B * N * N)
    ce = -sum(float(log_p[b, i, perm[b, i]]) for b in range(B) for i in range(N)) / (B * N)
    assert float(PuzzleLoss("mse")(log_p, perm)) == pytest.approx(mse, rel=1e-10)
    assert float(PuzzleLoss("ce")(log_p, perm)) == pytest.approx(ce, rel=1e-10)
    assert PuzzleLoss().kind == "mse"


@pytest.mark.parametrize("kind", ["mse", "ce"])
def test_exact_answer_is_the_minimum_and_gradients_flow(gen, kind):
    B, N = 3, 4
    perm = torch.stack([torch.randperm(N, generator=gen) for _ in range(B)])
    exact = torch.full((B, N, N), -1e4, dtype=torch.float64).scatter(2, perm[..., None], 0.0)
    assert float(PuzzleLoss(kind)(exact, perm)) == pytest.approx(0.0, abs=1e-12)
    scores = torch.randn(B, N, N, generator=gen, dtype=torch.float64, requires_grad=True)
    loss = PuzzleLoss(kind)(sinkhorn(scores, n_iters=10), perm)
    assert loss.item() > 0
    loss.backward()
    assert scores.grad is not None and bool(torch.isfinite(scores.grad).all()) and float(scores.grad.abs().sum()) > 0
    # A small step against the gradient lowers the loss.
    with torch.no_grad():
        lower = PuzzleLoss(kind)(sinkhorn(scores - 1e-3 * scores.grad / scores.grad.norm(), n_iters=10), perm)
    assert lower.item() < loss.item()


def test_bad_arguments():
    with pytest.raises(ValueError, match="kind"):
        PuzzleLoss("l1")
    with pytest.raises(ValueError, match="log_p"):
        PuzzleLoss()(torch.zeros(2, 3, 4), torch.zeros(2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="perm"):
        PuzzleLoss()(torch.zeros(2, 3, 3), torch.zeros(2, 4, dtype=torch.long))
