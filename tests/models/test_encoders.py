"""medcl.models.encoders: the arch registry, the Encoder contract (pooled features, the feature
pyramid, tokens) on the ResNets, unknown archs, and a toy encoder registered by a test."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from medcl.errors import ConfigError
from medcl.methods.simclr import SimCLRConfig, SimCLRMethod
from medcl.models import Encoder, ImageEncoderConfig, ResNet, build_image_encoder, encoder_names, register_encoder
from medcl.models import encoders


@pytest.fixture
def registry(monkeypatch):
    """The registry as a copy, so that what a test registers leaves with it."""
    monkeypatch.setattr(encoders, "ENCODERS", encoders.ENCODERS.copy())
    return encoders.ENCODERS


def test_resnets_are_registered_by_name():
    assert encoder_names()[:3] == ("resnet18", "resnet34", "resnet50")
    for name in ("resnet18", "resnet34", "resnet50"):
        model = build_image_encoder(ImageEncoderConfig(arch=name, width=0.125))
        assert isinstance(model, ResNet) and model.depth == int(name[6:])
        assert isinstance(model, Encoder)
    choices = ImageEncoderConfig.__dataclass_fields__["arch"].metadata["choices"]
    assert tuple(choices()) == encoder_names()


def test_unknown_arch_is_a_config_error_naming_the_registered_ones():
    with pytest.raises(ConfigError) as info:
        build_image_encoder(ImageEncoderConfig(arch="resnet19"))
    text = str(info.value)
    assert "unknown arch 'resnet19'" in text
    assert all(name in info.value.fix for name in encoder_names())
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("depth", [18, 50])
def test_feature_pyramid_strides_and_channels(gen, depth):
    model = build_image_encoder(ImageEncoderConfig(arch=f"resnet{depth}", width=0.125, zero_init_residual=False))
    model.eval()
    H, W = int(torch.randint(33, 90, (), generator=gen)), int(torch.randint(33, 90, (), generator=gen))
    x = torch.randn(2, 1, H, W, generator=gen)
    with torch.no_grad():
        maps = model.features(x)
        last, pooled = model.feature_map(x), model(x)
    assert model.pyramid_strides == (4, 8, 16, 32)
    expansion = 1 if depth < 50 else 4
    assert model.pyramid_channels == tuple(c * expansion for c in (8, 16, 32, 64))
    assert model.pyramid_channels[-1] == model.out_dim
    assert len(maps) == 4
    for fmap, channels, stride in zip(maps, model.pyramid_channels, model.pyramid_strides):
        assert fmap.shape == (2, channels, math.ceil(H / stride), math.ceil(W / stride))
    assert torch.equal(maps[-1], last)                       # the same computation, stage by stage
    assert torch.equal(model.pool(maps[-1]).flatten(1), pooled)


def test_tokens_are_the_last_map_by_rows(gen):
    model = build_image_encoder(ImageEncoderConfig(width=0.125, zero_init_residual=False)).eval()
    x = torch.randn(3, 1, 70, 45, generator=gen)
    with torch.no_grad():
        tokens, fmap, pooled = model.tokens(x), model.feature_map(x), model(x)
    h, w = fmap.shape[2:]
    assert (h, w) == (3, 2) and tokens.shape == (3, h * w, model.out_dim)
    r, c = int(torch.randint(0, h, (), generator=gen)), int(torch.randint(0, w, (), generator=gen))
    assert torch.equal(tokens[:, r * w + c], fmap[:, :, r, c])
    torch.testing.assert_close(tokens.mean(dim=1), pooled)


def test_input_of_the_wrong_channels_is_refused():
    model = build_image_encoder(ImageEncoderConfig(width=0.125))
    for call in (model.features, model.tokens, model):
        with pytest.raises(ValueError, match=r"expected input \(B, 1, H, W\)"):
            call(torch.zeros(1, 3, 32, 32))


def test_state_dict_keys_are_the_resnet_ones():
    """Checkpoints written before the registry load: the same module tree, the same keys."""
    built = build_image_encoder(ImageEncoderConfig(arch="resnet18", width=0.25))
    direct = ResNet(18, 0.25)
    assert list(built.state_dict()) == list(direct.state_dict())
    assert len(built.state_dict()) == 120 and "stages.3.1.bn2.running_var" in built.state_dict()
    built.load_state_dict(direct.state_dict())               # strict


class ToyEncoder(nn.Module):
    """Two strided convolutions: a pyramid at strides 2 and 4, pooled to ``out_dim``."""

    def __init__(self, cfg: ImageEncoderConfig):
        super().__init__()
        c = max(4, int(16 * cfg.width))
        self.convs = nn.ModuleList([nn.Conv2d(cfg.in_channels, c, 3, 2, 1), nn.Conv2d(c, 2 * c, 3, 2, 1)])
        self.out_dim, self.pyramid_channels, self.pyramid_strides = 2 * c, (c, 2 * c), (2, 4)

    def features(self, x):
        maps = []
        for conv in self.convs:
            x = torch.relu(conv(x))
            maps.append(x)
        return maps

    def tokens(self, x):
        return self.features(x)[-1].flatten(2).transpose(1, 2)

    def forward(self, x):
        return self.tokens(x).mean(dim=1)


def test_a_toy_encoder_is_one_registry_line(registry, gen):
    register_encoder("toy", ToyEncoder)
    assert "toy" in encoder_names() and registry["toy"] is ToyEncoder
    choices = ImageEncoderConfig.__dataclass_fields__["arch"].metadata["choices"]
    assert "toy" in choices()
    cfg = ImageEncoderConfig(arch="toy", width=1.0)
    model = build_image_encoder(cfg)
    assert isinstance(model, ToyEncoder) and isinstance(model, Encoder) and model.out_dim == 32
    # a method builds it from its config and relies on the contract only
    method = SimCLRMethod(SimCLRConfig(image=cfg, head_hidden=16, proj_dim=8)).eval()
    batch = {"views": torch.rand(4, 2, 1, 24, 24, generator=gen), "index": torch.arange(4),
             "person": torch.arange(4), "n": 4}
    with torch.no_grad():
        loss = method(batch)["loss"]
    assert isinstance(method.image_encoder, ToyEncoder) and torch.isfinite(loss) and float(loss) > 0


def test_an_arch_is_registered_once(registry):
    register_encoder("toy", ToyEncoder)
    register_encoder("toy", ToyEncoder)                      # the same builder again: no change
    with pytest.raises(ValueError, match="already registered"):
        register_encoder("toy", lambda cfg: ToyEncoder(cfg))
    with pytest.raises(ValueError, match="already registered"):
        register_encoder("resnet18", ToyEncoder)
    for bad in ("", " toy", None):
        with pytest.raises(ValueError, match="non-empty word"):
            register_encoder(bad, ToyEncoder)
    assert "toy" in encoder_names() and list(registry).count("toy") == 1
