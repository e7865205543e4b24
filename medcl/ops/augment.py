"""``medcl.ops.augment``: crop, rotate, flip, resize, tone, noise and normalise many views of a
batch of grayscale images in one fused op.

images (B, H, W) float32 (zero padded, values in [0, 1]) with valid sizes (B, 2) = (rows, cols);
params (B, V, 13) float64, per view (the layout :mod:`medcl.data.augment` draws):

    [0..5]  a00 a01 a02 a10 a11 a12: output pixel (column u, row v) reads the input at
            (x, y) = (a00 u + a01 v + a02, a10 u + a11 v + a12); pixel centres are integers
            in both images (so identity copies, flips and 90° turns are exact)
    [6] brightness (added)  [7] contrast (multiplies about [8] pivot)  [9] gamma
    [10] noise std  [11] blur sigma in output pixels (0: off)  [12] noise seed (integer < 2^53)

Per output pixel (the definition; ``augment_reference`` below is it in float64):

1. Antialiased sample. With s_u = |(a00, a10)| and s_v = |(a01, a11)| input pixels per output
   pixel, the view reads level L of the image's box pyramid (level l: 2×2 means of level l − 1
   over its valid region, which is ceil(rows / 2^l) × ceil(cols / 2^l); level 0 the image), the
   deepest with 2^L ≤ min(s_u, s_v) (L ≤ 12, and no deeper than the first 1 × 1 level), so
   that a view shrinking the image reads a level it shrinks by 1× to 2×. Coordinates map to level L as x_L = (x − (2^L − 1)/2) / 2^L.
   There, n_u = clamp(ceil(s_u / 2^L · (1 + 4σ)), 1, 32) taps along u (likewise n_v) at
   output offsets t_k = ((k + ½)/n − ½)(1 + 4σ), weights 1 (σ < 0.001: off) or
   exp(−t²/2σ²), normalised; each tap a bilinear sample at A_L·(u + t_k, v + t_l, 1) with its neighbours
   clamped into the level's valid region, reading 0 outside [−½, cols/2^L − ½] ×
   [−½, rows/2^L − ½]. This refines the plain area rule (n = ceil(s) taps on the image, O(s²)
   per pixel): a 1-px checkerboard shrunk 8× still gives 0.5; of a grating at 0.75 cycles per
   output pixel 1–15% of the amplitude aliases through (the plain rule: 26–31%, torch's
   antialiased bilinear resize: 8–9%); and a shrinking view costs 2×2 taps per pixel whatever
   the shrink (2048 → 224: 4 taps, not ~100).
2. x = clamp(sample, 0, 1); unless contrast = 1 and brightness = 0:
   x = clamp((x − pivot)·contrast + pivot + brightness, 0, 1) (computed as
   x·contrast + (pivot·(1 − contrast) + brightness)); unless gamma = 1: x = x^gamma.
3. Unless noise std = 0: x = clamp(x + std·z, 0, 1), z = sqrt(−2 ln u1) cos(2π u2) with u1, u2
   from an integer hash of (seed, v·out_w + u) — the same numbers on CPU, CUDA and here.
4. out = (x − mean) / std, cast to ``dtype`` (float16 or float32).

Kernels: csrc/ops/cpu/augment.cpp, csrc/ops/cuda/augment.cu (math in csrc/ops/augment_math.h).
No autograd: augmentation runs on data.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from medcl import _extension

PARAMS = ("a00", "a01", "a02", "a10", "a11", "a12", "brightness", "contrast", "pivot", "gamma", "noise",
          "blur", "seed")
A00, A01, A02, A10, A11, A12, BRIGHTNESS, CONTRAST, PIVOT, GAMMA, NOISE, BLUR, SEED = range(len(PARAMS))
MAX_TAPS, MAX_LEVEL, LEVEL_RATIO, MIN_BLUR = 32, 12, 1.0, 1e-3   # csrc/ops/augment_math.h
_M32 = 0xFFFFFFFF


def _mul32(x: torch.Tensor, c: int) -> torch.Tensor:
    """x·c mod 2^32 for int64 x in [0, 2^32), without int64 overflow."""
    return (x * (c & 0xFFFF) + (((x * (c >> 16)) & 0xFFFF) << 16)) & _M32


def _mix32(x: torch.Tensor) -> torch.Tensor:
    x = x ^ (x >> 16)
    x = _mul32(x, 0x7FEB352D)
    x = x ^ (x >> 15)
    x = _mul32(x, 0x846CA68B)
    return x ^ (x >> 16)


def noise_normals(seed: torch.Tensor, out_h: int, out_w: int) -> torch.Tensor:
    """The op's standard normals: seed (...) float64 → (..., out_h, out_w) float64."""
    s = torch.where((seed >= 0) & (seed < 2.0 ** 53), seed, 0.0).to(torch.int64)
    key = _mix32((_mix32((s & _M32) + 0x9E3779B9 & _M32) + (s >> 32)) & _M32)[..., None, None]
    i = torch.arange(out_h * out_w, device=seed.device, dtype=torch.int64).view(out_h, out_w)
    h1 = _mix32(key ^ _mix32(2 * i))
    h2 = _mix32(key ^ _mix32(2 * i + 1))
    u1 = ((h1 >> 8) + 1).double() * 2.0 ** -24
    u2 = (h2 >> 8).double() * 2.0 ** -24
    return torch.sqrt(-2.0 * torch.log(u1)) * torch.cos(2.0 * math.pi * u2)


def _pyramid(x: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, depth: int) -> list[torch.Tensor]:
    """[level 0 .. depth] of (B, H, W) float64: 2×2 means over each level's valid region."""
    levels = [x]
    for _ in range(depth):
        prev = levels[-1]
        B, Hs, Ws = prev.shape
        valid = ((torch.arange(Hs, device=x.device)[None, :, None] < rows[:, None, None])
                 & (torch.arange(Ws, device=x.device)[None, None, :] < cols[:, None, None]))  # (B, Hs, Ws)
        pad = (0, Ws % 2, 0, Hs % 2)
        total = F.pad(torch.where(valid, prev, 0.0), pad).view(B, (Hs + 1) // 2, 2, (Ws + 1) // 2, 2).sum((2, 4))
        count = F.pad(valid.double(), pad).view(B, (Hs + 1) // 2, 2, (Ws + 1) // 2, 2).sum((2, 4))
        levels.append(torch.where(count > 0, total / count.clamp_min(1.0), 0.0))
        rows, cols = (rows + 1) // 2, (cols + 1) // 2
    return levels


def _taps(n: torch.Tensor, span: torch.Tensor, sigma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per view (B, V): offsets t and normalised weights g of up to max(n) taps → (K, B, V) each."""
    k = torch.arange(int(n.max()), device=n.device, dtype=torch.float64)[:, None, None]    # (K, 1, 1)
    nd = n.double()
    t = ((k + 0.5) / nd - 0.5) * span
    t0 = torch.where(n % 2 == 0, 0.5 / nd * span, 0.0)                       # the tap nearest the centre
    g = torch.where(sigma > 0, torch.exp(-(t * t - t0 * t0) / (2.0 * sigma * sigma)), 1.0) * (k < nd)
    return t, g / g.sum(0)


def _bv(t: torch.Tensor) -> torch.Tensor:
    """(B, V) → (B, V, 1, 1): a per-view value against a view's pixels."""
    return t[..., None, None]


def _levels(s_min: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The pyramid level each view samples (B, V) int64, from its smallest output-pixel step
    ``s_min`` (B, V), and which images are empty (B, 1) (those sample level 0)."""
    extent = torch.maximum(rows, cols)                                         # (B, 1)
    L = torch.zeros(s_min.shape, dtype=torch.int64, device=s_min.device)
    for j in range(MAX_LEVEL):
        L = torch.where((L == j) & (2 ** j < extent) & (s_min >= LEVEL_RATIO * 2.0 ** (j + 1)), j + 1, L)
    empty = (rows == 0) | (cols == 0)                                          # (B, 1)
    return torch.where(empty, 0, L), empty


def _resample(images: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, p: torch.Tensor, out_h: int,
              out_w: int) -> torch.Tensor:
    """The geometric half of the op in float64: each view's affine map (params 0..5) sampled
    bilinearly from its pyramid level with Gaussian taps (BLUR and the map's step) → (B, V, oh, ow),
    before the clamp to [0, 1]. rows, cols (B, 1): each image's valid region."""
    B, dev = images.shape[0], images.device
    a = [p[..., j] for j in range(6)]                                          # (B, V) each
    s_u, s_v = torch.sqrt(a[0] * a[0] + a[3] * a[3]), torch.sqrt(a[1] * a[1] + a[4] * a[4])
    L, empty = _levels(torch.minimum(s_u, s_v), rows, cols)
    scale = torch.pow(2.0, -L.double())
    centre = 0.5 * (torch.pow(2.0, L.double()) - 1.0)
    al = [a[0] * scale, a[1] * scale, (a[2] - centre) * scale, a[3] * scale, a[4] * scale, (a[5] - centre) * scale]
    xmax, ymax = cols.double() * scale - 0.5, rows.double() * scale - 0.5
    rows_l, cols_l = (rows + (1 << L) - 1) >> L, (cols + (1 << L) - 1) >> L    # (B, V) valid region of level L
    sigma = torch.where(p[..., BLUR] >= MIN_BLUR, p[..., BLUR], 0.0)
    span = 4.0 * sigma + 1.0

    def count(m):
        return torch.where(m > 1, torch.where(m >= MAX_TAPS, float(MAX_TAPS), torch.ceil(m)), 1.0).to(torch.int64)

    tu, gu = _taps(count(s_u * scale * span), span, sigma)                     # (Ku, B, V)
    tv, gv = _taps(count(s_v * scale * span), span, sigma)
    levels = _pyramid(images.to(torch.float64), rows[:, 0], cols[:, 0], int(L.max()))
    flat = torch.cat([lev.reshape(-1) for lev in levels] + [torch.zeros(1, dtype=torch.float64, device=dev)])
    sizes_l = torch.tensor([[lev.shape[1], lev.shape[2]] for lev in levels], device=dev)          # (levels, 2)
    offsets = torch.tensor([0] + [lev.numel() for lev in levels], device=dev).cumsum(0)[:-1]
    H_l, W_l = sizes_l[L, 0], sizes_l[L, 1]                                    # (B, V)
    base = offsets[L] + torch.arange(B, device=dev)[:, None] * H_l * W_l
    u = torch.arange(out_w, device=dev, dtype=torch.float64)
    v = torch.arange(out_h, device=dev, dtype=torch.float64)[:, None]
    cx = _bv(al[0]) * u + _bv(al[1]) * v + _bv(al[2])                             # (B, V, oh, ow) centres
    cy = _bv(al[3]) * u + _bv(al[4]) * v + _bv(al[5])
    xhi, yhi = _bv((cols_l - 2).clamp_min(0)).double(), _bv((rows_l - 2).clamp_min(0)).double()
    acc = torch.zeros(B, p.shape[1], out_h, out_w, dtype=torch.float64, device=dev)
    for l in range(tv.shape[0]):
        for k in range(tu.shape[0]):
            w = gu[k] * gv[l]
            x = cx + _bv(al[0] * tu[k] + al[1] * tv[l])
            y = cy + _bv(al[3] * tu[k] + al[4] * tv[l])
            inside = (x >= -0.5) & (x <= _bv(xmax)) & (y >= -0.5) & (y <= _bv(ymax)) & ~_bv(empty)
            x0, y0 = torch.minimum(x.floor().clamp_min(0), xhi), torch.minimum(y.floor().clamp_min(0), yhi)
            fx, fy = (x - x0).clamp(0, 1), (y - y0).clamp(0, 1)
            i00 = _bv(base) + y0.long() * _bv(W_l) + x0.long()
            dx, dy = _bv((cols_l > 1).long()), _bv(torch.where(rows_l > 1, W_l, 0))
            i00 = torch.where(inside, i00, flat.numel() - 1)                   # outside: the spare 0
            dx, dy = dx * inside, dy * inside
            top = flat[i00] * (1 - fx) + flat[i00 + dx] * fx
            bot = flat[i00 + dy] * (1 - fx) + flat[i00 + dy + dx] * fx
            acc = acc + _bv(w) * torch.where(inside, top * (1 - fy) + bot * fy, 0.0)
    return acc


def _photometric(x: torch.Tensor, p: torch.Tensor, out_h: int, out_w: int) -> torch.Tensor:
    """The intensity half in float64 on (B, V, oh, ow) values in [0, 1]: contrast about the pivot
    and brightness, gamma, then Gaussian noise from each view's SEED, each clamped to [0, 1]."""
    c, bright, pivot, gamma, noise = (_bv(p[..., j]) for j in (CONTRAST, BRIGHTNESS, PIVOT, GAMMA, NOISE))
    x = torch.where((c == 1) & (bright == 0), x, (x * c + (pivot * (1 - c) + bright)).clamp(0, 1))
    x = torch.where(gamma == 1, x, torch.where(x > 0, x.clamp_min(1e-300).pow(gamma), 0.0))
    z = noise_normals(p[..., SEED], out_h, out_w)                              # (B, V, oh, ow)
    return torch.where(noise == 0, x, (x + noise * z).clamp(0, 1))


def augment_reference(images: torch.Tensor, sizes: torch.Tensor, params: torch.Tensor, out_h: int, out_w: int,
                      mean: float, std: float, dtype: torch.dtype) -> torch.Tensor:
    """The op's definition in float64 PyTorch. Arguments as ``torch.ops.medcl.augment``."""
    _, H, W = images.shape
    p = params.to(torch.float64)                                               # (B, V, P)
    rows = sizes[:, 0].to(torch.int64).clamp(0, H)[:, None]                    # (B, 1)
    cols = sizes[:, 1].to(torch.int64).clamp(0, W)[:, None]
    x = _resample(images, rows, cols, p, out_h, out_w).clamp(0, 1)             # (B, V, oh, ow)
    return ((_photometric(x, p, out_h, out_w) - mean) / std).to(dtype)


def _pair(out_size) -> tuple[int, int]:
    if isinstance(out_size, int):
        return out_size, out_size
    h, w = out_size
    return int(h), int(w)


def augment(images: torch.Tensor, params: torch.Tensor, *, out_size, views: int = 2,
            dtype: torch.dtype = torch.float16, sizes: torch.Tensor | None = None, mean: float = 0.0,
            std: float = 1.0) -> torch.Tensor:
    """``views`` augmented views of each image: (B, H, W) → (B, views, out_h, out_w) ``dtype``.

    params: (B, views, 13) float64 (module docstring; :func:`medcl.data.augment.sample_views`
    draws them); out_size: int or (h, w); sizes: (B, 2) valid (rows, cols), default the full
    H × W; mean, std: the output is (value − mean) / std.
    """
    if images.dim() != 3:
        raise ValueError(f"augment: images must be (B, H, W), got shape {tuple(images.shape)}")
    B, H, W = images.shape
    out_h, out_w = _pair(out_size)
    if out_h < 1 or out_w < 1:
        raise ValueError(f"augment: out_size must be positive, got {out_size}")
    dev = images.device
    params = torch.as_tensor(params, dtype=torch.float64, device=dev)
    if tuple(params.shape) != (B, views, len(PARAMS)):
        raise ValueError(f"augment: params must be (B, views, 13) = ({B}, {views}, 13), got {tuple(params.shape)}")
    if sizes is None:
        sizes = torch.tensor([H, W], dtype=torch.int64, device=dev).expand(B, 2)
    sizes = torch.as_tensor(sizes, dtype=torch.int64, device=dev)
    if dtype not in (torch.float16, torch.float32):
        raise ValueError(f"augment: dtype must be torch.float16 or torch.float32, got {dtype}")
    if not std or not math.isfinite(std) or not math.isfinite(mean):
        raise ValueError(f"augment: mean and std must be finite and std non-zero, got {mean}, {std}")
    images = images.to(torch.float32)
    if _extension.use_kernel("augment", dev):
        return torch.ops.medcl.augment(images, sizes, params, out_h, out_w, float(mean), float(std), dtype)
    return augment_reference(images, sizes, params, out_h, out_w, float(mean), float(std), dtype)


def _register() -> None:
    if not _extension.state().loaded or not hasattr(torch.ops.medcl, "augment"):
        return

    @torch.library.register_fake("medcl::augment")
    def _(images, sizes, params, out_h, out_w, mean, std, dtype):
        torch._check(images.dim() == 3 and params.dim() == 3 and params.shape[2] == len(PARAMS))
        return images.new_empty((images.shape[0], params.shape[1], out_h, out_w), dtype=dtype)


_register()
