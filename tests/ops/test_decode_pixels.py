"""medcl.ops.decode_pixels: C++/CUDA kernels against the float64 reference; the reference against
independent decoders (numpy views, pydicom's RLE decoder, a random PackBits writer); corrupt RLE."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from medcl import _extension
from medcl.demo.rle import packbits_rows, rle_encode_frame
from medcl.ops import decode_pixels, decode_pixels_reference
from medcl.ops.decode_pixels import ENCODINGS, FUNCTIONS, STATUS

needs_ext = pytest.mark.skipif(not _extension.state().loaded, reason="medcl._C not built")

LE, BE, RLE = ENCODINGS["native_le"], ENCODINGS["native_be"], ENCODINGS["rle"]


# --- building inputs ---------------------------------------------------------------------------

def _rng(gen) -> np.random.Generator:
    return np.random.default_rng(int(torch.randint(0, 2**31, (1,), generator=gen)))


def _rle_frame(raw: np.ndarray, nb: int, segments: list[bytes] | None = None) -> bytes:
    """(rows, cols) unsigned raw values of nb bytes → an RLE frame (medcl.demo.rle's PackBits
    writer per byte plane, MSB plane first), or the given segments under a valid header."""
    if segments is None:
        segments = []
        for k in range(nb):
            seg = packbits_rows(((raw.astype(np.uint64) >> np.uint64(8 * (nb - 1 - k))) & np.uint64(255)).astype(np.uint8))
            segments.append(seg + b"\x00" * (len(seg) % 2))
    header = np.zeros(16, dtype="<u4")
    header[0] = len(segments)
    off = 64
    for i, seg in enumerate(segments):
        header[1 + i] = off
        off += len(seg)
    return header.tobytes() + b"".join(segments)


def _random_packbits(rng: np.random.Generator, plane: np.ndarray, *, long_p: float = 0.3, short_max: int = 8,
                     noop_p: float = 0.05, flood_p: float = 0.0) -> bytes:
    """A PackBits segment of a (rows, cols) uint8 plane with every kind of header, rows encoded
    separately: runs of 1..128 bytes with probability ``long_p``, else of 1..``short_max``, half of
    them replicate runs (a replicate's bytes are made equal in ``plane`` first), a -128 no-op
    before a run with probability ``noop_p``, and before a row with probability ``flood_p`` a
    flood of 4000..9000 no-ops (whole CUDA staging windows without a run)."""
    out = bytearray()
    rows, cols = plane.shape
    for r in range(rows):
        if flood_p and rng.random() < flood_p:
            out += b"\x80" * int(rng.integers(4000, 9000))
        c = 0
        while c < cols:
            if rng.random() < noop_p:
                out.append(128)                                     # no-op
            L = int(min(cols - c, rng.integers(1, 129) if rng.random() < long_p else rng.integers(1, short_max + 1)))
            if L >= 2 and rng.random() < 0.5:
                plane[r, c:c + L] = plane[r, c]
                out += bytes([257 - L, int(plane[r, c])])
            else:
                out.append(L - 1)
                out += plane[r, c:c + L].tobytes()
            c += L
    return bytes(out)


def _random_image(rng, rows, cols, *, ba=None, enc=None):
    """A random frame: (bytes, desc row) with random layout and garbage in the unused bits."""
    ba = ba or int(rng.choice([8, 16, 32]))
    enc = int(rng.choice([LE, BE, RLE])) if enc is None else enc
    bs = int(rng.integers(1, ba + 1))
    hb = int(rng.integers(bs - 1, ba))
    signed = int(rng.integers(0, 2))
    nb = ba // 8
    raw = rng.integers(0, 2 ** ba, size=(rows, cols), dtype=np.uint64)
    if rng.random() < 0.5:   # long runs too: quantise a smooth ramp
        raw = (raw // (2 ** max(ba - 3, 0))) * (2 ** max(ba - 3, 0))
        raw[:, : cols // 2] = raw[:, :1]
    if enc == RLE:
        data = _rle_frame(raw, nb)
    else:
        data = raw.astype({1: "u1", 2: "<u2", 4: "<u4"}[nb] if enc == LE else {1: "u1", 2: ">u2", 4: ">u4"}[nb]).tobytes()
    return data, [rows, cols, ba, bs, hb, signed, enc]


def _random_params(rng, desc, function):
    """Random rescale and a window over a plausible range of the image's modality values."""
    rows, cols, ba, bs, hb, signed, enc = desc
    lo, hi = (-(2.0 ** (bs - 1)), 2.0 ** (bs - 1) - 1) if signed else (0.0, 2.0 ** bs - 1)
    slope = float(rng.uniform(0.5, 2.5)) * (1 if rng.random() < 0.8 else -1)
    intercept = float(rng.normal(0, 500))
    a, b = sorted((lo * slope + intercept, hi * slope + intercept))
    center = float(rng.uniform(a, b))
    width = float((b - a) * rng.uniform(0.05, 1.5) + 1.0)
    return [slope, intercept, center, width]


def _pack(images, functions, params, inverts):
    data = b"".join(d for d, _ in images)
    offsets = np.cumsum([0] + [len(d) for d, _ in images])
    return (torch.frombuffer(bytearray(data), dtype=torch.uint8) if data else torch.zeros(0, dtype=torch.uint8),
            torch.tensor(offsets, dtype=torch.int64), torch.tensor([d for _, d in images], dtype=torch.int64).view(-1, 7),
            torch.tensor(params, dtype=torch.float64).view(-1, 4), torch.tensor(functions, dtype=torch.int32),
            torch.tensor(inverts, dtype=torch.bool))


def _random_batch(gen, B, max_size=40, encodings=(LE, BE, RLE)):
    rng = _rng(gen)
    images, functions, params, inverts = [], [], [], []
    for _ in range(B):
        img = _random_image(rng, int(rng.integers(1, max_size)), int(rng.integers(1, max_size)),
                            enc=int(rng.choice(encodings)))
        fn = int(rng.integers(0, 5))
        images.append(img)
        functions.append(fn)
        params.append(_random_params(rng, img[1], fn))
        inverts.append(bool(rng.random() < 0.5))
    H = max(d[0] for _, d in images) + int(rng.integers(0, 4))
    W = max(d[1] for _, d in images) + int(rng.integers(0, 4))
    return _pack(images, functions, params, inverts), H, W


def _run(args, H, W, dtype, device):
    args = tuple(a.to(device) for a in args)
    poison = torch.full((args[2].shape[0], H, W), float("nan"), dtype=dtype, device=device)
    del poison   # the allocator hands these bytes to the op's output: a skipped pixel shows NaN
    out, status = torch.ops.medcl.decode_pixels(*args, H, W, dtype)
    assert out.device.type == device.type and out.dtype == dtype and out.shape == (args[2].shape[0], H, W)
    assert status.dtype == torch.int32
    return out.cpu(), status.cpu()


def _assert_matches(got, want, dtype, seed):
    err = (got.double() - want.double()).abs()
    scale = want.double().abs().clamp_min(1.0)
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    assert torch.isfinite(got).all(), seed
    assert float((err / scale).max()) < tol, (seed, float((err / scale).max()))


# --- the reference against independent decoders --------------------------------------------------

def _numpy_stored(data: bytes, desc) -> np.ndarray:
    rows, cols, ba, bs, hb, signed, enc = desc
    dt = {8: "u1", 16: "u2", 32: "u4"}[ba]
    raw = np.frombuffer(data, dtype=("<" if enc == LE else ">") + dt, count=rows * cols).astype(np.int64)
    v = (raw >> (hb - bs + 1)) % (2 ** bs)
    if signed:
        v = np.where(v >= 2 ** (bs - 1), v - 2 ** bs, v)
    return v.reshape(rows, cols)


def test_reference_native_matches_numpy_views(gen):
    rng = _rng(gen)
    for _ in range(30):
        data, desc = _random_image(rng, int(rng.integers(1, 30)), int(rng.integers(1, 30)), enc=int(rng.choice([LE, BE])))
        args = _pack([(data, desc)], [FUNCTIONS["none"]], [[1.0, 0.0, 0.0, 1.0]], [False])
        out, status = decode_pixels_reference(*args, desc[0], desc[1], torch.float64)
        assert int(status[0]) == 0
        np.testing.assert_array_equal(out[0].numpy(), _numpy_stored(data, desc), err_msg=str((gen.initial_seed(), desc)))


def test_reference_rle_matches_pydicom_and_source(gen):
    from pydicom.pixels.decoders.rle import _rle_decode_frame

    rng = _rng(gen)
    for ba in (8, 16, 32):
        nb = ba // 8
        rows, cols = int(rng.integers(1, 50)), int(rng.integers(1, 50))
        raw = rng.integers(0, 2 ** ba, size=(rows, cols), dtype=np.uint64)
        raw[rows // 2:] = raw[rows // 2, 0]                                    # long replicate runs too
        if ba == 16:
            data = rle_encode_frame(raw.astype(np.uint16))                     # the demo encoder itself
        else:
            data = _rle_frame(raw, nb)
        desc = [rows, cols, ba, ba, ba - 1, 0, RLE]
        out, status = decode_pixels_reference(*_pack([(data, desc)], [0], [[1.0, 0.0, 0.0, 1.0]], [False]),
                                              rows, cols, torch.float64)
        assert int(status[0]) == 0
        np.testing.assert_array_equal(out[0].numpy(), raw.astype(np.float64))
        pyd = np.frombuffer(_rle_decode_frame(data, rows, cols, 1, ba), dtype=f"<u{nb}").reshape(rows, cols)
        np.testing.assert_array_equal(pyd, raw)


def test_reference_rle_hand_built_headers(gen):
    """Literal, replicate and -128 no-op headers from a random writer decode to its plane."""
    rng = _rng(gen)
    for _ in range(10):
        rows, cols = int(rng.integers(1, 20)), int(rng.integers(1, 300))
        planes = [rng.integers(0, 256, size=(rows, cols), dtype=np.uint8) for _ in range(2)]
        segs = [_random_packbits(rng, p) for p in planes]                       # makes replicate runs equal
        segs[0] = b"\x80" + segs[0]                                            # at least one no-op
        data = _rle_frame(None, 2, segs)
        desc = [rows, cols, 16, 16, 15, 0, RLE]
        out, status = decode_pixels_reference(*_pack([(data, desc)], [0], [[1.0, 0.0, 0.0, 1.0]], [False]),
                                              rows, cols, torch.float64)
        assert int(status[0]) == 0, gen.initial_seed()
        want = planes[0].astype(np.float64) * 256 + planes[1]
        np.testing.assert_array_equal(out[0].numpy(), want)


def test_reference_minmax_is_linear_exact_over_own_range(gen):
    rng = _rng(gen)
    data, desc = _random_image(rng, 13, 17, ba=16, enc=LE)
    p = _random_params(rng, desc, 4)
    got, _ = decode_pixels_reference(*_pack([(data, desc)], [FUNCTIONS["minmax"]], [p], [True]), 13, 17, torch.float64)
    x = _numpy_stored(data, desc) * p[0] + p[1]
    lo, hi = x.min(), x.max()
    want = np.clip((x - (lo + hi) / 2) / max(hi - lo, 1e-6) + 0.5, 0, 1)
    np.testing.assert_allclose(got[0].numpy(), 1 - want, atol=1e-12)


# --- the kernels against the reference ------------------------------------------------------------

@needs_ext
@pytest.mark.parametrize("encodings", [(LE,), (BE,), (RLE,), (LE, BE, RLE)], ids=["le", "be", "rle", "mixed"])
def test_kernel_matches_reference(device, gen, encodings):
    args, H, W = _random_batch(gen, 12, encodings=encodings)
    want, want_status = decode_pixels_reference(*args, H, W, torch.float64)
    assert (want_status == 0).all()
    for dtype in (torch.float32, torch.float64):
        got, status = _run(args, H, W, dtype, device)
        assert torch.equal(status, want_status)
        _assert_matches(got, want, dtype, gen.initial_seed())
        rows, cols = args[2][:, 0], args[2][:, 1]
        for b in range(got.shape[0]):                                        # zero padding
            assert (got[b, rows[b]:] == 0).all() and (got[b, :, cols[b]:] == 0).all()


@needs_ext
def test_kernel_every_function_and_layout(device, gen):
    """Each function code × bits allocated × encoding at least once, random stored bits."""
    rng = _rng(gen)
    images, fns, params, invs = [], [], [], []
    for fn in FUNCTIONS.values():
        for ba in (8, 16, 32):
            for enc in (LE, BE, RLE):
                img = _random_image(rng, int(rng.integers(1, 24)), int(rng.integers(1, 24)), ba=ba, enc=enc)
                images.append(img)
                fns.append(fn)
                params.append(_random_params(rng, img[1], fn))
                invs.append(bool(rng.random() < 0.5))
    args = _pack(images, fns, params, invs)
    want, want_status = decode_pixels_reference(*args, 24, 24, torch.float64)
    got, status = _run(args, 24, 24, torch.float32, device)
    assert torch.equal(status, want_status) and (status == 0).all()
    _assert_matches(got, want, torch.float32, gen.initial_seed())


@needs_ext
def test_kernel_large_rle_and_native(device, gen):
    """Images wider than the CPU's tile and long RLE streams (CUDA: several staging chunks)."""
    rng = _rng(gen)
    images = [_random_image(rng, 70, 1500, ba=16, enc=RLE), _random_image(rng, 300, 700, ba=8, enc=RLE),
              _random_image(rng, 64, 1100, ba=32, enc=BE), _random_image(rng, 33, 2000, ba=16, enc=LE)]
    fns = [4, 1, 3, 2]
    args = _pack(images, fns, [_random_params(rng, d, f) for (_, d), f in zip(images, fns)], [True, False, True, False])
    want, want_status = decode_pixels_reference(*args, 300, 2000, torch.float64)
    got, status = _run(args, 300, 2000, torch.float32, device)
    assert torch.equal(status, want_status) and (status == 0).all()
    _assert_matches(got, want, torch.float32, gen.initial_seed())


# --- corrupt and invalid input --------------------------------------------------------------------

def _corrupt_cases(rng):
    """(name, bytes, desc, expected status) — each a small 16-bit (or as named) frame."""
    rows, cols = 6, 10
    raw = rng.integers(0, 65536, size=(rows, cols), dtype=np.uint64)
    good = _rle_frame(raw, 2)
    desc = [rows, cols, 16, 16, 15, 0, RLE]
    hdr = np.frombuffer(good[:64], dtype="<u4").copy()
    seg0 = good[hdr[1]:hdr[2]]

    def with_header(h, body=good[64:]):
        return h.astype("<u4").tobytes() + body

    def frame(seg_a, seg_b=None):
        return _rle_frame(None, 2, [seg_a, seg_b if seg_b is not None else good[hdr[2]:]])

    h = hdr.copy(); h[0] = 1
    yield "segment count wrong", with_header(h), desc, STATUS["rle_header"]
    h = hdr.copy(); h[0] = 3
    yield "segment count too big", with_header(h), desc, STATUS["rle_header"]
    yield "shorter than the header", good[:40], desc, STATUS["rle_header"]
    yield "empty", b"", desc, STATUS["rle_header"]
    h = hdr.copy(); h[2] = len(good) + 10
    yield "offset past the end", with_header(h), desc, STATUS["rle_offset"]
    h = hdr.copy(); h[1], h[2] = hdr[2], hdr[1]
    yield "offsets decreasing", with_header(h), desc, STATUS["rle_offset"]
    h = hdr.copy(); h[1] = 10
    yield "offset inside the header", with_header(h), desc, STATUS["rle_offset"]
    yield "replicate past the row end", frame(bytes([257 - 12, 7]) + seg0), desc, STATUS["rle_overflow"]
    yield "literal past the row end", frame(bytes([cols]) + bytes(cols + 1) + seg0), desc, STATUS["rle_overflow"]
    yield "run crossing a row", frame(bytes([257 - 5, 1, 257 - 6, 2]) + seg0), desc, STATUS["rle_overflow"]
    yield "literal past the segment end", frame(bytes([257 - cols, 3]) * (rows - 1) + bytes([cols - 1, 1, 2])),\
        desc, STATUS["rle_past_end"]
    yield "replicate value missing", frame(bytes([257 - cols, 3]) * (rows - 1) + bytes([257 - cols])),\
        desc, STATUS["rle_past_end"]
    yield "segment too short", frame(bytes([257 - cols, 3]) * (rows - 1)), desc, STATUS["rle_short"]
    yield "only no-ops", frame(bytes([128]) * 50), desc, STATUS["rle_short"]
    yield "second segment too short", frame(seg0, bytes([257 - cols, 3]) * (rows - 1)), desc, STATUS["rle_short"]
    yield "both segments bad: the first names it", frame(bytes([257 - 12, 7]), b""), desc, STATUS["rle_overflow"]
    native = raw.astype("<u2").tobytes()
    yield "native short", native[:-1], [rows, cols, 16, 16, 15, 0, LE], STATUS["native_short"]
    yield "native empty", b"", [rows, cols, 8, 8, 7, 0, BE], STATUS["native_short"]
    for name, d in [("bits allocated 12", [rows, cols, 12, 12, 11, 0, LE]),
                    ("bits stored 0", [rows, cols, 16, 0, 15, 0, LE]),
                    ("high bit too high", [rows, cols, 16, 12, 16, 0, LE]),
                    ("high bit too low", [rows, cols, 16, 12, 10, 0, LE]),
                    ("signed 2", [rows, cols, 16, 16, 15, 2, LE]),
                    ("encoding 3", [rows, cols, 16, 16, 15, 0, 3]),
                    ("rows 0", [0, cols, 16, 16, 15, 0, LE]),
                    ("taller than the output", [100, cols, 16, 16, 15, 0, LE])]:
        yield name, native, d, STATUS["bad_descriptor"]


@needs_ext
def test_corrupt_rle_gives_status_and_others_stay_correct(device, gen):
    rng = _rng(gen)
    images, fns, params, invs, expected, names = [], [], [], [], [], []
    for name, data, desc, status in _corrupt_cases(rng):
        good = _random_image(rng, int(rng.integers(1, 12)), int(rng.integers(1, 12)))
        for img, st, n in ((good, 0, "good"), ((data, desc), status, name)):
            fn = int(rng.integers(0, 5))
            images.append(img)
            fns.append(fn)
            params.append(_random_params(rng, [*img[1][:3], max(img[1][3], 1), *img[1][4:]], fn))
            invs.append(bool(rng.random() < 0.5))
            expected.append(st)
            names.append(n)
    fns[0], expected[0], names[0] = 9, STATUS["bad_descriptor"], "function 9"    # a bad function code too
    args = _pack(images, fns, params, invs)
    H = W = 24
    want, want_status = decode_pixels_reference(*args, H, W, torch.float64)
    assert want_status.tolist() == expected, [(n, s, e) for n, s, e in zip(names, want_status.tolist(), expected) if s != e]
    got, status = _run(args, H, W, torch.float32, device)
    assert status.tolist() == expected, [(n, s, e) for n, s, e in zip(names, status.tolist(), expected) if s != e]
    assert (got[status != 0] == 0).all()
    _assert_matches(got, want, torch.float32, gen.initial_seed())


@needs_ext
def test_bad_offsets_tensor_gives_status(device, gen):
    args, H, W = _random_batch(gen, 3)
    offsets = args[1].clone()
    offsets[2] = offsets[3] + 5                                              # image 1 ends past the data, image 2 starts there
    offsets[3] = args[0].numel()
    got, status = _run((args[0], offsets, *args[2:]), H, W, torch.float32, device)
    assert status[1] == STATUS["bad_descriptor"] and status[2] == STATUS["bad_descriptor"]
    assert (got[1:] == 0).all()


@needs_ext
def test_fuzzed_rle_matches_reference(device, gen):
    """Random byte flips and cuts of valid RLE frames: same status and pixels as the reference,
    never a crash (the kernels only read inside each image's bytes)."""
    rng = _rng(gen)
    images, fns, params, invs = [], [], [], []
    for _ in range(40):
        data, desc = _random_image(rng, int(rng.integers(1, 16)), int(rng.integers(1, 40)), enc=RLE)
        buf = bytearray(data)
        for _ in range(int(rng.integers(0, 4))):
            buf[int(rng.integers(0, len(buf)))] = int(rng.integers(0, 256))
        if rng.random() < 0.4:
            buf = buf[: int(rng.integers(0, len(buf) + 1))]
        _add_case(rng, (images, fns, params, invs), bytes(buf), desc)
    args = _pack(images, fns, params, invs)
    want, want_status = decode_pixels_reference(*args, 16, 40, torch.float64)
    got, status = _run(args, 16, 40, torch.float32, device)
    assert torch.equal(status, want_status), gen.initial_seed()
    _assert_matches(got, want, torch.float32, gen.initial_seed())


def _add_case(rng, lists, data: bytes, desc) -> None:
    """Appends one frame with a random window function, its parameters and inversion."""
    images, fns, params, invs = lists
    fn = int(rng.integers(0, 5))
    images.append((data, desc))
    fns.append(fn)
    params.append(_random_params(rng, desc, fn))
    invs.append(bool(rng.random() < 0.5))


@needs_ext
def test_long_rle_segments_match_reference(device, gen):
    """Segments spanning many of the CUDA kernel's 4 KiB staging windows: dense short runs (more
    runs per window than its run table holds), long literals, no-op floods, each intact or with
    byte flips, a cut, inserted bytes or trailing garbage anywhere in them: the same status and
    pixels as the reference, which walks the headers one by one."""
    rng = _rng(gen)
    images, fns, params, invs = [], [], [], []
    rows, cols = 24, 1500
    for i in range(12):
        long_p = (0.0, 0.15, 1.0)[i % 3]
        planes = [rng.integers(0, 256, size=(rows, cols), dtype=np.uint8) for _ in range(2)]
        flood = 0.15 if i % 4 == 3 else 0.0
        segs = [_random_packbits(rng, p, long_p=long_p, short_max=4, noop_p=0.02, flood_p=flood) for p in planes]
        buf = bytearray(_rle_frame(None, 2, [seg + b"\x00" * (len(seg) % 2) for seg in segs]))
        kind = int(rng.integers(0, 5)) if i >= 3 else 0                        # the first three intact
        if kind == 1:                                                          # byte flips
            for _ in range(int(rng.integers(1, 4))):
                buf[int(rng.integers(64, len(buf)))] = int(rng.integers(0, 256))
        elif kind == 2:                                                        # a cut
            buf = buf[: int(rng.integers(64, len(buf)))]
        elif kind == 3:                                                        # inserted bytes
            at = int(rng.integers(64, len(buf)))
            buf[at:at] = rng.integers(0, 256, size=int(rng.integers(1, 4)), dtype=np.uint8).tobytes()
        elif kind == 4:                                                        # trailing garbage
            buf += rng.integers(0, 256, size=int(rng.integers(1, 300)), dtype=np.uint8).tobytes()
        desc = [rows, cols, 16, 16, 15, 0, RLE]
        _add_case(rng, (images, fns, params, invs), bytes(buf), desc)
    args = _pack(images, fns, params, invs)
    want, want_status = decode_pixels_reference(*args, rows, cols, torch.float64)
    assert (want_status[:3] == 0).all()
    got, status = _run(args, rows, cols, torch.float32, device)
    assert torch.equal(status, want_status), (gen.initial_seed(), status.tolist(), want_status.tolist())
    _assert_matches(got, want, torch.float32, gen.initial_seed())


# --- plumbing -------------------------------------------------------------------------------------

@needs_ext
def test_opcheck(device, gen):
    args, H, W = _random_batch(gen, 4, max_size=12)
    args = tuple(a.to(device) for a in args)
    torch.library.opcheck(torch.ops.medcl.decode_pixels.default, (*args, H, W, torch.float32))


@needs_ext
def test_public_function_uses_kernel(device, gen):
    assert _extension.backend("decode_pixels", device.type) in ("cpp", "cuda")
    args, H, W = _random_batch(gen, 5)
    got, status = decode_pixels(*(a.to(device) for a in args), height=H, width=W)
    want, want_status = decode_pixels_reference(*args, H, W, torch.float64)
    assert torch.equal(status.cpu(), want_status)
    _assert_matches(got.cpu(), want, torch.float32, gen.initial_seed())


@needs_ext
def test_empty_batch_and_zero_size(device):
    args = _pack([], [], [], [])
    out, status = _run(args, 5, 7, torch.float32, device)
    assert out.shape == (0, 5, 7) and status.shape == (0,)


def test_reference_path_when_forced(monkeypatch, gen):
    args, H, W = _random_batch(gen, 3)
    monkeypatch.setattr(_extension, "has_kernel", lambda op, dev: False)
    got, status = decode_pixels(*args, height=H, width=W)
    want, want_status = decode_pixels_reference(*args, H, W, torch.float32)
    assert torch.equal(got, want) and torch.equal(status, want_status)


@needs_ext
def test_kernel_rejects_bad_tensors():
    args, H, W = _random_batch(torch.Generator().manual_seed(0), 2)
    data, offsets, desc, params, fn, inv = args
    with pytest.raises(RuntimeError, match="uint8"):
        torch.ops.medcl.decode_pixels(data.to(torch.int16), offsets, desc, params, fn, inv, H, W, torch.float32)
    with pytest.raises(RuntimeError, match=r"\(B\+1,\)"):
        torch.ops.medcl.decode_pixels(data, offsets[:-1], desc, params, fn, inv, H, W, torch.float32)
    with pytest.raises(RuntimeError, match="float32 or float64"):
        torch.ops.medcl.decode_pixels(data, offsets, desc, params, fn, inv, H, W, torch.float16)
    with pytest.raises(RuntimeError, match=">= 0"):
        torch.ops.medcl.decode_pixels(data, offsets, desc, params, fn, inv, -1, W, torch.float32)
