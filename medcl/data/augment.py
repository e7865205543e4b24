"""CPU image augmentation for radiographs, in torch, reproducible from an explicit generator.

    g = torch.Generator().manual_seed(seed)
    view = augment(image, AugmentConfig(), size=224, generator=g)    # (1, 224, 224) in [0, 1]
    plain = eval_transform(image, size=224)                           # resize only

The steps, in order: random resized crop (area scale, aspect ratio) → antialiased resize to
``size`` x ``size`` → small rotation (affine_grid / grid_sample, zeros outside) → optional
horizontal flip → brightness/contrast jitter and gamma → Gaussian noise → clamp to [0, 1].
Parameters are drawn first (:func:`sample_params`) and applied after (:func:`apply_params`),
so identity parameters give exactly the resized image. Every random number comes from the
generator passed in; nothing touches the global RNG.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class AugmentConfig:
    """Augmentation for one view; the defaults suit chest radiographs."""

    enabled: bool = True  # False: eval_transform only (resize)
    crop_scale: tuple = (0.5, 1.0)  # range of the crop's area as a fraction of the image's
    crop_ratio: tuple = (3 / 4, 4 / 3)  # range of the crop's aspect ratio (width / height)
    rotation: float = 10.0  # largest rotation in degrees, either way
    hflip: float = 0.0  # probability of a horizontal flip (off: radiographs have a left and a right)
    jitter_p: float = 0.8  # probability of the intensity jitter (brightness, contrast, gamma)
    brightness: float = 0.1  # additive shift drawn from [-brightness, brightness]
    contrast: float = 0.2  # contrast factor drawn from [1 - contrast, 1 + contrast], about the image mean
    gamma: tuple = (0.8, 1.25)  # gamma drawn log-uniformly from this range
    noise: float = 0.02  # Gaussian noise std drawn from [0, noise]


@dataclass
class AugmentParams:
    """The drawn parameters of one view."""

    top: int  # crop box in input pixels
    left: int
    height: int
    width: int
    angle: float = 0.0  # degrees, counter-clockwise
    flip: bool = False
    brightness: float = 0.0  # additive
    contrast: float = 1.0  # multiplicative, about the mean
    gamma: float = 1.0
    noise: float = 0.0  # Gaussian std

    @classmethod
    def identity(cls, height: int, width: int) -> "AugmentParams":
        return cls(top=0, left=0, height=height, width=width)


def _uniform(g: torch.Generator, lo: float, hi: float) -> float:
    return float(lo + (hi - lo) * torch.rand((), generator=g, dtype=torch.float64))


def _crop_box(cfg: AugmentConfig, h: int, w: int, g: torch.Generator) -> tuple:
    """(top, left, height, width) of a random crop with area and aspect ratio in range; after
    ten misses, the largest centred crop with the ratio clamped into range."""
    area = h * w
    log_lo, log_hi = math.log(cfg.crop_ratio[0]), math.log(cfg.crop_ratio[1])
    for _ in range(10):
        target = area * _uniform(g, *cfg.crop_scale)
        ratio = math.exp(_uniform(g, log_lo, log_hi))
        cw = int(round(math.sqrt(target * ratio)))
        ch = int(round(math.sqrt(target / ratio)))
        if 0 < cw <= w and 0 < ch <= h:
            top = int(torch.randint(0, h - ch + 1, (), generator=g))
            left = int(torch.randint(0, w - cw + 1, (), generator=g))
            return top, left, ch, cw
    ratio = w / h
    if ratio < cfg.crop_ratio[0]:
        cw, ch = w, int(round(w / cfg.crop_ratio[0]))
    elif ratio > cfg.crop_ratio[1]:
        ch, cw = h, int(round(h * cfg.crop_ratio[1]))
    else:
        cw, ch = w, h
    return (h - ch) // 2, (w - cw) // 2, ch, cw


def sample_params(cfg: AugmentConfig, height: int, width: int, generator: torch.Generator) -> AugmentParams:
    """Draw one view's parameters for an input of ``height`` x ``width`` pixels."""
    if not cfg.enabled:
        return AugmentParams.identity(height, width)
    g = generator
    top, left, ch, cw = _crop_box(cfg, height, width, g)
    p = AugmentParams(top=top, left=left, height=ch, width=cw)
    p.angle = _uniform(g, -cfg.rotation, cfg.rotation) if cfg.rotation > 0 else 0.0
    p.flip = bool(cfg.hflip > 0 and _uniform(g, 0.0, 1.0) < cfg.hflip)
    if cfg.jitter_p > 0 and _uniform(g, 0.0, 1.0) < cfg.jitter_p:
        p.brightness = _uniform(g, -cfg.brightness, cfg.brightness)
        p.contrast = _uniform(g, 1.0 - cfg.contrast, 1.0 + cfg.contrast)
        p.gamma = math.exp(_uniform(g, math.log(cfg.gamma[0]), math.log(cfg.gamma[1])))
    p.noise = _uniform(g, 0.0, cfg.noise) if cfg.noise > 0 else 0.0
    return p


def _as_chw(x: torch.Tensor) -> torch.Tensor:
    if x.dim() == 2:
        x = x.unsqueeze(0)  # (1, H, W)
    if x.dim() != 3:
        raise ValueError(f"expected an (H, W) or (C, H, W) image, got shape {tuple(x.shape)}")
    return x.float()


def resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """(C, H, W) -> (C, size, size), bilinear with antialiasing (area-weighted when shrinking)."""
    x = _as_chw(x)
    if x.shape[-2:] == (size, size):
        return x.clone()
    out = F.interpolate(x.unsqueeze(0), size=(size, size), mode="bilinear", align_corners=False,
                        antialias=True)  # (1, C, S, S)
    return out[0]


def _rotate(x: torch.Tensor, angle: float) -> torch.Tensor:
    """(C, S, S) rotated by ``angle`` degrees about the centre; zeros outside the image."""
    a = math.radians(angle)
    theta = torch.tensor([[math.cos(a), -math.sin(a), 0.0],
                          [math.sin(a), math.cos(a), 0.0]], dtype=x.dtype).unsqueeze(0)  # (1, 2, 3)
    grid = F.affine_grid(theta, [1, *x.shape], align_corners=False)  # (1, S, S, 2)
    return F.grid_sample(x.unsqueeze(0), grid, mode="bilinear", padding_mode="zeros", align_corners=False)[0]


def apply_params(x: torch.Tensor, p: AugmentParams, size: int, generator: torch.Generator | None = None
                 ) -> torch.Tensor:
    """Apply drawn parameters to an (H, W) or (C, H, W) image in [0, 1] -> (C, size, size) in [0, 1].

    generator: draws the noise (needed only when ``p.noise > 0``).
    """
    x = _as_chw(x)
    x = x[:, p.top:p.top + p.height, p.left:p.left + p.width]  # (C, h, w)
    x = resize(x, size)  # (C, S, S)
    if p.angle != 0.0:
        x = _rotate(x, p.angle)
    if p.flip:
        x = x.flip(-1)
    if p.brightness != 0.0 or p.contrast != 1.0 or p.gamma != 1.0:
        mean = x.mean()
        x = ((x - mean) * p.contrast + mean + p.brightness).clamp_(0.0, 1.0)
        if p.gamma != 1.0:
            x = x.pow(p.gamma)
    if p.noise > 0.0:
        if generator is None:
            raise ValueError("noise needs the generator the parameters were drawn from")
        x = x + p.noise * torch.randn(x.shape, generator=generator, dtype=x.dtype)
    return x.clamp_(0.0, 1.0)


def augment(x: torch.Tensor, cfg: AugmentConfig | None, size: int, generator: torch.Generator) -> torch.Tensor:
    """One random view: (H, W) or (C, H, W) in [0, 1] -> (C, size, size) in [0, 1]."""
    if cfg is None or not cfg.enabled:
        return eval_transform(x, size)
    h, w = _as_chw(x).shape[-2:]
    return apply_params(x, sample_params(cfg, h, w, generator), size, generator)


def eval_transform(x: torch.Tensor, size: int) -> torch.Tensor:
    """Resize only: (H, W) or (C, H, W) -> (C, size, size), clamped to [0, 1]."""
    return resize(x, size).clamp_(0.0, 1.0)
