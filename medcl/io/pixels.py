"""DICOM frames as raw pixel records, decoded in batches by the ``decode_pixels`` op.

``read_raw`` reads a file's header and its undecoded pixel bytes, one :class:`RawImage` per frame:
native (little- or big-endian, 8/16/32 bits allocated) and RLE Lossless frames stay as bytes and
are decoded, rescaled, windowed and inverted in one pass of ``medcl.ops.decode_pixels`` (C++ on
CPU, CUDA on the GPU) by ``decode_raw``. Everything else pydicom decodes (JPEG family through its
plugins, 1-bit data, 8-bit big-endian OW) is decoded here on CPU into little-endian stored values.
The result equals :func:`medcl.io.dicom.read_image` frame by frame, except that a file with no
VOI is windowed over each frame's own min..max (read_image: over all frames together).

Errors follow medcl/io/dicom.py: every one is a :class:`medcl.errors.DicomError` naming the file
and never quoting a header value other than the geometry, pixel and LUT attributes medcl uses.
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from medcl.errors import DicomError
from medcl.io import dicom_header as H
from medcl.io.dicom_codecs import encapsulated_frames, stored_pixels
from medcl.io.dicom_header import Lut, apply_luts, check_grayscale, read_dataset, read_lut
from medcl.ops.decode_pixels import ENCODINGS, FUNCTIONS, REASONS, decode_pixels

__all__ = ["ENCODINGS", "RawImage", "read_raw", "raw_from_dataset", "pack_raw", "decode_packed", "decode_raw",
           "status_reason"]


@dataclass
class RawImage:
    """One frame's undecoded pixels and what decoding needs."""
    data: bytes                       # native: the frame's Pixel Data bytes; rle: the frame's fragment(s) joined
    rows: int                         # (0028,0010)
    columns: int                      # (0028,0011)
    bits_allocated: int               # 8 | 16 | 32
    bits_stored: int                  # 1 .. bits_allocated
    high_bit: int                     # bits_stored - 1 .. bits_allocated - 1
    signed: bool                      # Pixel Representation 1
    encoding: int                     # ENCODINGS value
    slope: float = 1.0                # Rescale Slope (unused when modality_lut is set)
    intercept: float = 0.0            # Rescale Intercept (unused when modality_lut is set)
    window: tuple | None = None       # (center, width, "linear"|"linear_exact"|"sigmoid") of the first window; None → "minmax"
    invert: bool = False              # MONOCHROME1
    modality_lut: Lut | None = None   # Modality LUT Sequence table, when the file has one
    voi_lut: Lut | None = None        # VOI LUT Sequence table, when the file has one (then window is None)


def status_reason(code: int) -> str:
    """One line for a decode status (bad_files.csv / bad_samples.csv)."""
    return REASONS.get(int(code), f"unknown decode status {int(code)}")


def read_raw(path: str | os.PathLike) -> list[RawImage]:
    """Reads a grayscale DICOM file's frames undecoded (one RawImage per frame)."""
    path = Path(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warnings can quote header values
        ds = read_dataset(path)
    return raw_from_dataset(ds, path)


def raw_from_dataset(ds, path: str | os.PathLike) -> list[RawImage]:
    """As :func:`read_raw`, from an already-read pydicom Dataset."""
    path = Path(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check_grayscale(ds, path)
        g = H.geometry(ds, path)
        tsyntax = H.transfer_syntax(ds, path)
        pixel_data = H.pixel_bytes(ds, path)
        H.check_size(g, len(pixel_data), tsyntax, path)          # before anything is allocated
        mlut, vlut = read_lut("ModalityLUTSequence", ds, path), read_lut("VOILUTSequence", ds, path)
        window = H.window(ds, path) if vlut is None else None
        slope, intercept = H.rescale(ds, path, g) if mlut is None else (1.0, 0.0)
        common = dict(rows=g.rows, columns=g.columns, slope=slope, intercept=intercept, window=window,
                      invert=H.photometric(ds, path) == "MONOCHROME1", modality_lut=mlut, voi_lut=vlut)
        layout = dict(bits_allocated=g.bits_allocated, bits_stored=g.bits_stored, high_bit=g.high_bit, signed=g.signed)
        if tsyntax is not None and g.bits_allocated in (8, 16, 32):
            if tsyntax == H.RLE_LOSSLESS:
                return [RawImage(data=f, encoding=ENCODINGS["rle"], **layout, **common)
                        for f in encapsulated_frames(ds, pixel_data, g.frames, path, "RLE")]
            big_ow8 = (g.bits_allocated == 8 and not tsyntax.is_little_endian
                       and H.element(ds, "PixelData", path).VR == "OW")
            if not tsyntax.is_encapsulated and not big_ow8:
                enc = ENCODINGS["native_le" if tsyntax.is_little_endian else "native_be"]
                return [RawImage(data=f, encoding=enc, **layout, **common)
                        for f in _native_frames(pixel_data, g.rows * g.columns * g.bits_allocated // 8, g.frames)]
        # JPEG family, 1-bit, 8-bit big-endian OW, no transfer syntax: pydicom decodes (stored values).
        return _decoded_frames(stored_pixels(ds, path), path, common)


def _native_frames(pixel_data: bytes, frame_bytes: int, nf: int) -> list[bytes]:
    """The frames' bytes (H.check_size has checked that the data holds them all)."""
    if nf == 1 and len(pixel_data) == frame_bytes:
        return [bytes(pixel_data)]
    view = memoryview(pixel_data)
    return [bytes(view[i * frame_bytes:(i + 1) * frame_bytes]) for i in range(nf)]


def _decoded_frames(arr: np.ndarray, path: Path, common: dict) -> list[RawImage]:
    """pydicom-decoded stored values (H, W) or (F, H, W) → native little-endian records."""
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8)
    if arr.dtype.itemsize not in (1, 2, 4) or not np.issubdtype(arr.dtype, np.integer):
        raise DicomError(f"pixel data decodes to {arr.dtype}, not 8-, 16- or 32-bit integers", path=path)
    arr = arr.reshape((-1,) + arr.shape[-2:])                                   # (F, H, W)
    bits = arr.dtype.itemsize * 8
    arr = np.ascontiguousarray(arr.astype(arr.dtype.newbyteorder("<"), copy=False))
    layout = dict(bits_allocated=bits, bits_stored=bits, high_bit=bits - 1,
                  signed=bool(np.issubdtype(arr.dtype, np.signedinteger)))
    common = {**common, "rows": int(arr.shape[1]), "columns": int(arr.shape[2])}
    return [RawImage(data=frame.tobytes(), encoding=ENCODINGS["native_le"], **layout, **common) for frame in arr]


# --- decoding ----------------------------------------------------------------------------------

def pack_raw(raws: list[RawImage], *, voi: bool = True, height: int | None = None,
             width: int | None = None) -> dict:
    """Frames → the op's inputs as CPU tensors, for :func:`decode_packed` (pin or move them as a
    whole; the dict pickles, so DataLoader workers can pack and the main process decode).

    Keys: "data" (N,) uint8, "offsets" (B+1,) int64, "desc" (B, 7) int64, "params" (B, 4) float64,
    "function" (B,) int32, "invert" (B,) bool, "sizes" (B, 2) int64 (rows, columns); "height",
    "width" (the output size: the largest frame unless given), "voi", and "tables": (index,
    RawImage without its bytes) of the frames with table LUTs, finished in torch after the op.
    """
    B = len(raws)
    nbytes = [len(r.data) for r in raws]
    offsets = torch.zeros(B + 1, dtype=torch.int64)
    torch.cumsum(torch.tensor(nbytes, dtype=torch.int64), 0, out=offsets[1:])
    data = torch.empty(int(offsets[-1]), dtype=torch.uint8)
    flat = data.numpy()
    for r, start, n in zip(raws, offsets.tolist(), nbytes):
        flat[start:start + n] = np.frombuffer(r.data, dtype=np.uint8)
    codes, params, invert, tables = [], [], [], []
    for i, r in enumerate(raws):
        table = r.modality_lut is not None or r.voi_lut is not None
        invert.append(voi and r.invert and not table)
        if table:
            tables.append((i, replace(r, data=b"")))
            codes.append(FUNCTIONS["none"])                    # stored values out; tables after
            params.append([1.0, 0.0, 0.0, 1.0])
        elif not voi:
            codes.append(FUNCTIONS["none"])
            params.append([r.slope, r.intercept, 0.0, 1.0])
        elif r.window is None:
            codes.append(FUNCTIONS["minmax"])
            params.append([r.slope, r.intercept, 0.0, 1.0])
        else:
            center, win_width, function = r.window
            codes.append(FUNCTIONS[function])
            params.append([r.slope, r.intercept, float(center), float(win_width)])
    sizes = torch.tensor([[r.rows, r.columns] for r in raws], dtype=torch.int64).view(B, 2)
    return {
        "data": data, "offsets": offsets,
        "desc": torch.tensor([[r.rows, r.columns, r.bits_allocated, r.bits_stored, r.high_bit, int(r.signed),
                               r.encoding] for r in raws], dtype=torch.int64).view(B, 7),
        "params": torch.tensor(params, dtype=torch.float64).view(B, 4),
        "function": torch.tensor(codes, dtype=torch.int32), "invert": torch.tensor(invert, dtype=torch.bool),
        "sizes": sizes,
        "height": max((r.rows for r in raws), default=0) if height is None else int(height),
        "width": max((r.columns for r in raws), default=0) if width is None else int(width),
        "voi": bool(voi), "tables": tables,
    }


def decode_packed(packed: dict, device: str | torch.device | None = None
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`pack_raw`'s batch decoded on ``device`` (default: where its tensors are); returns
    as :func:`decode_raw`. Pinned CPU tensors go to a GPU without blocking."""
    device = torch.device(device) if device is not None else packed["data"].device
    pinned = device.type == "cuda" and packed["data"].device.type == "cpu" and packed["data"].is_pinned()
    t = {k: packed[k].to(device, non_blocking=pinned)
         for k in ("data", "offsets", "desc", "params", "function", "invert", "sizes")}
    tables = packed["tables"]
    H, W = packed["height"], packed["width"]
    images, status = decode_pixels(t["data"], t["offsets"], t["desc"], t["params"], t["function"], t["invert"],
                                   height=H, width=W, dtype=torch.float64 if tables else torch.float32)
    if tables:
        # Table LUTs: the op gave stored values (float64 holds every 32-bit value exactly).
        st = status.cpu()
        for i, r in tables:
            if int(st[i]) == 0:
                stored = images[i, :r.rows, :r.columns].round().to(torch.int64)
                images[i, :r.rows, :r.columns] = _with_tables(r, stored, packed["voi"]).to(torch.float64)
        images = images.to(torch.float32)
    return images, t["sizes"], status


def decode_raw(raws: list[RawImage], *, device: str | torch.device = "cpu", height: int | None = None,
               width: int | None = None, voi: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Decodes frames into one zero-padded batch on ``device``.

    Returns images (B, H, W) float32 (H, W default to the largest rows/columns; a frame larger than
    the given size gets a nonzero status), sizes (B, 2) int64 (rows, columns) and status (B,) int32
    (0 ok, else :func:`status_reason`; such an image is all zeros), all on ``device``. With ``voi``
    the values are read_image's: modality LUT or rescale, then VOI LUT, the file's first window or
    the frame's own min..max (LINEAR_EXACT), then MONOCHROME1 inversion, in [0, 1]; without,
    modality values. (:func:`pack_raw` + :func:`decode_packed`.)
    """
    device = torch.device(device)
    packed = pack_raw(raws, voi=voi, height=height, width=width)
    if device.type == "cuda":
        packed = {k: v.pin_memory() if isinstance(v, torch.Tensor) else v for k, v in packed.items()}
    return decode_packed(packed, device)


def _with_tables(r: RawImage, stored: torch.Tensor, voi: bool) -> torch.Tensor:
    """read_image's table-LUT branches on one frame's (rows, cols) integer stored values → float32."""
    return apply_luts(stored[None], slope=r.slope, intercept=r.intercept, modality_lut=r.modality_lut,
                      voi_lut=r.voi_lut, window=r.window, invert=r.invert, voi=voi)[0]
