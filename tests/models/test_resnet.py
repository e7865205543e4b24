"""medcl.models.resnet: parameter counts against the standard models, shapes over depths and
widths, the 1-channel stem, gradients, zero-init residuals, BatchNorm modes."""
from __future__ import annotations

import math

import pytest
import torch

from medcl.models import ImageEncoderConfig, ResNet, build_image_encoder
from medcl.models.resnet import stage_channels

# torchvision's resnet18/34/50 have 11,689,512 / 21,797,672 / 25,557,032 parameters with the
# 1000-class fc (512·1000 + 1000 and 2048·1000 + 1000) and a 3-channel stem (3·64·7·7).
STANDARD = {18: 11_689_512 - 513_000, 34: 21_797_672 - 513_000, 50: 25_557_032 - 2_049_000}
ONE_CHANNEL_STEM_SAVING = 2 * 64 * 7 * 7


def n_params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def expected_params(depth: int, width: float, in_channels: int) -> int:
    """Parameter count written out from the architecture (convs have no bias; BN has 2/channel)."""
    blocks = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 6, 3)}[depth]
    c = [max(8, round(64 * width * 2 ** k)) for k in range(4)]
    total = in_channels * c[0] * 49 + 2 * c[0]
    cin = c[0]
    for k, n in enumerate(blocks):
        p = c[k]
        for i in range(n):
            stride = 2 if (k > 0 and i == 0) else 1
            if depth < 50:
                cout = p
                total += cin * p * 9 + 2 * p + p * p * 9 + 2 * p
            else:
                cout = 4 * p
                total += cin * p + 2 * p + p * p * 9 + 2 * p + p * cout + 2 * cout
            if stride != 1 or cin != cout:
                total += cin * cout + 2 * cout
            cin = cout
    return total


@pytest.mark.parametrize("depth", [18, 34, 50])
def test_width_one_matches_standard_parameter_counts(depth):
    assert n_params(ResNet(depth, in_channels=3)) == STANDARD[depth]
    assert n_params(ResNet(depth)) == STANDARD[depth] - ONE_CHANNEL_STEM_SAVING
    assert ResNet(depth).out_dim == (512 if depth < 50 else 2048)


def test_resnet18_one_channel_count_is_the_stated_number():
    assert n_params(ResNet(18, 1.0, 1)) == 11_170_240


@pytest.mark.parametrize("depth", [18, 34, 50])
@pytest.mark.parametrize("width", [0.125, 0.25, 0.3, 0.5])
@pytest.mark.parametrize("in_channels", [1, 3])
def test_parameter_count_follows_the_architecture(depth, width, in_channels):
    assert n_params(ResNet(depth, width, in_channels)) == expected_params(depth, width, in_channels)


@pytest.mark.parametrize("depth", [18, 34, 50])
@pytest.mark.parametrize("width", [0.125, 0.25, 0.5])
def test_output_shape_and_out_dim(gen, depth, width):
    model = ResNet(depth, width).eval()
    H, W = int(torch.randint(33, 72, (), generator=gen)), int(torch.randint(33, 72, (), generator=gen))
    x = torch.randn(3, 1, H, W, generator=gen)
    with torch.no_grad():
        y = model(x)
        fmap = model.feature_map(x)
    assert model.out_dim == (512 if depth < 50 else 2048) * width
    assert y.shape == (3, model.out_dim) and torch.isfinite(y).all()
    assert fmap.shape == (3, model.out_dim, math.ceil(H / 32), math.ceil(W / 32))
    torch.testing.assert_close(y, fmap.mean(dim=(2, 3)))


def test_tiny_width_keeps_at_least_eight_channels(gen):
    assert stage_channels(0.01) == [8, 8, 8, 8]
    assert stage_channels(0.1) == [8, 13, 26, 51]
    model = ResNet(50, 0.01)
    assert model.out_dim == 32
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert min(min(c.in_channels for c in convs[1:]), min(c.out_channels for c in convs)) >= 8
    assert model.eval()(torch.randn(2, 1, 40, 40, generator=gen)).shape == (2, 32)


def test_input_channels_are_checked(gen):
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\)"):
        ResNet(18, 0.125)(torch.randn(2, 3, 32, 32, generator=gen))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        ResNet(18, 0.125, in_channels=3)(torch.randn(2, 32, 32, generator=gen))
    assert ResNet(18, 0.125, in_channels=3).eval()(torch.randn(2, 3, 32, 32, generator=gen)).shape == (2, 64)


@pytest.mark.parametrize("kwargs,match", [(dict(depth=101), "depth"), (dict(width=0.0), "width"),
                                          (dict(in_channels=0), "in_channels")])
def test_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ResNet(**kwargs)


@pytest.mark.parametrize("depth", [18, 50])
def test_gradient_reaches_every_parameter(gen, depth):
    model = ResNet(depth, 0.125, zero_init_residual=False).train()
    x = torch.randn(2, 1, 48, 48, generator=gen, requires_grad=True)
    model(x).pow(2).sum().backward()
    assert x.grad is not None and float(x.grad.abs().sum()) > 0
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert float(p.grad.abs().sum()) > 0, name


@pytest.mark.parametrize("depth", [18, 50])
def test_zero_init_residual_makes_blocks_identities(gen, depth):
    model = ResNet(depth, 0.125)
    blocks = [m for m in model.modules() if hasattr(m, "last_bn")]
    assert len(blocks) == {18: 8, 50: 16}[depth]
    assert all(float(b.last_bn.weight.detach().abs().max()) == 0.0 for b in blocks)
    other_bn = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)
                and all(m is not b.last_bn for b in blocks)]
    assert all(bool((m.weight == 1).all()) for m in other_bn)
    # A block with an identity shortcut now maps a non-negative input to itself.
    block = next(b for b in blocks if isinstance(b.shortcut, torch.nn.Identity)).eval()
    cin = block.conv1.in_channels
    x = torch.rand(2, cin, 9, 9, generator=gen)
    torch.testing.assert_close(block(x), x, rtol=0, atol=0)
    # The zeroed scales still learn.
    model.train()(torch.randn(2, 1, 48, 48, generator=gen)).pow(2).sum().backward()
    assert all(float(b.last_bn.weight.grad.abs().sum()) > 0 for b in blocks)
    assert ResNet(depth, 0.125, zero_init_residual=False).stages[0][0].last_bn.weight.eq(1).all()


def test_eval_mode_is_deterministic_and_per_sample(gen):
    model = ResNet(34, 0.125, zero_init_residual=False)
    model.train()
    for _ in range(2):                                   # give BN non-trivial running statistics
        model(torch.randn(4, 1, 40, 40, generator=gen) * 3 + 1)
    model.eval()
    x = torch.randn(5, 1, 40, 40, generator=gen)
    with torch.no_grad():
        y1, y2, y_first = model(x), model(x), model(x[:1])
    torch.testing.assert_close(y1, y2, rtol=0, atol=0)
    torch.testing.assert_close(y_first[0], y1[0], rtol=1e-5, atol=1e-6)


def test_train_mode_batchnorm_with_batch_of_two_updates_running_stats(gen):
    model = ResNet(50, 0.125).train()
    bn = model.stem[1]
    before = bn.running_mean.clone()
    y = model(torch.randn(2, 1, 36, 36, generator=gen) + 2)
    assert y.shape == (2, model.out_dim) and torch.isfinite(y).all()
    assert not torch.equal(bn.running_mean, before) and int(bn.num_batches_tracked) == 1
    # Train-mode outputs depend on the batch (BatchNorm statistics); eval ones do not.
    x = torch.randn(2, 1, 36, 36, generator=gen)
    other = torch.randn(2, 1, 36, 36, generator=gen)
    assert not torch.allclose(model(x)[0], model(torch.stack([x[0], other[0]]))[0])


def test_float64_forward_matches_float32(gen):
    model = ResNet(18, 0.125, zero_init_residual=False).eval()
    x = torch.randn(2, 1, 40, 40, generator=gen)
    with torch.no_grad():
        y32 = model(x)
        y64 = model.double()(x.double())
    err = (y32.double() - y64).abs().max() / y64.abs().max().clamp_min(1.0)
    assert float(err) < 1e-5


@pytest.mark.parametrize("arch,out_dim", [("resnet18", 64), ("resnet34", 64), ("resnet50", 256)])
def test_build_from_config(arch, out_dim):
    cfg = ImageEncoderConfig(arch=arch, width=0.125, in_channels=1, zero_init_residual=False)
    model = build_image_encoder(cfg)
    assert isinstance(model, ResNet) and model.out_dim == out_dim and model.depth == int(arch[6:])
    assert float(model.stages[0][0].last_bn.weight.detach().min()) == 1.0
    with pytest.raises(ValueError, match="unknown arch"):
        build_image_encoder(ImageEncoderConfig(arch="vit_b16"))
