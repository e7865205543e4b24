"""ResNet-18/34/50 image encoders with a 1-channel stem and a width factor.

He et al., "Deep Residual Learning for Image Recognition", CVPR 2016: a 7×7 stride-2
convolution, BatchNorm, ReLU and 3×3 stride-2 max-pool, then four stages of residual blocks
(BasicBlock for 18/34, Bottleneck for 50) at 64, 128, 256, 512 channels (×4 at the output of
a Bottleneck), the first block of stages 2-4 striding by 2 (the stride sits on the 3×3
convolution of a Bottleneck, as in torchvision's "ResNet v1.5"), and a global average pool.
With ``width = 1`` and ``in_channels = 3`` the parameters are those of the standard models
without the classifier; ``width`` scales every stage's channels, for small CPU runs.

``zero_init_residual`` sets the last BatchNorm scale of every block to 0 so that each block
starts as the identity (Goyal et al., "Accurate, Large Minibatch SGD: Training ImageNet in
1 Hour", 2017).
"""
from __future__ import annotations

import torch
from torch import nn
# depth → (block kind, blocks per stage)
DEPTHS = {18: ("basic", (2, 2, 2, 2)), 34: ("basic", (3, 4, 6, 3)), 50: ("bottleneck", (3, 4, 6, 3))}
MIN_CHANNELS = 8
PYRAMID_STRIDES = (4, 8, 16, 32)   # stem (stride-2 conv, stride-2 pool) then stages 2-4 stride by 2



def stage_channels(width: float) -> list[int]:
    """Channels of the stem and the four stages: round(64 · width · 2^k), at least 8."""
    return [max(MIN_CHANNELS, int(round(64 * width * 2 ** k))) for k in range(4)]


def _conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)


def _conv1x1(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3×3 convolutions plus the shortcut (a 1×1 projection when the shape changes)."""

    expansion = 1

    def __init__(self, cin: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1, self.bn1 = _conv3x3(cin, planes, stride), nn.BatchNorm2d(planes)
        self.conv2, self.bn2 = _conv3x3(planes, planes), nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = _projection(cin, planes, stride)

    @property
    def last_bn(self) -> nn.BatchNorm2d:
        return self.bn2

    def forward(self, x: torch.Tensor) -> torch.Tensor:        # (B, cin, H, W) → (B, planes, H/s, W/s)
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return self.relu(y + self.shortcut(x))


class Bottleneck(nn.Module):
    """1×1 reduce, 3×3 (carrying the stride), 1×1 expand ×4, plus the shortcut."""

    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int = 1):
        super().__init__()
        cout = planes * self.expansion
        self.conv1, self.bn1 = _conv1x1(cin, planes), nn.BatchNorm2d(planes)
        self.conv2, self.bn2 = _conv3x3(planes, planes, stride), nn.BatchNorm2d(planes)
        self.conv3, self.bn3 = _conv1x1(planes, cout), nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = _projection(cin, cout, stride)

    @property
    def last_bn(self) -> nn.BatchNorm2d:
        return self.bn3

    def forward(self, x: torch.Tensor) -> torch.Tensor:        # (B, cin, H, W) → (B, 4·planes, H/s, W/s)
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return self.relu(y + self.shortcut(x))


def _projection(cin: int, cout: int, stride: int) -> nn.Module:
    if stride == 1 and cin == cout:
        return nn.Identity()
    return nn.Sequential(_conv1x1(cin, cout, stride), nn.BatchNorm2d(cout))


class ResNet(nn.Module):
    """ResNet-{18, 34, 50} trunk: ``forward(x: (B, C, H, W)) -> (B, out_dim)`` pooled features;
    an encoder in the sense of :class:`medcl.models.encoders.Encoder` (``features``: the four
    stages' maps at strides 4, 8, 16, 32; ``tokens``: the last map's positions).

    Args:
        depth: 18, 34 or 50.
        width: factor on every stage's channels (stage k has round(64 · width · 2^k), ≥ 8).
        in_channels: channels of the input images (1 for radiographs).
        zero_init_residual: start every block's last BatchNorm scale at 0 (block = identity).

    ``out_dim`` is the last stage's channels times the block expansion: 512 · width for 18/34
    and 2048 · width for 50 whenever 512 · width is a whole number ≥ 8.
    """

    def __init__(self, depth: int = 18, width: float = 1.0, in_channels: int = 1, *,
                 zero_init_residual: bool = True):
        super().__init__()
        if depth not in DEPTHS:
            raise ValueError(f"ResNet: depth must be one of {sorted(DEPTHS)}, got {depth}")
        if not width > 0:
            raise ValueError(f"ResNet: width must be > 0, got {width}")
        if in_channels < 1:
            raise ValueError(f"ResNet: in_channels must be ≥ 1, got {in_channels}")
        kind, blocks = DEPTHS[depth]
        block = BasicBlock if kind == "basic" else Bottleneck
        channels = stage_channels(width)
        self.depth, self.width, self.in_channels = depth, float(width), int(in_channels)
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, channels[0], 7, stride=2, padding=3, bias=False),
            nn.BatchNorm2d(channels[0]), nn.ReLU(inplace=True), nn.MaxPool2d(3, stride=2, padding=1))
        stages, cin = [], channels[0]
        for k, (planes, n) in enumerate(zip(channels, blocks)):
            layers = []
            for i in range(n):
                layers.append(block(cin, planes, stride=2 if (k > 0 and i == 0) else 1))
                cin = planes * block.expansion
            stages.append(nn.Sequential(*layers))
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.out_dim = cin
        self.pyramid_channels = tuple(c * block.expansion for c in channels)  # features(x)'s maps
        self.pyramid_strides = PYRAMID_STRIDES
        self._init_weights(zero_init_residual)

    def _init_weights(self, zero_init_residual: bool) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, (BasicBlock, Bottleneck)):
                    nn.init.zeros_(m.last_bn.weight)

    def _check_input(self, x: torch.Tensor) -> None:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"ResNet: expected input (B, {self.in_channels}, H, W), got {tuple(x.shape)}")

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:    # (B, C, H, W) → (B, out_dim, H/32, W/32)
        """The last stage's activations before pooling."""
        self._check_input(x)
        return self.stages(self.stem(x))

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Every stage's activations, finest first: (B, pyramid_channels[k], ⌈H/s⌉, ⌈W/s⌉) at
        strides s = 4, 8, 16, 32; the last is :meth:`feature_map`."""
        self._check_input(x)
        maps, y = [], self.stem(x)
        for stage in self.stages:
            y = stage(y)
            maps.append(y)
        return maps

    def tokens(self, x: torch.Tensor) -> torch.Tensor:         # (B, C, H, W) → (B, ⌈H/32⌉·⌈W/32⌉, out_dim)
        """The last map's positions as tokens, row by row; their mean is :meth:`forward`."""
        return self.feature_map(x).flatten(2).transpose(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:        # (B, C, H, W) → (B, out_dim)
        return self.pool(self.feature_map(x)).flatten(1)


def resnet_from_config(depth: int, cfg) -> ResNet:
    """The ResNet of ``depth`` with ``cfg``'s width, in_channels and zero_init_residual (an
    ImageEncoderConfig: the registry's builder, ``functools.partial(resnet_from_config, 18)``)."""
    return ResNet(depth, cfg.width, cfg.in_channels, zero_init_residual=cfg.zero_init_residual)
