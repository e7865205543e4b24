"""medcl.ops.augment: kernels against the float64 reference on random views, exact identities,
crops, flips and turns, antialiasing, blur, noise, padding, opcheck, CPU vs CUDA."""
from __future__ import annotations

import math
import sys

import pytest
import torch
import torch.nn.functional as F

from medcl import _extension
from medcl.ops import augment, augment_reference

A = sys.modules["medcl.ops.augment"]          # the module (medcl.ops.augment is the function)
needs_ext = pytest.mark.skipif(not _extension.state().loaded, reason="medcl._C not built")


def _identity(B, V=1):
    p = torch.zeros(B, V, 13, dtype=torch.float64)
    p[..., A.A00] = p[..., A.A11] = p[..., A.CONTRAST] = p[..., A.GAMMA] = 1.0
    p[..., A.PIVOT] = 0.5
    return p


def _view_params(gen, scale, aspect, angle, centre, out, *, tone_p, effect_p):
    """(B, V, 13) views from their geometry (B, V): input pixels per output pixel, aspect, angle,
    centre (B, V, 2) rows, cols; random flips, tone (probability tone_p), gamma and noise
    (effect_p each), some blur, a noise seed."""
    B, V = scale.shape
    u = lambda *s: torch.rand(*s, generator=gen, dtype=torch.float64)  # noqa: E731
    flip = torch.where(u(B, V) < 0.5, -1.0, 1.0)
    su, sv = scale * aspect, scale / aspect
    c, s = torch.cos(angle), torch.sin(angle)
    p = _identity(B, V)
    p[..., A.A00], p[..., A.A01] = c * su * flip, -s * sv
    p[..., A.A10], p[..., A.A11] = s * su * flip, c * sv
    oh, ow = out
    p[..., A.A02] = centre[..., 1] - p[..., A.A00] * (ow - 1) / 2 - p[..., A.A01] * (oh - 1) / 2
    p[..., A.A12] = centre[..., 0] - p[..., A.A10] * (ow - 1) / 2 - p[..., A.A11] * (oh - 1) / 2
    tone = u(B, V) < tone_p
    p[..., A.BRIGHTNESS] = torch.where(tone, (u(B, V) - 0.5) * 0.4, 0.0)
    p[..., A.CONTRAST] = torch.where(tone, 0.6 + u(B, V) * 0.8, 1.0)
    p[..., A.PIVOT] = u(B, V)
    p[..., A.GAMMA] = torch.where(u(B, V) < effect_p, torch.exp((u(B, V) - 0.5) * 1.4), 1.0)
    p[..., A.NOISE] = torch.where(u(B, V) < effect_p, u(B, V) * 0.1, 0.0)
    p[..., A.BLUR] = torch.where(u(B, V) < 0.25, u(B, V) * 1.5, 0.0)
    p[..., A.SEED] = torch.randint(0, 2**53, (B, V), generator=gen).double()
    return p


def _case(gen, B=3, V=4, H=41, W=57, out=(19, 23)):
    """Padded images of mixed sizes (junk outside the valid region) and random views: scales
    0.3x to 12x (pyramid levels 0 to 3), any angle, flips, tone, gamma, noise, some blur."""
    images = torch.rand(B, H, W, generator=gen) * 5 - 2                  # junk: must never be read
    sizes = torch.stack([torch.randint(1, H + 1, (B,), generator=gen), torch.randint(1, W + 1, (B,), generator=gen)], 1)
    sizes[0] = torch.tensor([H, W])
    for b, (r, c) in enumerate(sizes.tolist()):
        images[b, :r, :c] = torch.rand(r, c, generator=gen)
    u = lambda *s: torch.rand(*s, generator=gen, dtype=torch.float64)  # noqa: E731
    scale = torch.exp(u(B, V) * math.log(40.0)) * 0.3                     # (B, V) input px per output px
    aspect = torch.exp((u(B, V) - 0.5) * 0.6)
    angle = u(B, V) * 2 * math.pi
    angle[:, 0] = (torch.randint(0, 4, (B,), generator=gen) * (math.pi / 2)).double()   # axis-aligned views too
    centre = sizes.double()[:, None, :] * (u(B, V, 2) * 1.4 - 0.2)        # (B, V, 2) rows, cols; some outside
    p = _view_params(gen, scale, aspect, angle, centre, out, tone_p=0.7, effect_p=0.6)
    return images, sizes, p


def _op(device, images, sizes, p, out, mean=0.0, std=1.0, dtype=torch.float32):
    oh, ow = (out, out) if isinstance(out, int) else out
    return torch.ops.medcl.augment(images.to(device), sizes.to(device), p.to(device), oh, ow, mean, std, dtype).cpu()


@needs_ext
@pytest.mark.parametrize("shape", [(3, 4, 41, 57, (19, 23)), (2, 3, 130, 90, (16, 12)), (1, 2, 9, 300, (40, 7))])
def test_kernel_matches_float64_reference(device, gen, shape):
    B, V, H, W, out = shape
    images, sizes, p = _case(gen, B, V, H, W, out)
    mean, std = float(torch.rand((), generator=gen)), 0.2 + float(torch.rand((), generator=gen))
    want = augment_reference(images, sizes, p, *out, mean, std, torch.float64)
    got = _op(device, images, sizes, p, out, mean, std)
    assert got.shape == (B, V, *out) and got.dtype == torch.float32
    err = ((got.double() - want).abs() / want.abs().clamp_min(1.0)).max()
    assert float(err) < 1e-5, (gen.initial_seed(), float(err))
    half = _op(device, images, sizes, p, out, mean, std, torch.float16)
    assert half.dtype == torch.float16 and torch.equal(half, got.half())             # fp32 math, one RTNE cast
    assert float((half.double() - want).abs().max()) <= float(want.abs().max()) * 2**-11 + 1e-5


@needs_ext
def test_identity_copies_exactly_and_padding_reads_zero(device, gen):
    images, sizes, _ = _case(gen, 3, 1, 33, 47)
    out = _op(device, images, sizes, _identity(3), (33, 47))[:, 0]
    for b, (r, c) in enumerate(sizes.tolist()):
        assert torch.equal(out[b, :r, :c], images[b, :r, :c])
        assert not out[b, r:].any() and not out[b, :, c:].any()


@needs_ext
def test_flips_and_quarter_turns_are_exact(device, gen):
    H, W = 23, 31
    img = torch.rand(1, H, W, generator=gen)
    p = _identity(1, 3)
    p[0, 0, [A.A00, A.A02]] = torch.tensor([-1.0, W - 1.0], dtype=torch.float64)                  # horizontal flip
    p[0, 1, [A.A11, A.A12]] = torch.tensor([-1.0, H - 1.0], dtype=torch.float64)                  # vertical flip
    p[0, 2, [A.A00, A.A11]] = -1.0                                          # half turn
    p[0, 2, [A.A02, A.A12]] = torch.tensor([W - 1.0, H - 1.0], dtype=torch.float64)
    out = _op(device, img, torch.tensor([[H, W]]), p, (H, W))[0]
    assert torch.equal(out[0], img[0].flip(-1)) and torch.equal(out[1], img[0].flip(0))
    assert torch.equal(out[2], img[0].flip(0, 1))
    q = torch.zeros(1, 1, 13, dtype=torch.float64)                           # quarter turn: (W, H) output
    q[0, 0, [A.A01, A.A02, A.A10, A.CONTRAST, A.GAMMA]] = torch.tensor([-1.0, W - 1.0, 1.0, 1.0, 1.0], dtype=torch.float64)
    turned = _op(device, img, torch.tensor([[H, W]]), q, (W, H), dtype=torch.float16)[0, 0]
    assert torch.equal(turned, torch.rot90(img[0], 1, (0, 1)).half())


@needs_ext
def test_known_crops(device, gen):
    img = torch.rand(1, 60, 80, generator=gen)
    p = _identity(1, 2)
    p[0, 0, [A.A02, A.A12]] = torch.tensor([17.0, 9.0], dtype=torch.float64)                      # 20 x 30 crop at (9, 17)
    p[0, 1, [A.A00, A.A11]] = 2.0                                           # the 40 x 60 crop at (10, 12),
    p[0, 1, [A.A02, A.A12]] = torch.tensor([12.5, 10.5], dtype=torch.float64)                     # shrunk 2x: its 2x2 means
    out = _op(device, img, torch.tensor([[60, 80]]), p, (20, 30))[0]
    assert torch.equal(out[0], img[0, 9:29, 17:47])
    torch.testing.assert_close(out[1], F.avg_pool2d(img[:, 10:50, 12:72], 2)[0], rtol=0, atol=1e-6)


@needs_ext
@pytest.mark.parametrize("angle", [0.0, 30.0])
def test_antialiasing_of_a_checkerboard(device, angle):
    """A 1-px checkerboard shrunk 8x is mid-grey. A single bilinear warp through pixel centres
    (x = 8u + 4) would read one colour: img[4::8, 4::8] is constant 0 or 1."""
    n = 256
    board = ((torch.arange(n)[:, None] + torch.arange(n)[None, :]) % 2).float()[None]   # (1, n, n)
    assert board[0, 4::8, 4::8].unique().numel() == 1
    a = math.radians(angle)
    p = _identity(1)
    p[0, 0, [A.A00, A.A01, A.A10, A.A11]] = 8 * torch.tensor([math.cos(a), -math.sin(a), math.sin(a), math.cos(a)],
                                                            dtype=torch.float64)
    c = (n - 1) / 2 + (0.5 if angle == 0 else 0.0)
    p[0, 0, A.A02] = c - (p[0, 0, A.A00] + p[0, 0, A.A01]) * 15.5             # output centre (15.5, 15.5)
    p[0, 0, A.A12] = c - (p[0, 0, A.A10] + p[0, 0, A.A11]) * 15.5
    out = _op(device, board, torch.tensor([[n, n]]), p, 32)[0, 0]
    inner = out[6:-6, 6:-6] if angle else out
    torch.testing.assert_close(inner, torch.full_like(inner, 0.5), rtol=0, atol=1e-6)


@needs_ext
def test_blur_is_a_gaussian_of_sigma_output_pixels(device):
    img = torch.zeros(1, 21, 21)
    img[0, 10, 10] = 1.0
    p = _identity(1)
    p[0, 0, A.BLUR] = 1.0                                                   # 5 taps per axis at -2..2 px
    out = _op(device, img, torch.tensor([[21, 21]]), p, 21)[0, 0]
    g = torch.exp(-torch.arange(-2.0, 3.0) ** 2 / 2)
    want = torch.zeros(21, 21)
    want[8:13, 8:13] = torch.outer(g, g) / g.sum() ** 2
    torch.testing.assert_close(out, want, rtol=0, atol=1e-7)


@needs_ext
def test_noise_statistics_and_seeds(device, gen):
    img = torch.full((1, 64, 64), 0.5)
    p = _identity(1, 3)
    p[0, :, [A.A00, A.A11]], p[0, :, [A.A02, A.A12]] = 0.25, -0.375         # 64 -> 256: every pixel 0.5
    p[0, :, A.NOISE] = 0.05
    p[0, :, A.SEED] = torch.tensor([7.0, 7.0, 8.0], dtype=torch.float64)
    out = _op(device, img, torch.tensor([[64, 64]]), p, 256)[0] - 0.5          # (3, 256, 256)
    assert torch.equal(out[0], out[1]) and not torch.equal(out[0], out[2])
    for z in (out[0], out[2]):
        assert abs(float(z.std()) - 0.05) < 0.002 and abs(float(z.mean())) < 0.001
        assert abs(float(torch.corrcoef(torch.stack([z[:, 1:].flatten(), z[:, :-1].flatten()]))[0, 1])) < 0.02
    z = A.noise_normals(torch.tensor([123.0]), 300, 300)[0].flatten()          # the reference's normals
    assert abs(float(z.mean())) < 0.02 and abs(float(z.std()) - 1) < 0.02 and abs(float((z ** 4).mean()) - 3) < 0.15
    want = augment_reference(img, torch.tensor([[64, 64]]), p, 256, 256, 0.0, 1.0, torch.float64)[0] - 0.5
    torch.testing.assert_close(out.double(), want, rtol=0, atol=1e-6)         # the same numbers


@needs_ext
def test_each_image_only_reads_its_valid_region(device, gen):
    images, sizes, p = _case(gen, 3, 3, 50, 40)
    batch = _op(device, images, sizes, p, (19, 23))
    for b, (r, c) in enumerate(sizes.tolist()):
        alone = _op(device, images[b:b + 1, :r, :c].contiguous(), sizes[b:b + 1], p[b:b + 1], (19, 23))
        assert torch.equal(batch[b:b + 1], alone)


@needs_ext
def test_extreme_views_match_the_reference(device, gen):
    """1-px images, views larger than the image, shrinking past 1 px, empty images, NaN params."""
    images = torch.rand(4, 5, 300, generator=gen)
    sizes = torch.tensor([[1, 1], [5, 300], [0, 7], [1, 300]])
    p = _identity(4, 3)
    p[:, 1, [A.A00, A.A11]] = 500.0                                         # everything in one pixel
    p[:, 2, [A.A00, A.A01, A.A10, A.A11]] = torch.tensor([0.05, 40.0, -3.0, 0.2], dtype=torch.float64)
    want = augment_reference(images, sizes, p, 6, 9, 0.0, 1.0, torch.float64)
    got = _op(device, images, sizes, p, (6, 9))
    torch.testing.assert_close(got.double(), want, rtol=1e-5, atol=1e-6)
    p[0, 0, :6] = float("nan")
    assert torch.isfinite(_op(device, images, sizes, p, (6, 9))).all()         # never a bad read


@needs_ext
def test_output_is_fresh_not_zero_filled(device, gen):
    poison = torch.full((2, 3, 40, 40), float("nan"), device=device)
    del poison
    images, sizes, p = _case(gen, 2, 3, 30, 30, (40, 40))
    assert torch.isfinite(_op(device, images, sizes, p, 40)).all()


@needs_ext
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_opcheck(device, gen, dtype):
    images, sizes, p = _case(gen, 2, 2, 17, 21, (9, 11))
    args = (images.to(device), sizes.to(device), p.to(device), 9, 11, 0.25, 0.5, dtype)
    torch.library.opcheck(torch.ops.medcl.augment.default, args)


@pytest.mark.gpu
@needs_ext
def test_cpu_and_cuda_agree(gen):
    images, sizes, p = _case(gen, 4, 3, 200, 150, (32, 40))
    cpu = _op(torch.device("cpu"), images, sizes, p, (32, 40))
    cuda = _op(torch.device("cuda"), images, sizes, p, (32, 40))
    assert float((cpu - cuda).abs().max()) <= 1e-3


def test_public_function_and_reference_fallback(monkeypatch, gen):
    images, sizes, p = _case(gen, 2, 2, 20, 24, (8, 10))
    got = augment(images, p, out_size=(8, 10), views=2, sizes=sizes, dtype=torch.float32, mean=0.5, std=0.25)
    monkeypatch.setattr(_extension, "has_kernel", lambda op, dev: False)
    ref = augment(images, p, out_size=(8, 10), views=2, sizes=sizes, dtype=torch.float32, mean=0.5, std=0.25)
    assert ref.shape == got.shape == (2, 2, 8, 10) and ref.dtype == torch.float32
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5)
    full = augment(images, p[:, :1], out_size=8, views=1)                     # default sizes: all of H x W
    assert full.shape == (2, 1, 8, 8) and full.dtype == torch.float16


def test_bad_arguments_raise_clear_errors(gen):
    images, sizes, p = _case(gen, 2, 2, 20, 24)
    with pytest.raises(ValueError, match=r"\(B, views, 13\)"):
        augment(images, p, out_size=8, views=3)
    with pytest.raises(ValueError, match="images must be"):
        augment(images[0], p, out_size=8)
    with pytest.raises(ValueError, match="dtype"):
        augment(images, p, out_size=8, dtype=torch.bfloat16)
    with pytest.raises(ValueError, match="std"):
        augment(images, p, out_size=8, std=0.0)
    if _extension.state().loaded:
        with pytest.raises(RuntimeError, match="float32"):
            torch.ops.medcl.augment(images.double(), sizes, p, 8, 8, 0.0, 1.0, torch.float32)
        with pytest.raises(RuntimeError, match="params"):
            torch.ops.medcl.augment(images, sizes, p.float(), 8, 8, 0.0, 1.0, torch.float32)


# --- pyramid levels: only those the views read (CUDA scratch), odd sizes, deep levels -------------

ODD_SIZES = [[257, 131], [1000, 3], [5, 999], [767, 383]]   # valid sizes in a 1000 x 999 batch


def _odd_batch(gen):
    """Images of ODD_SIZES padded with junk (never to be read) to 1000 x 999: at most levels
    the last row or column is partial, and 2^l-pixel cells of 1 to 2^l - 1 rows all occur."""
    sizes = torch.tensor(ODD_SIZES)
    images = torch.rand(len(ODD_SIZES), 1000, 999, generator=gen) * 5 - 2
    for b, (r, c) in enumerate(ODD_SIZES):
        images[b, :r, :c] = torch.rand(r, c, generator=gen)
    return images, sizes


def _level(p, rows, cols):
    """The pyramid level a view reads (aug_setup, csrc/ops/augment_math.h; no FMA, as there)."""
    s = min(math.sqrt(p[A.A00] * p[A.A00] + p[A.A10] * p[A.A10]), math.sqrt(p[A.A01] * p[A.A01] + p[A.A11] * p[A.A11]))
    L = 0
    while L < A.MAX_LEVEL and 2 ** L < max(rows, cols) and s >= A.LEVEL_RATIO * 2.0 ** (L + 1):
        L += 1
    return L


def _views(gen, sizes, V, lo, hi, out):
    """(B, V, 13) random views of images of valid sizes (B, 2): shrinking lo to hi times
    (log-uniform), any angle, flips, centres in the image, tone, gamma, noise, some blur."""
    B = sizes.shape[0]
    u = lambda *s: torch.rand(*s, generator=gen, dtype=torch.float64)  # noqa: E731
    scale = torch.exp(math.log(lo) + u(B, V) * math.log(hi / lo))
    aspect = torch.exp((u(B, V) - 0.5) * 0.4)
    angle = u(B, V) * 2 * math.pi
    centre = sizes.double()[:, None, :] * u(B, V, 2)                     # (B, V, 2) rows, cols
    return _view_params(gen, scale, aspect, angle, centre, out, tone_p=0.5, effect_p=0.5)


def _level_views(sizes, levels):
    """(B, levels, 13): view v reads pyramid level L = v + 1 (or the image's deepest, its first
    1 x 1 level, if shallower) pixel for pixel: scale 2^L, offset (2^L - 1) / 2, one tap at each
    level pixel's centre, so output (row, col) = level-L pixel (row, col), 0 where that centre
    lies outside the image. Returns the views and their levels (B, levels)."""
    B = sizes.shape[0]
    p = _identity(B, levels)
    L = torch.zeros(B, levels, dtype=torch.int64)
    for b, (r, c) in enumerate(sizes.tolist()):
        deepest = next(k for k in range(A.MAX_LEVEL + 1) if 2 ** k >= max(r, c))
        for v in range(levels):
            L[b, v] = min(v + 1, deepest)
            p[b, v, [A.A00, A.A11]] = 2.0 ** int(L[b, v])
            p[b, v, [A.A02, A.A12]] = (2.0 ** int(L[b, v]) - 1) / 2
    return p, L


@needs_ext
def test_views_read_pyramid_levels_pixel_for_pixel(device, gen):
    """Levels 1 to 10 of odd-sized padded images against the float64 pyramid (CUDA builds each
    from the last level it stores or the image, levels 5 and up through a stored level 4 or 8)."""
    images, sizes = _odd_batch(gen)
    p, L = _level_views(sizes, 10)
    out = _op(device, images, sizes, p, (500, 500))                            # level 1's extent
    levels = A._pyramid(images.double(), sizes[:, 0], sizes[:, 1], 10)
    for b, (r, c) in enumerate(ODD_SIZES):
        for v in range(10):
            lv = int(L[b, v])
            # level pixels whose centre lies in the image: the rest read 0
            ri, ci = (r + (1 << lv >> 1)) >> lv, (c + (1 << lv >> 1)) >> lv
            want = torch.zeros(500, 500, dtype=torch.float64)
            want[:ri, :ci] = levels[lv][b, :ri, :ci]
            torch.testing.assert_close(out[b, v].double(), want, rtol=0, atol=2e-6,
                                       msg=lambda m: f"image {b} level {lv}: {m} (seed {gen.initial_seed()})")


@pytest.mark.gpu
@needs_ext
def test_cpu_and_cuda_agree_on_odd_sizes_and_deep_levels(gen):
    """Odd sizes, 1- to 5-pixel-wide images, views shrinking 1-40x and 40-700x (levels 0 to 9)."""
    images, sizes = _odd_batch(gen)
    out = (24, 20)
    p = torch.cat([_views(gen, sizes, 6, 1.0, 40.0, out), _views(gen, sizes, 3, 40.0, 700.0, out)], 1)
    cpu = _op(torch.device("cpu"), images, sizes, p, out)
    cuda = _op(torch.device("cuda"), images, sizes, p, out)
    assert float((cpu - cuda).abs().max()) <= 1e-3, gen.initial_seed()
    want = augment_reference(images, sizes, p, *out, 0.0, 1.0, torch.float64)
    err = ((cuda.double() - want).abs() / want.abs().clamp_min(1.0)).max()
    assert float(err) < 1e-5, (gen.initial_seed(), float(err))
    # whole levels read pixel for pixel: CUDA's levels are the CPU's level-by-level pyramid, bit for bit
    q, _ = _level_views(sizes, 10)
    assert torch.equal(_op(torch.device("cpu"), images, sizes, q, (500, 500)),
                       _op(torch.device("cuda"), images, sizes, q, (500, 500)))


@pytest.mark.gpu
@needs_ext
def test_cuda_scratch_holds_only_the_levels_the_views_read(gen):
    """16 images 3000 x 2500 → 2 views 224² (AugmentConfig()): each view reads level 3 (1/64 of
    the pixels) or, for about 1 image in 10, level 2 (1/16). The op's extra memory (peak minus
    the output) stays within the levels read (plus the allocator's rounding), below 1/16 of the
    input; the whole pyramid, levels 1 to 1 x 1 of every image, would be a third of it."""
    from medcl.data.augment import AugmentConfig, sample_views

    B, H, W, S = 16, 3000, 2500, 224
    dev = torch.device("cuda")
    sizes = torch.tensor([[H, W]] * B)
    p = sample_views(AugmentConfig(), sizes, S, 2, gen)
    images = torch.rand(B, H, W, device=dev, generator=torch.Generator(dev).manual_seed(gen.initial_seed()))
    sizes_d, p_d = sizes.to(dev), p.to(dev)
    torch.cuda.synchronize(dev)
    torch.cuda.reset_peak_memory_stats(dev)
    out = torch.ops.medcl.augment(images, sizes_d, p_d, S, S, 0.0, 1.0, torch.float16)
    torch.cuda.synchronize(dev)
    extra = torch.cuda.max_memory_allocated(dev) - torch.cuda.memory_allocated(dev)   # the output is still held
    read = {(b, _level(p[b, v].tolist(), H, W)) for b in range(B) for v in range(2)}
    level_bytes = sum(4 * -(-H // 2 ** lv) * -(-W // 2 ** lv) for b, lv in read if lv > 0)
    assert {lv for _, lv in read} <= {2, 3}
    assert extra <= level_bytes + 2 * 2**20, (extra, level_bytes, gen.initial_seed())
    assert extra < images.numel() * 4 / 16, (extra, gen.initial_seed())
    assert out.shape == (B, 2, S, S) and torch.isfinite(out).all()
