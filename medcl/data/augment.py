"""Augmentation parameters for radiographs, drawn from an explicit generator, applied by the
fused ``medcl.ops.augment`` op (C++ on CPU, CUDA on GPU).

    g = torch.Generator().manual_seed(seed)
    params = sample_views(AugmentConfig(), sizes, 224, 2, g)   # (B, 2, 13) op parameters
    plain = resize_views(sizes, (192, 256))                     # (B, 1, 13) resize only, to 192 × 256
    views = medcl.ops.augment(images, params, out_size=224, views=2, sizes=sizes)
    ViewParams.from_rows(params).contrast                       # (B, 2): the rows' fields by name

A view: random resized crop (area scale, aspect ratio in pixels; its position is the
translation) → rotation about the view's centre → optional horizontal flip, composed into one
affine map from output to input pixels and sampled with antialiasing → brightness/contrast
(about 0.5) and gamma → Gaussian noise (seeded per view) → clamp to [0, 1]. Crops are drawn
from the image, or with ``fit="pad"`` from the image letterboxed into a square; the resize-only
view fits a non-square image by padding, cropping or squashing it (``fit``, see
:mod:`medcl.data.fit`). Outputs are square (an int) or (h, w); a crop's drawn aspect ratio is
relative to the output's, so a view is stretched by that ratio only. Parameters are drawn first (:func:`sample_params`,
:func:`sample_views`) and applied after, so :meth:`AugmentParams.fitted` parameters give
exactly the resized image. Every random number comes from the generator passed in; nothing
touches the global RNG.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch

from medcl.config import option
from medcl.data.fit import DEFAULT_FIT, crop_frame, fit_box
from medcl.data.geometry import ViewParams, output_shape, view_affine
from medcl.ops.augment import PARAMS


@dataclass
class AugmentConfig:
    """Augmentation for one view; the defaults suit chest radiographs."""

    enabled: bool = option(True, "Augment the views (--no-augment: resized only).", flag="augment")
    crop_scale: tuple = option((0.5, 1.0), "Random crop area as a fraction of the image, LOW,HIGH.", parse="pair")
    crop_ratio: tuple = option((3 / 4, 4 / 3), "Crop aspect ratio (width/height) range.", parse="pair",
                               shown="0.75,1.333")
    rotation: float = option(10.0, "Largest rotation in degrees, either way.")
    hflip: float = option(0.0, "Probability of a horizontal flip (0: radiographs have a left and a right).")
    jitter_p: float = option(0.8, "Probability of the brightness/contrast/gamma jitter.")
    brightness: float = option(0.1, "Largest additive brightness shift.")
    contrast: float = option(0.2, "Contrast factor range 1 ± this (about the image mean).")
    gamma: tuple = option((0.8, 1.25), "Gamma range LOW,HIGH, drawn log-uniformly.", parse="pair")
    noise: float = option(0.02, "Largest Gaussian noise std (drawn from [0, this]).")


@dataclass
class AugmentParams:
    """The drawn parameters of one view."""

    top: float  # crop box in input pixels (with fit="pad" it may reach past the image: zeros there)
    left: float
    height: float
    width: float
    angle: float = 0.0  # degrees, counter-clockwise
    flip: bool = False
    brightness: float = 0.0  # additive
    contrast: float = 1.0  # multiplicative, about the mean
    gamma: float = 1.0
    noise: float = 0.0  # Gaussian std

    @classmethod
    def identity(cls, height: int, width: int) -> "AugmentParams":
        return cls(top=0, left=0, height=height, width=width)

    @classmethod
    def fitted(cls, height: int, width: int, fit: str = DEFAULT_FIT, aspect: float = 1.0) -> "AugmentParams":
        """The whole image fitted to an output of ``aspect`` (width / height; 1: square), as
        medcl.data.fit.fit_box says."""
        top, left, h, w = fit_box(height, width, fit, aspect)
        return cls(top=top, left=left, height=h, width=w)


# AugmentConfig fields the CLI exposes (medcl pretrain / medcl preview: --crop-scale, --rotation, ...).
OPTIONS = tuple(f.name for f in fields(AugmentConfig) if f.name != "enabled")  # the settings besides the switch


def augment_config(enabled: bool = True, **fields) -> AugmentConfig:
    """An AugmentConfig from option values (None: the default), ranges checked (ConfigError)."""
    from medcl.errors import ConfigError

    given = {k: (tuple(v) if isinstance(v, list) else v) for k, v in fields.items() if v is not None}
    unknown = sorted(set(given) - set(OPTIONS))
    if unknown:
        raise ConfigError(f"unknown augmentation setting {', '.join(unknown)}", fix=f"use {', '.join(OPTIONS)}")
    cfg = AugmentConfig(enabled=bool(enabled), **given)
    lo, hi = cfg.crop_scale
    if not 0 < lo <= hi <= 1:
        raise ConfigError(f"crop scale {lo},{hi} must satisfy 0 < low <= high <= 1")
    if not 0 < cfg.crop_ratio[0] <= cfg.crop_ratio[1] or not 0 < cfg.gamma[0] <= cfg.gamma[1]:
        raise ConfigError("crop ratio and gamma ranges need 0 < low <= high")
    for name in ("hflip", "jitter_p"):
        if not 0 <= getattr(cfg, name) <= 1:
            raise ConfigError(f"{name.replace('_', '-')} {getattr(cfg, name)} is a probability (0 to 1)")
    for name in ("rotation", "brightness", "contrast", "noise"):
        if getattr(cfg, name) < 0:
            raise ConfigError(f"{name} {getattr(cfg, name)} must be >= 0")
    return cfg


def _uniform(g: torch.Generator, lo: float, hi: float) -> float:
    return float(lo + (hi - lo) * torch.rand((), generator=g, dtype=torch.float64))


def _crop_box(cfg: AugmentConfig, h: int, w: int, g: torch.Generator, aspect: float = 1.0) -> tuple:
    """(top, left, height, width) of a random crop with area and aspect ratio (× ``aspect``,
    the output's) in range; after ten misses, the largest centred crop with the ratio clamped
    into range."""
    area = h * w
    lo_ratio, hi_ratio = cfg.crop_ratio[0] * aspect, cfg.crop_ratio[1] * aspect
    log_lo, log_hi = math.log(lo_ratio), math.log(hi_ratio)
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
    if ratio < lo_ratio:
        cw, ch = w, int(round(w / lo_ratio))
    elif ratio > hi_ratio:
        ch, cw = h, int(round(h * hi_ratio))
    else:
        cw, ch = w, h
    return (h - ch) // 2, (w - cw) // 2, ch, cw


def sample_params(cfg: AugmentConfig, height: int, width: int, generator: torch.Generator,
                  fit: str = DEFAULT_FIT, aspect: float = 1.0) -> AugmentParams:
    """Draw one view's parameters for an input of ``height`` x ``width`` pixels and an output
    of ``aspect`` (width / height; 1: square); the crop box comes from
    :func:`medcl.data.fit.crop_frame` (``fit``), its aspect ratio in pixels drawn from
    ``cfg.crop_ratio`` × ``aspect`` (the view is stretched by the drawn ratio only)."""
    if not cfg.enabled:
        return AugmentParams.fitted(height, width, fit, aspect)
    g = generator
    frame_top, frame_left, fh, fw = crop_frame(height, width, fit, aspect)
    top, left, ch, cw = _crop_box(cfg, fh, fw, g, aspect)
    p = AugmentParams(top=frame_top + top, left=frame_left + left, height=ch, width=cw)
    p.angle = _uniform(g, -cfg.rotation, cfg.rotation) if cfg.rotation > 0 else 0.0
    p.flip = bool(cfg.hflip > 0 and _uniform(g, 0.0, 1.0) < cfg.hflip)
    if cfg.jitter_p > 0 and _uniform(g, 0.0, 1.0) < cfg.jitter_p:
        p.brightness = _uniform(g, -cfg.brightness, cfg.brightness)
        p.contrast = _uniform(g, 1.0 - cfg.contrast, 1.0 + cfg.contrast)
        p.gamma = math.exp(_uniform(g, math.log(cfg.gamma[0]), math.log(cfg.gamma[1])))
    p.noise = _uniform(g, 0.0, cfg.noise) if cfg.noise > 0 else 0.0
    return p


# --- parameters of medcl.ops.augment --------------------------------------------------------
# One row per view, its fields named by medcl.data.geometry.ViewParams (the op's PARAMS): the
# crop, rotation and flip composed into one affine map from output to input pixels, then the
# tone, noise and its seed.
SEED_RANGE = 2 ** 52


def view_row(p: AugmentParams, out_shape, seed: int = 0, pivot: float = 0.5) -> ViewParams:
    """AugmentParams of one view → its op parameters (floats) for an output of ``out_shape``
    (an int: square, or (h, w)).

    Output pixel (u, v) is flipped (u about the centre), rotated by ``p.angle`` about the view's
    centre, then scaled onto the crop box (:func:`medcl.data.geometry.view_affine`). The whole
    image at its own size maps u → u exactly.
    """
    affine = view_affine(p.top, p.left, p.height, p.width, p.angle, p.flip, out_shape=out_shape)
    return ViewParams.of(affine, brightness=p.brightness, contrast=p.contrast, pivot=pivot, gamma=p.gamma,
                         noise=p.noise, seed=float(seed))


def _stack(rows: list, images: int, views: int) -> torch.Tensor:
    """ViewParams rows, image by image and view by view → (images, views, fields) float64."""
    return torch.tensor(rows, dtype=torch.float64).view(images, views, len(PARAMS))


def _aspect(out_shape) -> float:
    h, w = output_shape(out_shape)
    return 1.0 if h == w else w / h


def sample_views(cfg: AugmentConfig, sizes: torch.Tensor, out_size, views: int,
                 generator: torch.Generator, fit: str = DEFAULT_FIT) -> torch.Tensor:
    """(B, views, 13) float64 op parameters of random views of images of ``sizes`` (B, 2) (rows,
    cols) onto outputs of ``out_size`` (int: square, or (h, w)), drawn from ``generator`` image
    by image, view by view (the draws of :func:`sample_params`, then the noise seed)."""
    rows, aspect = [], _aspect(out_size)
    for h, w in sizes.tolist():
        for _ in range(views):
            p = sample_params(cfg, int(h), int(w), generator, fit, aspect)
            seed = int(torch.randint(0, SEED_RANGE, (), generator=generator)) if p.noise > 0 else 0
            rows.append(view_row(p, out_size, seed))
    return _stack(rows, len(sizes), views)


def resize_views(sizes: torch.Tensor, out_size, fit: str = DEFAULT_FIT) -> torch.Tensor:
    """(B, 1, 13) float64: the eval transform, each whole image fitted to ``out_size`` (int:
    square, or (h, w); ``fit``: pad, crop or squash an image of another shape; medcl.data.fit)."""
    aspect = _aspect(out_size)
    rows = [view_row(AugmentParams.fitted(int(h), int(w), fit, aspect), out_size) for h, w in sizes.tolist()]
    return _stack(rows, len(rows), 1)
