"""``medcl.ops.decode_pixels``: raw DICOM pixel bytes → float images, with the intensity pipeline fused.

A batch of undecoded frames, each a byte buffer with a descriptor, becomes (B, height, width)
float images (image b in ``[:rows_b, :cols_b]``, zeros elsewhere) and a per-image status:

1. stored bits (``bits_allocated`` 8, 16 or 32 per pixel) from
   - native little-endian or big-endian bytes, row-major;
   - RLE Lossless (DICOM PS3.5 Annex G): a 64-byte header (uint32 LE segment count, which must be
     bits_allocated/8, then 15 uint32 LE segment offsets from the start of the frame) and one
     PackBits segment per byte plane, most significant plane first. Per header byte h of a
     segment: h < 128 copies the next h+1 bytes, h > 128 repeats the next byte 257-h times,
     h = 128 is a no-op;
2. stored value: bits ``high_bit-bits_stored+1 .. high_bit`` shifted down, sign-extended when
   ``signed`` (Pixel Representation 1);
3. the ``intensity`` op's math (medcl/ops/intensity.py): modality rescale, VOI function, MONOCHROME1
   inversion; function 4 (MINMAX) is LINEAR_EXACT with center/width from the image's own modality
   values lo..hi: center (lo+hi)/2, width max(hi-lo, 1e-6) (a constant image gives 0.5, as
   medcl.io.dicom.read_image does).

RLE rules (checked in this order per run; the first failing segment, in segment order, names the
status): offsets must satisfy ``64 <= off[0] <= off[1] <= ... <= len`` (segment i ends where i+1
begins, the last at the end of the frame's data); a run may not cross the end of an image row —
PS3.5 G.3.1 has every row encoded separately, and no RLE file of pydicom's and pydicom-data's test
corpus nor medcl's own encoder (medcl/demo/rle.py) has a run that crosses one, so a crossing run
is treated as corrupt (``RLE_OVERFLOW``); a run's bytes may not extend past its segment; once a
segment has given rows·columns bytes the rest of it (the even-length pad byte) is ignored.

Kernels: csrc/ops/cpu/decode_pixels.cpp, csrc/ops/cuda/decode_pixels.cu; this file holds the
reference (the definition, fallback and test oracle) and the fake kernel.
"""
from __future__ import annotations

import torch

from medcl import _extension
from medcl.ops.intensity import FUNCTIONS as _VOI_FUNCTIONS
from medcl.ops.intensity import intensity_reference

# Codes of `desc[:, 6]` (csrc/ops/decode_pixels_math.h: Encoding).
ENCODINGS = {"native_le": 0, "native_be": 1, "rle": 2}

# Codes of the `function` tensor: intensity's plus MINMAX (csrc/ops/decode_pixels_math.h).
FUNCTIONS = {**_VOI_FUNCTIONS, "minmax": 4}

# Status codes (csrc/ops/decode_pixels_math.h: DecodeStatus) and their one-line reasons.
STATUS = {
    "ok": 0,
    "bad_descriptor": 1,
    "native_short": 2,
    "rle_header": 3,
    "rle_offset": 4,
    "rle_overflow": 5,
    "rle_past_end": 6,
    "rle_short": 7,
}
REASONS = {
    0: "ok",
    1: "bad pixel descriptor (size, bits allocated/stored, high bit, encoding or function out of range, "
       "or larger than the output)",
    2: "native pixel data shorter than rows x columns x bits allocated",
    3: "invalid RLE header (shorter than 64 bytes, or segment count != bits allocated / 8)",
    4: "RLE segment offset out of range (not increasing, before the header end, or past the data)",
    5: "RLE run overflowing its row/segment",
    6: "RLE run reading past the end of its segment",
    7: "RLE segment too short (ends before rows x columns bytes)",
}

DESC_COLUMNS = ("rows", "columns", "bits_allocated", "bits_stored", "high_bit", "signed", "encoding")


# --- reference -------------------------------------------------------------------------------

def _check_descriptor(d: list[int], fn: int, height: int, width: int, n: int) -> int:
    rows, cols, ba, bs, hb, sgn, enc = d
    ok = (1 <= rows <= height and 1 <= cols <= width and ba in (8, 16, 32) and 1 <= bs <= ba
          and bs - 1 <= hb < ba and sgn in (0, 1) and enc in ENCODINGS.values() and fn in FUNCTIONS.values())
    if not ok:
        return STATUS["bad_descriptor"]
    if enc != ENCODINGS["rle"] and n < rows * cols * (ba // 8):
        return STATUS["native_short"]
    return STATUS["ok"]


def _rle_segment(seg: bytes, rows: int, cols: int) -> tuple[int, torch.Tensor | None]:
    """One PackBits segment → (status, (rows·cols,) uint8 plane). Walks the run headers in
    Python, expands the runs with one gather."""
    N, n = rows * cols, len(seg)
    pos = out = col = 0
    out_start, length, src, literal = [], [], [], []
    while out < N:
        if pos >= n:
            return STATUS["rle_short"], None
        h = seg[pos]
        pos += 1
        if h == 128:
            continue
        lit = h < 128
        L = h + 1 if lit else 257 - h
        if col + L > cols:
            return STATUS["rle_overflow"], None
        need = L if lit else 1
        if pos + need > n:
            return STATUS["rle_past_end"], None
        out_start.append(out)
        length.append(L)
        src.append(pos)
        literal.append(lit)
        pos += need
        out += L
        col = (col + L) % cols
    length_t = torch.tensor(length, dtype=torch.int64)
    step = torch.repeat_interleave(torch.tensor(literal, dtype=torch.int64), length_t)     # (N,) 1 in literal runs
    within = torch.arange(N, dtype=torch.int64) - torch.repeat_interleave(torch.tensor(out_start), length_t)
    index = torch.repeat_interleave(torch.tensor(src, dtype=torch.int64), length_t) + within * step
    return STATUS["ok"], torch.frombuffer(bytearray(seg), dtype=torch.uint8)[index]


def _rle_planes(buf: bytes, rows: int, cols: int, nseg: int) -> tuple[int, torch.Tensor | None]:
    """An RLE frame → (status, (nseg, rows·cols) uint8 byte planes, most significant first)."""
    n = len(buf)
    if n < 64 or int.from_bytes(buf[0:4], "little") != nseg:
        return STATUS["rle_header"], None
    offs = [int.from_bytes(buf[4 + 4 * i:8 + 4 * i], "little") for i in range(nseg)]
    if offs[0] < 64 or any(a > b for a, b in zip(offs, offs[1:] + [n])):
        return STATUS["rle_offset"], None
    planes = []
    for i in range(nseg):
        status, plane = _rle_segment(buf[offs[i]:(offs[i + 1] if i + 1 < nseg else n)], rows, cols)
        if status:
            return status, None
        planes.append(plane)
    return STATUS["ok"], torch.stack(planes)


def _stored_values(buf: bytes, d: list[int]) -> tuple[int, torch.Tensor | None]:
    """One valid descriptor's bytes → (status, (rows, cols) int64 stored values)."""
    rows, cols, ba, bs, hb, sgn, enc = d
    nb, N = ba // 8, rows * cols
    if enc == ENCODINGS["rle"]:
        status, planes = _rle_planes(buf, rows, cols, nb)                   # (nb, N) MSB first
        if status:
            return status, None
        planes = planes.to(torch.int64)
    else:
        b = torch.frombuffer(bytearray(buf[:N * nb]), dtype=torch.uint8).view(N, nb).to(torch.int64)
        planes = (b if enc == ENCODINGS["native_be"] else b.flip(1)).t()     # (nb, N) MSB first
    raw = torch.zeros(N, dtype=torch.int64)
    for k in range(nb):
        raw = raw * 256 + planes[k]
    v = (raw >> (hb - bs + 1)) & ((1 << bs) - 1)
    if sgn:
        v = torch.where(v >= (1 << (bs - 1)), v - (1 << bs), v)
    return STATUS["ok"], v.view(rows, cols)


def decode_pixels_reference(data: torch.Tensor, offsets: torch.Tensor, desc: torch.Tensor, params: torch.Tensor,
                            function: torch.Tensor, invert: torch.Tensor, height: int, width: int,
                            dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """The op's definition in float64 PyTorch (a Python loop over images and RLE runs).
    Arguments as ``torch.ops.medcl.decode_pixels``."""
    B = desc.shape[0]
    dev = data.device
    blob = data.cpu().numpy().tobytes()
    off, dsc = offsets.cpu().tolist(), desc.cpu().tolist()
    prm, fns, inv = params.cpu().to(torch.float64), function.cpu().tolist(), invert.cpu()
    out = torch.zeros(B, height, width, dtype=torch.float64)
    status = torch.zeros(B, dtype=torch.int32)
    for b in range(B):
        lo, hi = off[b], off[b + 1]
        if not 0 <= lo <= hi <= len(blob):
            status[b] = STATUS["bad_descriptor"]
            continue
        buf = blob[lo:hi]
        s = _check_descriptor(dsc[b], fns[b], height, width, len(buf))
        if s == 0:
            s, v = _stored_values(buf, dsc[b])
        if s:
            status[b] = s
            continue
        p, fn = prm[b].clone(), fns[b]
        if fn == FUNCTIONS["minmax"]:
            x = v.to(torch.float64) * p[0] + p[1]
            x_lo, x_hi = float(x.min()), float(x.max())
            p[2], p[3] = (x_lo + x_hi) / 2.0, max(x_hi - x_lo, 1e-6)
            fn = FUNCTIONS["linear_exact"]
        y = intensity_reference(v[None], p[None], torch.tensor([fn], dtype=torch.int32), inv[b:b + 1],
                                torch.float64)[0]
        out[b, :v.shape[0], :v.shape[1]] = y
    return out.to(dtype).to(dev), status.to(dev)


# --- public function ---------------------------------------------------------------------------

def decode_pixels(data: torch.Tensor, offsets: torch.Tensor, desc: torch.Tensor, params: torch.Tensor,
                  function: torch.Tensor, invert: torch.Tensor, *, height: int, width: int,
                  dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """Decodes B frames: data (N,) uint8, offsets (B+1,) int64, desc (B, 7) int64 (``DESC_COLUMNS``),
    params (B, 4) float64 (slope, intercept, center, width), function (B,) int32 (``FUNCTIONS``),
    invert (B,) bool. Returns images (B, height, width) ``dtype`` and status (B,) int32 (``STATUS``;
    an image with status ≠ 0 is all zeros). medcl.io.pixels.decode_raw packs these from files."""
    B = desc.shape[0] if desc.dim() == 2 else -1
    if desc.dim() != 2 or desc.shape[1] != 7 or offsets.shape != (B + 1,):
        raise ValueError(f"decode_pixels: desc must be (B, 7) and offsets (B+1,), got {tuple(desc.shape)} "
                         f"and {tuple(offsets.shape)}")
    if height < 0 or width < 0:
        raise ValueError(f"decode_pixels: height and width must be >= 0, got {height}, {width}")
    for name, t in (("offsets", offsets), ("desc", desc), ("params", params), ("function", function),
                    ("invert", invert)):
        if t.device != data.device:
            raise ValueError(f"decode_pixels: data is on {data.device} but {name} is on {t.device}; "
                             "move every input to one device")
    if _extension.use_kernel("decode_pixels", data.device):
        return torch.ops.medcl.decode_pixels(data, offsets, desc, params, function, invert, height, width, dtype)
    return decode_pixels_reference(data, offsets, desc, params, function, invert, height, width, dtype)


def _register() -> None:
    if not _extension.state().loaded or not hasattr(torch.ops.medcl, "decode_pixels"):
        return

    @torch.library.register_fake("medcl::decode_pixels")
    def _(data, offsets, desc, params, function, invert, height, width, dtype):
        B = desc.shape[0]
        torch._check(offsets.shape[0] == B + 1)
        torch._check(params.shape == (B, 4))
        return (params.new_empty((B, height, width), dtype=dtype),
                params.new_empty((B,), dtype=torch.int32))


_register()
