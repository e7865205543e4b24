"""The DICOM header medcl reads, so that a bad value is a DicomError and nothing else; and what
the header says to do with the stored values (table LUTs, rescale, window: :func:`apply_luts`).

pydicom parses an element's value only when it is first read, so a malformed value raises
(ValueError, NotImplementedError for an unknown VR, struct.error, ...) long after ``dcmread``.
Every element medcl reads goes through :func:`element`, which guards that one pydicom call and
names the element (never its value). The other functions check what medcl relies on: a bit
layout that adds up, finite rescale and window values, a transfer syntax DICOM defines, a
grayscale image, well-formed LUT tables, and a declared size the Pixel Data can hold
(:func:`check_size`, before anything is allocated). The pixel data itself is read in
:mod:`medcl.io.dicom_codecs` (pydicom and its plugins) or :mod:`medcl.io.pixels` (raw frames);
both, and :mod:`medcl.io.dicom`'s ``read_image``, build on this module and on nothing else in io.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from medcl.errors import DicomError

CORRUPT = "the file is truncated or corrupt; re-export or remove it"
RLE_LOSSLESS = "1.2.840.10008.1.2.5"
RLE_MAX_RATIO = 64                 # PackBits: a 2-byte replicate run decodes to at most 128 bytes
MAX_DECODED_BYTES = 2**32          # native Pixel Data's 32-bit length; compressed files may not claim more
MAX_MODALITY = 1e300               # largest modality value magnitude (rescaled) medcl accepts
PHOTOMETRIC = {"MONOCHROME1", "MONOCHROME2", "PALETTE COLOR", "RGB", "HSV", "ARGB", "CMYK", "YBR_FULL", "YBR_FULL_422",
               "YBR_PARTIAL_422", "YBR_PARTIAL_420", "YBR_ICT", "YBR_RCT", "XYB"}  # named in messages; others are not


def element(ds, keyword: str, path: Path):
    """ds[keyword] (None when absent), its raw value parsed by pydicom; a value pydicom cannot
    parse is a DicomError naming the element, never quoting it."""
    if keyword not in ds:
        return None
    try:
        return ds[keyword]
    except Exception as exc:  # noqa: BLE001 - pydicom raises any type on a malformed value; only this call is guarded
        raise DicomError(f"malformed {keyword} element ({type(exc).__name__})", path=path, fix=CORRUPT) from exc


def get(ds, keyword: str, path: Path, default=None):
    """The element's value, or ``default`` when it is absent or empty."""
    elem = element(ds, keyword, path)
    value = None if elem is None else elem.value
    return default if value is None or value == "" else value


def int_value(ds, keyword: str, path: Path, default: int | None = None) -> int:
    """One integer (``default`` when absent or empty); several values or text are a DicomError."""
    value = get(ds, keyword, path, default)
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError) as exc:  # absent, several values, text, nan/inf
        raise DicomError(f"missing or malformed {keyword}", path=path) from exc


def finite(value, keyword: str, path: Path, *, first: bool = False) -> float:
    """One finite float; with ``first``, the first of several values (windows are multi-valued)."""
    from pydicom.multival import MultiValue

    try:
        x = float(value[0] if first and isinstance(value, (MultiValue, list, tuple)) else value)
    except (TypeError, ValueError, IndexError, OverflowError) as exc:
        raise DicomError(f"malformed {keyword}", path=path) from exc
    if not math.isfinite(x):
        raise DicomError(f"{keyword} is not a finite number", path=path)
    return x


def photometric(ds, path: Path) -> str:
    """Photometric Interpretation, stripped and upper-case (MONOCHROME2 when absent)."""
    return str(get(ds, "PhotometricInterpretation", path, "MONOCHROME2")).strip().upper()


def transfer_syntax(ds, path: Path):
    """The file meta's Transfer Syntax UID (pydicom UID), or None when the file has none."""
    from pydicom.uid import UID

    meta = getattr(ds, "file_meta", None)
    value = None if meta is None else get(meta, "TransferSyntaxUID", path)
    if value is None:
        return None
    uid = UID(str(value).rstrip("\0 "))
    if not uid.is_transfer_syntax:
        raise DicomError("the Transfer Syntax UID is not one DICOM defines", path=path, fix=CORRUPT)
    return uid


@dataclass(frozen=True)
class Geometry:
    """The pixel module's size and bit layout, checked for consistency."""
    rows: int
    columns: int
    frames: int
    bits_allocated: int
    bits_stored: int
    high_bit: int
    signed: bool


def geometry(ds, path: Path) -> Geometry:
    """Rows, Columns, Number of Frames and the bit layout, or a DicomError when they do not add up."""
    rows, cols = int_value(ds, "Rows", path), int_value(ds, "Columns", path)
    ba, bs = int_value(ds, "BitsAllocated", path), int_value(ds, "BitsStored", path)
    hb, pr = int_value(ds, "HighBit", path, bs - 1), int_value(ds, "PixelRepresentation", path, 0)
    nf = int_value(ds, "NumberOfFrames", path, 1)
    if rows < 1 or cols < 1 or nf < 0:
        raise DicomError(f"invalid image size ({nf} frames of {rows} x {cols})", path=path)
    if not (1 <= bs <= ba <= 64 and bs - 1 <= hb < ba and pr in (0, 1)):
        raise DicomError(f"invalid pixel layout (Bits Allocated {ba}, Bits Stored {bs}, High Bit {hb}, "
                         f"Pixel Representation {pr})", path=path)
    return Geometry(rows, cols, max(nf, 1), ba, bs, hb, bool(pr))


def check_size(g: Geometry, n_bytes: int, tsyntax, path: Path) -> None:
    """DicomError unless ``n_bytes`` of Pixel Data can hold the declared frames: all of them
    uncompressed; at most 64x as much for RLE (PackBits' largest expansion); at most
    MAX_DECODED_BYTES for other compression. Runs before anything is allocated."""
    need = (g.rows * g.columns * g.frames * g.bits_allocated + 7) // 8
    if tsyntax is None or not tsyntax.is_encapsulated:
        if n_bytes < need:
            raise DicomError(f"pixel data is truncated ({n_bytes} bytes, {g.frames} frame(s) need {need})",
                             path=path, fix="re-export or remove the file")
    elif tsyntax == RLE_LOSSLESS and need > RLE_MAX_RATIO * n_bytes:
        raise DicomError(f"{g.frames} frame(s) of {g.rows} x {g.columns} cannot fit in {n_bytes} bytes of RLE "
                         "pixel data", path=path, fix=CORRUPT)
    elif need > MAX_DECODED_BYTES:
        raise DicomError(f"{g.frames} frame(s) of {g.rows} x {g.columns} would decode to {need} bytes, more than "
                         f"the {MAX_DECODED_BYTES} medcl reads", path=path, fix=CORRUPT)


def pixel_bytes(ds, path: Path) -> bytes:
    """The Pixel Data element's bytes (native, or the encapsulated fragments with their items)."""
    data = get(ds, "PixelData", path, b"")
    if not isinstance(data, (bytes, bytearray)):
        raise DicomError("malformed PixelData element", path=path, fix=CORRUPT)
    return data


def rescale(ds, path: Path, g: Geometry) -> tuple[float, float]:
    """(slope, intercept), (1, 0) unless the file has both: finite, and mapping every value
    ``g``'s bits allocated can hold within ±MAX_MODALITY (so windows over them stay finite)."""
    slope, intercept = get(ds, "RescaleSlope", path), get(ds, "RescaleIntercept", path)
    if slope is None or intercept is None:
        return 1.0, 0.0
    slope, intercept = finite(slope, "RescaleSlope", path), finite(intercept, "RescaleIntercept", path)
    if not abs(slope) * 2.0 ** g.bits_allocated + abs(intercept) < MAX_MODALITY:
        raise DicomError("Rescale Slope/Intercept overflow the modality values", path=path)
    return slope, intercept


def window(ds, path: Path):
    """(center, width, function) of the first window in the file, or None."""
    center, width = get(ds, "WindowCenter", path), get(ds, "WindowWidth", path)
    if center is None or width is None:
        return None
    center, width = finite(center, "WindowCenter", path, first=True), finite(width, "WindowWidth", path, first=True)
    function = str(get(ds, "VOILUTFunction", path, "LINEAR")).strip().upper()
    if function not in ("LINEAR", "LINEAR_EXACT", "SIGMOID"):
        raise DicomError("unknown VOI LUT Function", path=path, fix="expected LINEAR, LINEAR_EXACT or SIGMOID")
    if (function == "LINEAR" and width < 1) or width <= 0:
        raise DicomError(f"invalid Window Width {width} for {function}", path=path,
                         fix="pass voi=False, or fix the file's window")
    return center, width, function.lower()


def read_dataset(path: Path):
    """pydicom's Dataset of ``path`` (header parsed, pixel data not decoded); a DicomError for a
    missing, empty or unreadable file, never another exception."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    if not path.exists():
        raise DicomError("no such file", path=path, fix="check the path or the manifest")
    if path.is_dir():
        raise DicomError("is a directory, not a DICOM file", path=path)
    if path.stat().st_size == 0:
        raise DicomError("empty file", path=path, fix="re-export or remove it")
    try:
        try:
            return pydicom.dcmread(path)
        except InvalidDicomError:
            # No preamble/'DICM' (legal for old files): accept only if it parses to an image.
            ds = pydicom.dcmread(path, force=True)
            if "PixelData" not in ds or "Rows" not in ds:
                raise DicomError("not a DICOM file", path=path,
                                 fix="remove it, or check that it is DICOM (PS3.10)") from None
            return ds
    except DicomError:
        raise
    except Exception as exc:  # pydicom raises many types on garbage; never echo their text
        raise DicomError(f"not a readable DICOM file ({type(exc).__name__})", path=path, fix=CORRUPT) from exc


def check_grayscale(ds, path: Path) -> None:
    """DicomError unless ds holds integer pixel data of a MONOCHROME1/2 single-sample image."""
    if "PixelData" not in ds:
        if "FloatPixelData" in ds or "DoubleFloatPixelData" in ds:
            raise DicomError("float pixel data is not supported (stored integer values are)", path=path)
        raise DicomError("has no pixel data", path=path, fix="it is not an image (e.g. a report or "
                         "structured set); remove it from the image list")
    spp = int_value(ds, "SamplesPerPixel", path, 1)
    interpretation = photometric(ds, path)
    if spp != 1 or interpretation not in ("MONOCHROME1", "MONOCHROME2"):
        shown = interpretation if interpretation in PHOTOMETRIC else "an unknown Photometric Interpretation"
        raise DicomError(f"not a grayscale image ({shown}, {spp} samples per pixel)", path=path,
                         fix="read_image handles MONOCHROME1/MONOCHROME2 images")


@dataclass(frozen=True)
class Lut:
    """A DICOM table LUT: output = data[clip(x - first_mapped, 0, len - 1)]."""
    data: np.ndarray       # (n_entries,) unsigned output values
    first_mapped: int      # the input value mapped to data[0]
    bits: int              # nominal output depth; the output range is 0 .. 2**bits - 1

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        table = torch.from_numpy(self.data.astype(np.int64)).to(x.device)
        if x.dtype == torch.uint16:  # torch has no uint16 comparisons on CPU
            x = x.to(torch.int64)
        # Integer input values, as PS3.3 C.11.1.1 / C.11.2.1.1 define (fractions truncate).
        idx = torch.where(x >= self.first_mapped, (x - self.first_mapped).to(torch.int64), 0)
        return table[idx.clamp_(0, table.numel() - 1)]


def read_lut(keyword: str, ds, path: Path) -> Lut | None:
    """The first item of a Modality/VOI LUT Sequence → Lut (None when the file has none)."""
    from pydicom.multival import MultiValue
    from pydicom.sequence import Sequence

    seq = get(ds, keyword, path)
    if seq is None or isinstance(seq, Sequence) and len(seq) == 0:
        return None
    if not isinstance(seq, Sequence):
        raise DicomError(f"malformed {keyword} element (not a sequence)", path=path, fix=CORRUPT)
    item = seq[0]
    desc = get(item, "LUTDescriptor", path)
    try:
        n, first, bits = (int(v) for v in desc)
    except (TypeError, ValueError):
        raise DicomError(f"malformed LUT Descriptor in the {keyword}", path=path) from None
    if not 1 <= bits <= 16:
        raise DicomError(f"LUT Descriptor in the {keyword} gives {bits} bits (1 to 16 allowed)", path=path)
    n = n or 65536
    elem = element(item, "LUTData", path)
    if elem is None or elem.value is None:
        raise DicomError(f"the {keyword} has no LUT Data", path=path)
    if isinstance(elem.value, (bytes, bytearray)):  # OW
        little = getattr(ds, "original_encoding", (None, True))[1] is not False
        raw = bytes(elem.value)
        data = np.frombuffer(raw[:len(raw) // 2 * 2], dtype="<u2" if little else ">u2")
    else:  # US / SS values
        data = np.asarray(list(elem.value) if isinstance(elem.value, (MultiValue, list, tuple)) else [elem.value])
    if not np.issubdtype(data.dtype, np.integer):
        raise DicomError(f"malformed LUT Data in the {keyword}", path=path, fix=CORRUPT)
    if data.size < n:
        raise DicomError(f"LUT Data has {data.size} entries, the descriptor says {n}", path=path)
    return Lut(data=data[:n].astype(np.uint32), first_mapped=first, bits=bits)


def apply_luts(x: torch.Tensor, *, slope: float = 1.0, intercept: float = 0.0, modality_lut: Lut | None = None,
               voi_lut: Lut | None = None, window: tuple | None = None, invert: bool = False,
               voi: bool = True) -> torch.Tensor:
    """Integer stored values (F, H, W) → float32 through the intensity pipeline of
    :func:`medcl.io.dicom.read_image`:
    the modality LUT table (else rescale slope/intercept), then, with ``voi``, the VOI LUT table
    (scaled by its 2**bits - 1), else ``window`` (center, width, function), else LINEAR_EXACT over
    the values' own min..max; ``invert`` after windowing. The rescale and window run in the
    ``intensity`` op; table lookups in torch."""
    from medcl.ops import intensity

    if modality_lut is not None:
        x = modality_lut.apply(x)                                    # integer modality values
        slope, intercept = 1.0, 0.0
    if not voi:
        return intensity(x, slope=slope, intercept=intercept, function="none")
    if voi_lut is not None:
        values = intensity(x, slope=slope, intercept=intercept, function="none", dtype=torch.float64)
        out = (voi_lut.apply(values).to(torch.float64) / float(2 ** voi_lut.bits - 1)).to(torch.float32)
        return 1.0 - out if invert else out
    if window is None:  # no VOI in the file: window over the values' own range
        lo_hi = torch.aminmax(x.to(torch.int64) if x.dtype == torch.uint16 else x)
        lo = float(lo_hi.min) * slope + intercept
        hi = float(lo_hi.max) * slope + intercept
        lo, hi = min(lo, hi), max(lo, hi)
        window = ((lo + hi) / 2.0, max(hi - lo, 1e-6), "linear_exact")
    center, width, function = window
    return intensity(x, slope=slope, intercept=intercept, center=center, width=width, function=function,
                     invert=invert)
