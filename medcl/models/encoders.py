"""Image encoders by arch name: :class:`ImageEncoderConfig`, the registry and the contract.

An encoder is an ``nn.Module`` honouring :class:`Encoder`; a builder takes the run's
ImageEncoderConfig and returns one. Adding an encoder means writing its module (e.g.
``models/vit.py``) and one ``register_encoder`` line at the end of this file; ``--arch`` offers
every registered name. Methods and downstream tasks build theirs with
:func:`build_image_encoder` and rely on the contract only.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Callable, Protocol, runtime_checkable

import torch
from torch import nn

from medcl.config import option
from medcl.errors import ConfigError
from medcl.models.resnet import resnet_from_config
from medcl.registry import Registry


@runtime_checkable
class Encoder(Protocol):
    """What every image encoder gives (input ``x``: (B, in_channels, H, W) images).

    - ``out_dim``: the width of the pooled features;
    - ``forward(x)`` → (B, out_dim) pooled features (what pretraining, ``embed`` and the probes use);
    - ``features(x)`` → the feature pyramid for dense heads (segmentation, detection): a list of
      maps (B, pyramid_channels[k], ⌈H/s_k⌉, ⌈W/s_k⌉), finest first, s_k = pyramid_strides[k]
      (ResNets: strides 4, 8, 16, 32);
    - ``tokens(x)`` → (B, N, out_dim), one token per position of the encoder's last grid, in row
      order (ViTs: the patch tokens without the class token; ResNets: the last map's positions,
      whose mean is ``forward(x)``).
    """

    out_dim: int
    pyramid_channels: tuple[int, ...]
    pyramid_strides: tuple[int, ...]

    def forward(self, x: torch.Tensor) -> torch.Tensor: ...

    def features(self, x: torch.Tensor) -> list[torch.Tensor]: ...

    def tokens(self, x: torch.Tensor) -> torch.Tensor: ...


def encoder_names() -> tuple[str, ...]:
    """The registered arch names, in registration order (``--arch``'s choices)."""
    return tuple(ENCODERS)


@dataclass
class ImageEncoderConfig:
    arch: str = option("resnet18", "Image encoder.", choices=encoder_names)
    width: float = option(1.0, "Channel width factor (every stage's channels, 8 or more kept; 0.25 for CPU).")
    in_channels: int = 1               # image channels (1 for radiographs)
    zero_init_residual: bool = True    # each residual block starts as the identity (last BN scale 0)


Builder = Callable[[ImageEncoderConfig], nn.Module]

class UnknownEncoderError(ConfigError, ValueError):
    """An arch no encoder is registered under (a ValueError too, as it was before the registry)."""


ENCODERS: Registry[Builder] = Registry("arch", error=UnknownEncoderError)   # arch name → builder


def register_encoder(name: str, builder: Builder) -> Builder:
    """Registers ``builder`` (ImageEncoderConfig → an :class:`Encoder`) under the arch ``name``;
    returns it. A name is registered once: another builder under it is a ValueError."""
    return ENCODERS.add(name, builder)


def build_image_encoder(cfg: ImageEncoderConfig) -> nn.Module:
    """The encoder registered as ``cfg.arch``, built from ``cfg`` (it honours :class:`Encoder`)."""
    return ENCODERS.lookup(cfg.arch)(cfg)


register_encoder("resnet18", partial(resnet_from_config, 18))
register_encoder("resnet34", partial(resnet_from_config, 34))
register_encoder("resnet50", partial(resnet_from_config, 50))
