"""medcl.models.genetics and medcl.models.heads: structure, shapes, a layer-by-layer
float64 recomputation, gradients, BatchNorm with batch size 2, eval determinism, configs."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from medcl.models import (GeneticsEncoder, GeneticsEncoderConfig, ProjectionHead, ProjectionHeadConfig,
                          build_genetics_encoder, build_projection_head)


def _warm_up_bn(model, gen, in_dim, steps=2):
    """Train-mode passes so BatchNorm running statistics are not the initial 0/1."""
    model.train()
    with torch.no_grad():
        for _ in range(steps):
            model(torch.randn(8, in_dim, generator=gen) * 2 + 0.5)


def _perturb(model, gen):
    """Random BN affine parameters, so a recomputation that ignores them would fail."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm1d):
                m.weight.copy_(torch.rand(m.weight.shape, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=gen))


def test_identity_encoder(gen):
    enc = GeneticsEncoder(37, hidden_layers=0)
    x = torch.randn(4, 37, generator=gen)
    assert enc.out_dim == 37 and len(list(enc.parameters())) == 0
    assert torch.equal(enc(x), x)


@pytest.mark.parametrize("hidden_layers", [1, 2])
def test_mlp_structure_and_shapes(gen, hidden_layers):
    enc = GeneticsEncoder(29, hidden_layers=hidden_layers, hidden=24)
    kinds = [type(m) for m in enc.net]
    assert kinds == [nn.Linear, nn.ReLU, nn.BatchNorm1d] * hidden_layers
    assert enc.out_dim == 24 and enc.net[0].in_features == 29
    y = enc.train()(torch.randn(2, 29, generator=gen))
    assert y.shape == (2, 24) and torch.isfinite(y).all()


@pytest.mark.parametrize("hidden_layers", [1, 2])
def test_encoder_eval_matches_float64_recomputation(gen, hidden_layers):
    enc = GeneticsEncoder(13, hidden_layers=hidden_layers, hidden=17)
    _perturb(enc, gen)
    _warm_up_bn(enc, gen, 13)
    enc.eval()
    x = torch.randn(5, 13, generator=gen)
    h = x.double()
    for k in range(hidden_layers):
        lin, bn = enc.net[3 * k], enc.net[3 * k + 2]
        h = F.relu(h @ lin.weight.double().T + lin.bias.double())
        h = (h - bn.running_mean.double()) / (bn.running_var.double() + bn.eps).sqrt()
        h = h * bn.weight.double() + bn.bias.double()
    with torch.no_grad():
        y = enc(x)
    assert float((y.double() - h).detach().abs().max() / h.detach().abs().max().clamp_min(1.0)) < 1e-5


def test_encoder_train_mode_normalises_over_the_batch(gen):
    # float64: with 2 rows a near-constant feature is divided by a tiny std, and fp32 rounding
    # (not BatchNorm's semantics, which this checks) then shows at the 1e-5 level.
    enc = GeneticsEncoder(11, hidden_layers=1, hidden=16).double().train()
    x = torch.randn(2, 11, generator=gen, dtype=torch.float64) * 5 + 3  # a batch of 2 is enough for BN
    y = enc(x).detach()
    with torch.no_grad():
        v = F.relu(enc.net[0](x)).var(0, unbiased=False)          # (16,) batch variance before BN
    torch.testing.assert_close(y.mean(0), torch.zeros(16, dtype=torch.float64), atol=1e-5, rtol=0)
    torch.testing.assert_close(y.var(0, unbiased=False), v / (v + enc.net[2].eps), atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("hidden_layers", [1, 2])
def test_encoder_gradients_and_eval_determinism(gen, hidden_layers):
    enc = GeneticsEncoder(9, hidden_layers=hidden_layers, hidden=12)
    x = torch.randn(6, 9, generator=gen, requires_grad=True)
    (enc.train()(x) * torch.randn(6, 12, generator=gen)).sum().backward()
    assert float(x.grad.abs().sum()) > 0
    for name, p in enc.named_parameters():
        assert p.grad is not None and float(p.grad.abs().sum()) > 0, name
    enc.eval()
    with torch.no_grad():
        torch.testing.assert_close(enc(x), enc(x), rtol=0, atol=0)
        torch.testing.assert_close(enc(x[:1])[0], enc(x)[0], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("kwargs,match", [(dict(in_dim=0), "in_dim"),
                                          (dict(in_dim=4, hidden_layers=3), "hidden_layers"),
                                          (dict(in_dim=4, hidden_layers=1, hidden=0), "hidden")])
def test_encoder_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        GeneticsEncoder(**kwargs)


def test_encoder_checks_input_width(gen):
    with pytest.raises(ValueError, match=r"\(B, 8\)"):
        GeneticsEncoder(8, 0)(torch.randn(3, 7, generator=gen))


def test_genetics_config_defaults_follow_contig():
    cfg = GeneticsEncoderConfig()
    assert (cfg.hidden_layers, cfg.hidden) == (1, 2048)
    enc = build_genetics_encoder(100, GeneticsEncoderConfig(hidden_layers=2, hidden=32))
    assert enc.out_dim == 32 and enc.hidden_layers == 2 and enc.in_dim == 100


def test_head_structure_and_float64_recomputation(gen):
    head = ProjectionHead(20, hidden=24, out_dim=8)
    assert [type(m) for m in head.net] == [nn.Linear, nn.BatchNorm1d, nn.ReLU, nn.Linear]
    assert head.net[0].bias is None and head.out_dim == 8
    _perturb(head, gen)
    _warm_up_bn(head, gen, 20)
    head.eval()
    x = torch.randn(4, 20, generator=gen)
    l1, bn, l2 = head.net[0], head.net[1], head.net[3]
    h = x.double() @ l1.weight.double().T
    h = (h - bn.running_mean.double()) / (bn.running_var.double() + bn.eps).sqrt()
    h = h * bn.weight.double() + bn.bias.double()
    want = F.relu(h) @ l2.weight.double().T + l2.bias.double()
    with torch.no_grad():
        got = head(x)
    assert float((got.double() - want).detach().abs().max() / want.detach().abs().max().clamp_min(1.0)) < 1e-5


def test_head_batch_of_two_gradients_and_determinism(gen):
    head = ProjectionHead(10, hidden=16, out_dim=6).train()
    x = torch.randn(2, 10, generator=gen, requires_grad=True)
    y = head(x)
    assert y.shape == (2, 6) and torch.isfinite(y).all()
    (y * torch.randn(2, 6, generator=gen)).sum().backward()
    for name, p in head.named_parameters():
        assert p.grad is not None and float(p.grad.abs().sum()) > 0, name
    head.eval()
    with torch.no_grad():
        torch.testing.assert_close(head(x), head(x), rtol=0, atol=0)
    with pytest.raises(ValueError, match=r"\(B, 10\)"):
        head(torch.randn(2, 11, generator=gen))


def test_head_config_defaults_follow_contig():
    cfg = ProjectionHeadConfig()
    assert (cfg.hidden, cfg.out_dim) == (2048, 128)
    head = build_projection_head(512, ProjectionHeadConfig(hidden=64, out_dim=16))
    assert head.in_dim == 512 and head.out_dim == 16 and head.net[0].out_features == 64
    with pytest.raises(ValueError, match="dimensions"):
        ProjectionHead(0)
