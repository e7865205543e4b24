"""medcl.ops.contrastive_loss against a naive per-row float64 loop, CLIP's symmetric formula,
masks, learnable temperature, gradcheck and argument validation."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from medcl.losses import contrastive_loss, contrastive_loss_reference, ntxent_loss


def naive_loss(a, b, tau, alpha, normalize, mask_a, mask_b):
    """The definition written out one anchor at a time with scalar float64 operations."""
    B = a.shape[0]
    keep_a = [True] * B if mask_a is None else mask_a.tolist()
    keep_b = [True] * B if mask_b is None else mask_b.tolist()
    rows_a = [a[i] / a[i].norm() if normalize else a[i] for i in range(B)]
    rows_b = [b[i] / b[i].norm() if normalize else b[i] for i in range(B)]

    def one_direction(anchors, others, keep_others):
        terms = []
        for i in range(B):
            if not (keep_a[i] and keep_b[i]):
                continue
            denominator = sum(torch.exp(torch.dot(anchors[i], others[j]) / tau) for j in range(B) if keep_others[j])
            numerator = torch.exp(torch.dot(anchors[i], others[i]) / tau)
            terms.append(-torch.log(numerator / denominator))
        return sum(terms) / len(terms) if terms else torch.zeros((), dtype=torch.float64)

    loss = alpha * one_direction(rows_a, rows_b, keep_b) + (1 - alpha) * one_direction(rows_b, rows_a, keep_a)
    return loss + 0.0 * (a.sum() + b.sum())           # every input in the graph (zero grads for unused rows)


def _embeddings(gen, B, D, scale=1.0):
    a = torch.randn(B, D, generator=gen, dtype=torch.float64) * scale
    b = torch.randn(B, D, generator=gen, dtype=torch.float64) * scale
    return a, b


def _random_mask(gen, B, p_keep=0.7):
    return torch.rand(B, generator=gen) < p_keep


def _value_and_grads(fn, a, b, tau=None):
    a = a.detach().clone().requires_grad_(True)
    b = b.detach().clone().requires_grad_(True)
    inputs = [a, b] + ([tau] if isinstance(tau, torch.Tensor) and tau.requires_grad else [])
    loss = fn(a, b)
    grads = torch.autograd.grad(loss, inputs)
    return loss.detach(), [g.detach() for g in grads]


def _rel_err(got, want):
    """Max abs error over max(max |want|, 1), as tests/ops/test_intensity.py scales errors."""
    got, want = got.double().cpu(), want.double().cpu()
    return float((got - want).abs().max() / want.abs().max().clamp_min(1.0))


@pytest.mark.parametrize("B,D", [(1, 4), (2, 3), (7, 5), (16, 33)])
@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("alpha", [0.5, 0.75, 0.0, 1.0])
@pytest.mark.parametrize("masks", ["none", "shared", "independent"])
def test_matches_naive_loop_values_and_gradients(device, gen, B, D, normalize, alpha, masks):
    a, b = _embeddings(gen, B, D, scale=1.0 if normalize else 0.4)
    a, b = a.float().double(), b.float().double()        # the same inputs in both precisions
    tau = float(torch.rand((), generator=gen, dtype=torch.float64)) * 0.5 + 0.05
    mask_a = mask_b = None
    if masks == "shared":
        mask_a = mask_b = _random_mask(gen, B)
    elif masks == "independent":
        mask_a, mask_b = _random_mask(gen, B), _random_mask(gen, B)
    want, want_grads = _value_and_grads(lambda x, y: naive_loss(x, y, tau, alpha, normalize, mask_a, mask_b), a, b)

    def ours(x, y, dtype):
        x, y = x.to(device, dtype), y.to(device, dtype)
        return contrastive_loss(x, y, temperature=tau, alpha=alpha, normalize=normalize,
                                mask_a=None if mask_a is None else mask_a.to(device),
                                mask_b=None if mask_b is None else mask_b.to(device))

    got64, grads64 = _value_and_grads(lambda x, y: ours(x, y, torch.float64), a, b)
    assert got64.dtype == torch.float64 and got64.shape == ()
    torch.testing.assert_close(got64.cpu(), want, rtol=1e-12, atol=1e-12, msg=f"seed {gen.initial_seed()}")
    for g, w in zip(grads64, want_grads):
        torch.testing.assert_close(g.cpu(), w, rtol=1e-10, atol=1e-12, msg=f"seed {gen.initial_seed()}")

    # fp32 against float64: relative error < 1e-5, relative to max(|want|, 1) (a loss near 0
    # is cancellation-bound: lse − positive, each of order 1/τ, exact only to ~ε32/τ).
    got32, grads32 = _value_and_grads(lambda x, y: ours(x, y, torch.float32), a.float(), b.float())
    assert got32.dtype == torch.float32
    assert _rel_err(got32.reshape(1), want.reshape(1)) < 1e-5, gen.initial_seed()
    for g, w in zip(grads32, want_grads):
        assert _rel_err(g, w) < 1e-5, gen.initial_seed()


def test_equals_clip_symmetric_loss_with_learnable_logit_scale(device, gen):
    B, D = 12, 9
    a, b = _embeddings(gen, B, D)
    a, b = a.to(device), b.to(device)
    init = math.log(1 / 0.07) + float(torch.randn((), generator=gen)) * 0.3

    def clip(x, y, logit_scale):                       # CLIP's pseudocode, float64
        logits = logit_scale.exp() * F.normalize(x, dim=1) @ F.normalize(y, dim=1).T
        labels = torch.arange(B, device=x.device)
        return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2

    s_clip = torch.tensor(init, dtype=torch.float64, device=device, requires_grad=True)
    s_ours = torch.tensor(init, dtype=torch.float64, device=device, requires_grad=True)
    want = clip(a, b, s_clip)
    got = contrastive_loss(a, b, temperature=1 / s_ours.exp())
    torch.testing.assert_close(got, want, rtol=1e-12, atol=0)
    (g_clip,) = torch.autograd.grad(want, s_clip)
    (g_ours,) = torch.autograd.grad(got, s_ours)
    assert float(g_clip.abs()) > 0
    torch.testing.assert_close(g_ours, g_clip, rtol=1e-10, atol=0)


def test_temperature_tensor_gradient_matches_naive_and_finite_differences(gen):
    a, b = _embeddings(gen, 6, 5)
    mask = _random_mask(gen, 6, 0.8)
    mask[:2] = True
    tau = torch.tensor(0.2 + 0.1 * float(torch.rand((), generator=gen)), dtype=torch.float64, requires_grad=True)
    got = contrastive_loss(a, b, temperature=tau, alpha=0.75, mask_a=mask, mask_b=mask)
    (g,) = torch.autograd.grad(got, tau)
    tau_n = tau.detach().clone().requires_grad_(True)
    (g_naive,) = torch.autograd.grad(naive_loss(a, b, tau_n, 0.75, True, mask, mask), tau_n)
    torch.testing.assert_close(g, g_naive, rtol=1e-10, atol=0)
    h, t = 1e-6, float(tau.detach())
    fd = (contrastive_loss(a, b, temperature=t + h, alpha=0.75, mask_a=mask, mask_b=mask)
          - contrastive_loss(a, b, temperature=t - h, alpha=0.75, mask_a=mask, mask_b=mask)) / (2 * h)
    assert abs(float(g) - float(fd)) < 1e-6 * max(1.0, abs(float(fd)))
    assert float(g) != 0.0


def test_all_but_one_kept(device, gen):
    B, D = 8, 6
    a, b = _embeddings(gen, B, D)
    a, b = a.to(device).requires_grad_(True), b.to(device).requires_grad_(True)
    k = int(torch.randint(0, B, (), generator=gen))
    one = torch.zeros(B, dtype=torch.bool, device=device)
    one[k] = True
    # One pair left in both: a softmax over a single column is exactly 1, the loss exactly 0.
    loss = contrastive_loss(a, b, mask_a=one, mask_b=one)
    assert loss.detach().item() == 0.0
    ga, gb = torch.autograd.grad(loss, (a, b))
    assert torch.isfinite(ga).all() and torch.isfinite(gb).all()
    # Only a is cut to one row: a_k against every b is a real term, b→a is 0.
    everyone = torch.ones(B, dtype=torch.bool, device=device)
    got = contrastive_loss(a, b, alpha=0.75, mask_a=one, mask_b=everyone)
    want = naive_loss(a.detach().cpu(), b.detach().cpu(), 0.1, 0.75, True, one.cpu(), everyone.cpu())
    assert float(want) > 0
    torch.testing.assert_close(got.detach().cpu(), want, rtol=1e-12, atol=0)
    ga, gb = torch.autograd.grad(got, (a, b))
    rows = torch.arange(B, device=device) != k
    assert float(ga[rows].abs().max()) == 0.0 and float(ga[k].abs().max()) > 0   # only a_k is used
    assert bool((gb.abs().sum(1) > 0).all())                                      # every b_j is a negative


@pytest.mark.parametrize("case", ["all_masked", "disjoint", "a_masked", "b_masked"])
def test_no_anchor_gives_connected_zero_with_finite_gradients(device, gen, case):
    B, D = 5, 4
    a, b = _embeddings(gen, B, D)
    a, b = a.to(device).float(), b.to(device).float()
    a[0] = float("nan")                                  # masked rows may hold anything
    a, b = a.requires_grad_(True), b.requires_grad_(True)
    tau = torch.tensor(0.1, device=device, requires_grad=True)
    half = torch.arange(B, device=device) < B // 2
    none = torch.zeros(B, dtype=torch.bool, device=device)
    not_first = torch.arange(B, device=device) > 0      # a's row 0 (NaN) is never kept
    masks = {"all_masked": (none, none), "disjoint": (~half, half),
             "a_masked": (none, ~none), "b_masked": (not_first, none)}[case]
    loss = contrastive_loss(a, b, temperature=tau, mask_a=masks[0], mask_b=masks[1])
    assert loss.item() == 0.0 and loss.requires_grad
    ga, gb, gt = torch.autograd.grad(loss, (a, b, tau))
    for g in (ga, gb, gt):
        assert torch.isfinite(g).all() and float(g.abs().max()) == 0.0


def test_masked_rows_do_not_reach_loss_or_gradients(device, gen):
    B, D = 10, 7
    a, b = _embeddings(gen, B, D)
    mask_a, mask_b = _random_mask(gen, B, 0.6), _random_mask(gen, B, 0.6)
    mask_a[:2] = mask_b[:2] = True
    a, b, mask_a, mask_b = a.to(device), b.to(device), mask_a.to(device), mask_b.to(device)
    base, base_grads = _value_and_grads(lambda x, y: contrastive_loss(x, y, mask_a=mask_a, mask_b=mask_b), a, b)
    a2, b2 = a.clone(), b.clone()
    a2[~mask_a] = torch.randn(int((~mask_a).sum()), D, generator=gen, dtype=torch.float64).to(device) * 100
    b2[~mask_b] = float("nan")
    got, grads = _value_and_grads(lambda x, y: contrastive_loss(x, y, mask_a=mask_a, mask_b=mask_b), a2, b2)
    torch.testing.assert_close(got, base, rtol=0, atol=0)
    for g, w, keep in zip(grads, base_grads, (mask_a, mask_b)):
        torch.testing.assert_close(g, w, rtol=0, atol=0)
        assert float(g[~keep].abs().sum()) == 0.0
    # ...while changing a kept row does change the loss.
    a3 = a.clone()
    a3[0] = torch.randn(D, generator=gen, dtype=torch.float64).to(device)
    assert float(contrastive_loss(a3, b, mask_a=mask_a, mask_b=mask_b)) != float(base)


def test_single_pair_is_zero(device, gen):
    a, b = _embeddings(gen, 1, 3)
    a, b = a.to(device).requires_grad_(True), b.to(device).requires_grad_(True)
    loss = contrastive_loss(a, b, alpha=0.75)
    assert loss.detach().item() == 0.0
    assert all(torch.isfinite(g).all() for g in torch.autograd.grad(loss, (a, b)))
    # Unnormalised, still 0: one column, the positive itself.
    assert contrastive_loss(a.detach() * 7, b.detach(), normalize=False).item() == 0.0


@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("masks", [False, True])
def test_gradcheck_float64(gen, normalize, masks):
    B, D = 5, 3
    a, b = _embeddings(gen, B, D, scale=1.0 if normalize else 0.5)
    a.requires_grad_(True)
    b.requires_grad_(True)
    tau = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
    mask_a = mask_b = None
    if masks:
        mask_a, mask_b = _random_mask(gen, B), _random_mask(gen, B)
        mask_a[0] = mask_b[0] = True
    fn = lambda x, y, t: contrastive_loss(x, y, temperature=t, alpha=0.7, normalize=normalize,  # noqa: E731
                                          mask_a=mask_a, mask_b=mask_b)
    assert torch.autograd.gradcheck(fn, (a, b, tau))
    assert torch.autograd.gradgradcheck(fn, (a, b, tau))


def test_loss_is_invariant_to_row_permutation_and_sensitive_to_pairing(gen):
    a, b = _embeddings(gen, 9, 4)
    perm = torch.randperm(9, generator=gen)
    while bool((perm == torch.arange(9)).all()):
        perm = torch.randperm(9, generator=gen)
    loss = contrastive_loss(a, b, alpha=0.75)
    torch.testing.assert_close(contrastive_loss(a[perm], b[perm], alpha=0.75), loss, rtol=1e-12, atol=0)
    assert float(contrastive_loss(a, b[perm], alpha=0.75)) != float(loss)


@pytest.mark.parametrize("kwargs,match", [
    (dict(b_shape=(4, 5)), "same shape"),
    (dict(a_shape=(4,), b_shape=(4,)), r"\(B, D\)"),
    (dict(a_shape=(0, 3), b_shape=(0, 3)), "empty"),
    (dict(b_dtype=torch.float64), "dtype"),
    (dict(temperature=0.0), "temperature"),
    (dict(temperature=-1.0), "temperature"),
    (dict(temperature=torch.ones(2)), "0-d"),
    (dict(alpha=1.5), "alpha"),
    (dict(mask_a=torch.ones(4, dtype=torch.int64)), "bool"),
    (dict(mask_b=torch.ones(3, dtype=torch.bool)), "mask_b"),
])
def test_rejects_bad_arguments(gen, kwargs, match):
    a_shape, b_shape = kwargs.pop("a_shape", (4, 3)), kwargs.pop("b_shape", (4, 3))
    a = torch.randn(*a_shape, generator=gen)
    b = torch.randn(*b_shape, generator=gen).to(kwargs.pop("b_dtype", torch.float32))
    with pytest.raises(ValueError, match=match):
        contrastive_loss(a, b, **kwargs)


# ---- larger batches (the kernels' tiles and waves), bf16 ---------------------------------------

@pytest.mark.parametrize("B,D", [(129, 8), (700, 33)])
def test_large_batches_match_reference(device, gen, B, D):
    a, b = _embeddings(gen, B, D)
    mask_a, mask_b = _random_mask(gen, B, 0.9), _random_mask(gen, B, 0.9)
    tau = torch.tensor(0.07, dtype=torch.float64, requires_grad=True)
    dtype = torch.float32 if device.type == "cuda" else torch.float64
    x, y = a.to(device, dtype), b.to(device, dtype)
    t = tau.detach().to(device, dtype).requires_grad_(True)
    kw = dict(alpha=0.75, mask_a=mask_a.to(device), mask_b=mask_b.to(device))
    got, got_grads = _value_and_grads(lambda p, q: contrastive_loss(p, q, temperature=t, **kw), x, y, t)
    want, want_grads = _value_and_grads(
        lambda p, q: contrastive_loss_reference(p, q, tau, 0.75, True, mask_a, mask_b), a, b, tau)
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    assert _rel_err(got, want) < tol
    for g, w in zip(got_grads, want_grads):
        assert _rel_err(g, w) < tol


def test_bf16_error_at_most_twice_pytorch_bf16(device, gen):
    """medcl in bf16 against the fp32 reference, next to PyTorch doing the same in bf16."""
    B, D = 512, 64
    a, b = (t.float() for t in _embeddings(gen, B, D))
    want, want_grads = _value_and_grads(
        lambda p, q: contrastive_loss_reference(p, q, 0.1, 0.5, True, None, None), a.to(device), b.to(device))
    ours, ours_grads = _value_and_grads(lambda p, q: contrastive_loss(p, q, temperature=0.1),
                                        a.to(device, torch.bfloat16), b.to(device, torch.bfloat16))
    torch_bf16, torch_grads = _value_and_grads(
        lambda p, q: contrastive_loss_reference(p, q, 0.1, 0.5, True, None, None),
        a.to(device, torch.bfloat16), b.to(device, torch.bfloat16))
    assert ours.dtype == torch.bfloat16
    want = want.double()
    assert _rel_err(ours, want) <= 2 * _rel_err(torch_bf16, want) + 1e-6
    for o, t, w in zip(ours_grads, torch_grads, want_grads):
        assert _rel_err(o, w.double()) <= 2 * _rel_err(t, w.double()) + 1e-6


# ---- NT-Xent -------------------------------------------------------------------------------

def naive_ntxent(z1, z2, tau, normalize):
    """SimCLR's NT-Xent one anchor at a time in float64."""
    z = torch.cat([z1, z2])
    if normalize:
        z = z / z.norm(dim=1, keepdim=True)
    n2, N = z.shape[0], z1.shape[0]
    terms = []
    for i in range(n2):
        pos = (i + N) % n2
        others = torch.stack([torch.dot(z[i], z[k]) / tau for k in range(n2) if k != i])
        terms.append(torch.logsumexp(others, 0) - torch.dot(z[i], z[pos]) / tau)
    return torch.stack(terms).mean()


@pytest.mark.parametrize("N,D", [(1, 3), (2, 5), (9, 16), (70, 7)])
@pytest.mark.parametrize("normalize", [True, False])
def test_ntxent_matches_naive_loop(device, gen, N, D, normalize):
    z1, z2 = _embeddings(gen, N, D, scale=1.0 if normalize else 0.3)
    dtype = torch.float32 if device.type == "cuda" else torch.float64
    got, got_grads = _value_and_grads(lambda p, q: ntxent_loss(p, q, temperature=0.5, normalize=normalize),
                                      z1.to(device, dtype), z2.to(device, dtype))
    want, want_grads = _value_and_grads(lambda p, q: naive_ntxent(p, q, 0.5, normalize), z1, z2)
    tol = 1e-5 if dtype == torch.float32 else 1e-10
    assert _rel_err(got, want) < tol
    for g, w in zip(got_grads, want_grads):
        assert _rel_err(g, w) < tol


def test_ntxent_gradcheck_with_learnable_temperature(gen):
    z1, z2 = _embeddings(gen, 4, 3)
    z1.requires_grad_(True)
    z2.requires_grad_(True)
    tau = torch.tensor(0.4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda p, q, t: ntxent_loss(p, q, temperature=t), (z1, z2, tau))


def test_ntxent_rejects_bad_arguments(gen):
    z1, z2 = _embeddings(gen, 4, 3)
    with pytest.raises(ValueError, match="same shape"):
        ntxent_loss(z1, z2[:3])
    with pytest.raises(ValueError, match="temperature must be > 0"):
        ntxent_loss(z1, z2, temperature=0.0)
