"""medcl.ops.intensity: C++/CUDA kernels against the float64 reference, opcheck, validation."""
from __future__ import annotations

import pytest
import torch

from medcl import _extension
from medcl.ops import intensity, intensity_reference
from medcl.ops.intensity import FUNCTIONS, pack_params

needs_ext = pytest.mark.skipif(not _extension.state().loaded, reason="medcl._C not built")

PIXEL_DTYPES = [torch.uint8, torch.int8, torch.int16, torch.uint16, torch.int32, torch.int64]


def _random_case(gen, B, shape, pixel_dtype):
    info = {torch.uint8: (0, 255), torch.int8: (-128, 127), torch.int16: (-2048, 4095),
            torch.uint16: (0, 65535), torch.int32: (-70000, 70000), torch.int64: (-70000, 70000)}
    lo, hi = info[pixel_dtype]
    px = torch.randint(lo, hi + 1, (B, *shape), generator=gen, dtype=torch.int64).to(pixel_dtype)
    slope = torch.rand(B, generator=gen, dtype=torch.float64) * 2 + 0.5
    intercept = torch.randn(B, generator=gen, dtype=torch.float64) * 500
    x = px.to(torch.float64).flatten(1) * slope[:, None] + intercept[:, None]
    center = x.mean(1) + torch.randn(B, generator=gen, dtype=torch.float64) * x.std(1, correction=0) * 0.3
    width = x.std(1, correction=0) * (torch.rand(B, generator=gen, dtype=torch.float64) * 3 + 0.2) + 1
    function = [list(FUNCTIONS)[int(i)] for i in torch.randint(0, 4, (B,), generator=gen)]
    invert = (torch.rand(B, generator=gen) < 0.5).tolist()
    return px, dict(slope=slope, intercept=intercept, center=center, width=width, function=function, invert=invert)


@needs_ext
@pytest.mark.parametrize("pixel_dtype", PIXEL_DTYPES)
@pytest.mark.parametrize("B,shape", [(1, (1, 1)), (3, (17, 33)), (5, (64, 64)), (2, (3, 31, 7))])
def test_kernel_matches_float64_reference(device, gen, pixel_dtype, B, shape):
    px, kw = _random_case(gen, B, shape, pixel_dtype)
    params, codes, inv = pack_params(B, **kw)
    want = intensity_reference(px, params, codes, inv, torch.float64)
    for dtype in (torch.float32, torch.float64):
        got = torch.ops.medcl.intensity(px.to(device), params.to(device), codes.to(device), inv.to(device), dtype)
        assert got.dtype == dtype and got.shape == px.shape and got.device.type == device.type
        err = (got.cpu().double() - want).abs()
        scale = want.abs().clamp_min(1.0)
        assert float((err / scale).max()) < (1e-5 if dtype == torch.float32 else 1e-12), (gen.initial_seed(), dtype)


@needs_ext
def test_public_function_uses_kernel_and_agrees(device, gen):
    px, kw = _random_case(gen, 4, (40, 40), torch.int16)
    assert _extension.backend("intensity", device.type) in ("cpp", "cuda")
    got = intensity(px.to(device), **kw)
    params, codes, inv = pack_params(4, **kw)
    want = intensity_reference(px, params, codes, inv, torch.float64)
    torch.testing.assert_close(got.cpu().double(), want, rtol=1e-5, atol=1e-6)


@needs_ext
def test_output_is_fresh_not_zero_filled(device, gen):
    # Poison the allocator's free blocks so a kernel that skips pixels would show garbage.
    poison = torch.full((4, 64, 64), float("nan"), device=device)
    del poison
    px, kw = _random_case(gen, 4, (64, 64), torch.int32)
    out = intensity(px.to(device), **kw)
    assert torch.isfinite(out).all()


def test_definition_matches_dicom_formulas():
    # Hand-computed points of PS3.3 C.11.2.1.2 (c = 100, w = 20).
    px = torch.tensor([[89, 90, 100, 109, 110, 200]], dtype=torch.int16)
    lin = intensity(px, center=100, width=20, function="linear", dtype=torch.float64)[0]
    # LINEAR: c' = 99.5, w' = 19 -> x <= 90 -> 0; x > 109 -> 1; else (x - 99.5)/19 + 0.5
    want = torch.tensor([0.0, 0.0, (100 - 99.5) / 19 + 0.5, (109 - 99.5) / 19 + 0.5, 1.0, 1.0], dtype=torch.float64)
    torch.testing.assert_close(lin, want)
    exact = intensity(px, center=100, width=20, function="linear_exact", dtype=torch.float64)[0]
    torch.testing.assert_close(exact, ((px[0].double() - 100) / 20 + 0.5).clamp(0, 1))
    sig = intensity(px, center=100, width=20, function="sigmoid", dtype=torch.float64)[0]
    torch.testing.assert_close(sig, 1 / (1 + torch.exp(-4 * (px[0].double() - 100) / 20)))
    inv = intensity(px, center=100, width=20, function="linear_exact", invert=True, dtype=torch.float64)[0]
    torch.testing.assert_close(inv, 1 - exact)
    raw = intensity(px, slope=2.0, intercept=-1024, function="none", invert=True, dtype=torch.float64)[0]
    torch.testing.assert_close(raw, px[0].double() * 2 - 1024)  # no window: invert ignored


def test_reference_path_when_forced(monkeypatch, gen):
    px, kw = _random_case(gen, 2, (8, 8), torch.int16)
    monkeypatch.setattr(_extension, "has_kernel", lambda op, dev: False)
    got = intensity(px, **kw)
    params, codes, inv = pack_params(2, **kw)
    torch.testing.assert_close(got, intensity_reference(px, params, codes, inv, torch.float32))


@needs_ext
@pytest.mark.parametrize("pixel_dtype", [torch.int16, torch.uint8])
def test_opcheck(device, gen, pixel_dtype):
    px, kw = _random_case(gen, 3, (9, 11), pixel_dtype)
    params, codes, inv = pack_params(3, **kw)
    args = (px.to(device), params.to(device), codes.to(device), inv.to(device), torch.float32)
    torch.library.opcheck(torch.ops.medcl.intensity.default, args)


def test_bad_parameters_raise_clear_errors():
    px = torch.zeros(2, 4, 4, dtype=torch.int16)
    with pytest.raises(ValueError, match="width"):
        intensity(px, center=0, width=0.5, function="linear")
    with pytest.raises(ValueError, match="width"):
        intensity(px, center=0, width=0.0, function="sigmoid")
    with pytest.raises(ValueError, match="center and width"):
        intensity(px, function="linear")
    with pytest.raises(ValueError, match="unknown VOI function"):
        intensity(px, center=0, width=10, function="gamma")
    with pytest.raises(ValueError, match="one value per image"):
        intensity(px, center=[0, 1, 2], width=10)


@needs_ext
def test_kernel_rejects_float_pixels():
    params, codes, inv = pack_params(1, center=0, width=10)
    with pytest.raises(RuntimeError, match="integers"):
        torch.ops.medcl.intensity(torch.zeros(1, 4), params, codes, inv, torch.float32)
