"""Reading the DICOM header values medcl uses, so that a bad value is a DicomError and nothing else.

pydicom parses an element's value only when it is first read, so a malformed value raises
(ValueError, NotImplementedError for an unknown VR, struct.error, ...) long after ``dcmread``.
Every element medcl reads goes through :func:`element`, which guards that one pydicom call and
names the element (never its value). The other functions check what medcl relies on: a bit
layout that adds up, finite rescale and window values, a transfer syntax DICOM defines, and a
declared size the Pixel Data can hold (:func:`check_size`, before anything is allocated), and,
for JPEG-family pixel data, a size in each frame's own codestream header that matches the
DICOM header (:func:`check_codestreams`: a flipped bit there would have a decoder plugin
allocate gigabytes before failing).
"""
from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from pathlib import Path

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


def encapsulated_frames(ds, pixel_data: bytes, nf: int, path: Path, what: str) -> list[bytes]:
    """The ``nf`` frames of encapsulated Pixel Data (the Extended Offset Table when present)."""
    from pydicom.encaps import generate_frames

    eot, lengths = get(ds, "ExtendedOffsetTable", path), get(ds, "ExtendedOffsetTableLengths", path)
    extended = (eot, lengths) if eot is not None and lengths is not None else None
    try:
        frames = []
        for frame in generate_frames(pixel_data, number_of_frames=nf, extended_offsets=extended):
            frames.append(bytes(frame))
            if len(frames) == nf:
                break
    except Exception as exc:  # noqa: BLE001 - malformed encapsulation in any way; only pydicom's generator
        raise DicomError(f"cannot read the encapsulated {what} pixel data ({type(exc).__name__})", path=path,
                         fix=CORRUPT) from exc
    if len(frames) != nf:
        raise DicomError(f"{what} pixel data holds {len(frames)} frame(s), Number of Frames says {nf}", path=path)
    return frames


# Start-of-frame markers of JPEG (ISO 10918: baseline, extended, progressive, lossless, arithmetic)
# and JPEG-LS (SOF55, 0xF7); 0xC4 (DHT), 0xC8 (JPG) and 0xCC (DAC) share the range but are not frames.
_JPEG_SOF = {m for m in range(0xC0, 0xD0) if m not in (0xC4, 0xC8, 0xCC)} | {0xF7}
_J2K_SIZ = b"\xff\x4f\xff\x51"   # SOC then SIZ: the first bytes of a JPEG 2000 codestream
_J2K_SEARCH = 1 << 16             # a JP2 wrapper's boxes come first; the codestream starts within this


def codestream_size(frame: bytes) -> tuple[int, int, int] | None:
    """(rows, columns, components) that a JPEG, JPEG-LS or JPEG 2000 codestream declares in its
    own header; rows 0 for a JPEG whose height comes later (DNL); None when no such header is
    found (another encoding, or one too damaged to say)."""
    try:
        if frame[:2] == b"\xff\xd8":                              # JPEG / JPEG-LS: walk the marker segments
            i = 2
            while i + 4 <= len(frame):
                if frame[i] != 0xFF:
                    return None
                marker = frame[i + 1]
                if marker == 0xFF:                                  # fill byte
                    i += 1
                    continue
                if marker in _JPEG_SOF:
                    _, rows, cols, comps = struct.unpack(">BHHB", frame[i + 4:i + 10])
                    return rows, cols, comps
                if marker == 0xDA or marker == 0xD9:                # scan data or the end before any frame header
                    return None
                if 0xD0 <= marker <= 0xD8 or marker == 0x01:        # markers without a length
                    i += 2
                    continue
                i += 2 + struct.unpack(">H", frame[i + 2:i + 4])[0]
            return None
        at = frame.find(_J2K_SIZ, 0, _J2K_SEARCH)
        if at >= 0:                                                 # SIZ: Lsiz Rsiz Xsiz Ysiz XOsiz YOsiz … Csiz
            x, y, x0, y0 = struct.unpack(">IIII", frame[at + 8:at + 24])
            comps = struct.unpack(">H", frame[at + 40:at + 42])[0]
            return y - y0, x - x0, comps
    except struct.error:                                            # the header is cut short
        return None
    return None


def check_codestreams(ds, pixel_data: bytes, g: Geometry, samples: int, path: Path) -> None:
    """DicomError when a frame's JPEG-family codestream declares another size (or number of
    components) than the DICOM header: decoders allocate what the codestream says, so a damaged
    header there could ask for gigabytes. Frames without a recognisable header are left to the
    decoder."""
    for k, frame in enumerate(encapsulated_frames(ds, pixel_data, g.frames, path, "compressed")):
        size = codestream_size(frame)
        if size is None:
            continue
        rows, cols, comps = size
        if cols != g.columns or rows not in (0, g.rows) or comps != samples:
            raise DicomError(f"frame {k}'s compressed data declares {rows} x {cols} with {comps} component(s), "
                             f"the header {g.rows} x {g.columns} with {samples}", path=path, fix=CORRUPT)
