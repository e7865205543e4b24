"""``medcl.ops.intensity``: DICOM modality LUT → VOI window → MONOCHROME1 inversion.

On a batch of integer stored-value images with per-image parameters (DICOM PS3.3 C.11):

    x = slope · stored + intercept                         (modality LUT: rescale)
    LINEAR        c' = c − ½, w' = w − 1;  y = 0 if x ≤ c' − w'/2, 1 if x > c' + w'/2,
                                             else (x − c')/w' + ½
    LINEAR_EXACT  as LINEAR with c' = c, w' = w
    SIGMOID       y = 1 / (1 + exp(−4 (x − c) / w))
    MONOCHROME1   y ← 1 − y   (after windowing)

The VOI output is in [0, 1]: PS3.3's output range (pydicom's ``y_min..y_max``) mapped to
0..1. With ``function="none"`` the op returns modality values and ignores ``invert``.
Kernels: csrc/ops/cpu/intensity.cpp, csrc/ops/cuda/intensity.cu; this file holds the
reference (the definition, fallback and test oracle) and the fake kernel.
"""
from __future__ import annotations

from typing import Sequence, Union

import torch

from medcl import _extension

# Codes of the `function` tensor (csrc/ops/intensity_math.h: VoiFunction).
FUNCTIONS = {"none": 0, "linear": 1, "linear_exact": 2, "sigmoid": 3}

Scalars = Union[float, Sequence[float], torch.Tensor]


def intensity_reference(pixels: torch.Tensor, params: torch.Tensor, function: torch.Tensor,
                        invert: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The op's definition in float64 PyTorch. Arguments as ``torch.ops.medcl.intensity``."""
    B = pixels.shape[0]
    bshape = (B,) + (1,) * (pixels.dim() - 1)                   # broadcast (B,) over pixels
    slope, intercept, center, width = (params[:, k].to(torch.float64).view(bshape) for k in range(4))
    fn = function.view(bshape)
    x = pixels.to(torch.float64) * slope + intercept             # (B, ...) modality values
    linear = fn == FUNCTIONS["linear"]
    c = torch.where(linear, center - 0.5, center)
    w = torch.where(linear, width - 1.0, width)
    ramp = (x - c) / w + 0.5                                     # inf/nan where w = 0: masked below
    y = torch.where(x <= c - w / 2, 0.0, torch.where(x > c + w / 2, 1.0, ramp))
    sigmoid = 1.0 / (1.0 + torch.exp(-4.0 * (x - center) / width))
    y = torch.where(fn == FUNCTIONS["sigmoid"], sigmoid, y)
    y = torch.where(invert.view(bshape), 1.0 - y, y)
    y = torch.where(fn == FUNCTIONS["none"], x, y)
    return y.to(dtype)


def _per_image(value, B: int, name: str, dtype: torch.dtype) -> torch.Tensor:
    t = torch.as_tensor(value, dtype=dtype).flatten()
    if t.numel() == 1:
        return t.expand(B).clone()
    if t.numel() != B:
        raise ValueError(f"intensity: {name} must be a scalar or have one value per image ({B}), got {t.numel()}")
    return t


def pack_params(B: int, *, slope: Scalars = 1.0, intercept: Scalars = 0.0, center: Scalars | None = None,
                width: Scalars | None = None, function: str | Sequence[str] = "linear",
                invert: bool | Sequence[bool] = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-image parameters → the op's (params (B, 4) f64, function (B,) i32, invert (B,) bool)."""
    names = [function] * B if isinstance(function, str) else list(function)
    if len(names) != B:
        raise ValueError(f"intensity: function must be one name or one per image ({B}), got {len(names)}")
    try:
        codes = torch.tensor([FUNCTIONS[n.lower()] for n in names], dtype=torch.int32)
    except KeyError as exc:
        raise ValueError(f"intensity: unknown VOI function {exc.args[0]!r}; use one of {sorted(FUNCTIONS)}") from None
    windowed = codes != FUNCTIONS["none"]
    if bool(windowed.any()) and (center is None or width is None):
        raise ValueError("intensity: a VOI function needs center and width (or use function='none')")
    c = _per_image(0.0 if center is None else center, B, "center", torch.float64)
    w = _per_image(1.0 if width is None else width, B, "width", torch.float64)
    min_width = torch.where(codes == FUNCTIONS["linear"], 1.0, 0.0).to(torch.float64)
    bad = windowed & ~((w >= min_width) & ((w > 0) | (codes == FUNCTIONS["linear"])) & torch.isfinite(w) & torch.isfinite(c))
    if bool(bad.any()):
        i = int(bad.nonzero()[0])
        raise ValueError(f"intensity: image {i}: window width {float(w[i])} is invalid "
                         "(LINEAR needs width ≥ 1, LINEAR_EXACT and SIGMOID width > 0)")
    params = torch.stack([_per_image(slope, B, "slope", torch.float64),
                          _per_image(intercept, B, "intercept", torch.float64), c, w], dim=1)
    inv = _per_image(invert, B, "invert", torch.bool)
    return params, codes, inv


def intensity(pixels: torch.Tensor, *, slope: Scalars = 1.0, intercept: Scalars = 0.0,
              center: Scalars | None = None, width: Scalars | None = None,
              function: str | Sequence[str] = "linear", invert: bool | Sequence[bool] = False,
              dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Rescale, window and invert a batch of integer images.

    pixels: (B, ...) integer stored values. Every other argument is a scalar or one value per
    image; ``function`` is "linear", "linear_exact", "sigmoid" or "none" (modality values only).
    Returns float32 (or ``dtype``) of pixels' shape, in [0, 1] where a VOI function applies.
    """
    if pixels.dim() == 0:
        raise ValueError("intensity: pixels must be (B, ...), got a scalar")
    params, codes, inv = pack_params(pixels.shape[0], slope=slope, intercept=intercept, center=center,
                                     width=width, function=function, invert=invert)
    dev = pixels.device
    params, codes, inv = params.to(dev), codes.to(dev), inv.to(dev)
    if _extension.use_kernel("intensity", dev):
        return torch.ops.medcl.intensity(pixels, params, codes, inv, dtype)
    return intensity_reference(pixels, params, codes, inv, dtype)


def _register() -> None:
    if not _extension.state().loaded or not hasattr(torch.ops.medcl, "intensity"):
        return

    @torch.library.register_fake("medcl::intensity")
    def _(pixels, params, function, invert, dtype):
        torch._check(params.shape == (pixels.shape[0], 4))
        return pixels.new_empty(pixels.shape, dtype=dtype)


_register()
