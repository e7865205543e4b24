"""DICOM Pixel Data through pydicom and its decoder plugins (``pip install 'medcl[codecs]'``).

:func:`stored_pixels` decodes a grayscale image's stored values (any transfer syntax pydicom
knows), after checking the declared size (:func:`medcl.io.dicom_header.check_size`) and, for
JPEG-family pixel data, that each frame's own codestream header declares the size the DICOM
header does (:func:`check_codestreams`: a flipped bit there would have a decoder plugin allocate
gigabytes before failing). :func:`encapsulated_frames` splits encapsulated Pixel Data into
frames (RLE frames go to the ``decode_pixels`` op undecoded); :func:`codec_status` says which
compressed transfer syntaxes can be decoded here (for ``medcl info``).
"""
from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from medcl.errors import DicomError, MissingCodecError
from medcl.io import dicom_header as H

CODECS_FIX = "install the decoder plugins: pip install 'medcl[codecs]'"

# Transfer syntaxes `medcl info` reports decoder availability for.
CODEC_SYNTAXES = {
    "RLE Lossless": "1.2.840.10008.1.2.5",
    "JPEG Baseline": "1.2.840.10008.1.2.4.50",
    "JPEG Lossless": "1.2.840.10008.1.2.4.70",
    "JPEG-LS": "1.2.840.10008.1.2.4.80",
    "JPEG 2000": "1.2.840.10008.1.2.4.90",
}


def codec_status() -> dict[str, bool]:
    """Which compressed transfer syntaxes pydicom can decode here (for `medcl info`)."""
    from pydicom.pixels import get_decoder

    out = {}
    for name, uid in CODEC_SYNTAXES.items():
        try:
            out[name] = bool(get_decoder(uid).is_available)
        except (NotImplementedError, ValueError):
            out[name] = False
    return out


def encapsulated_frames(ds, pixel_data: bytes, nf: int, path: Path, what: str) -> list[bytes]:
    """The ``nf`` frames of encapsulated Pixel Data (the Extended Offset Table when present)."""
    from pydicom.encaps import generate_frames

    eot, lengths = H.get(ds, "ExtendedOffsetTable", path), H.get(ds, "ExtendedOffsetTableLengths", path)
    extended = (eot, lengths) if eot is not None and lengths is not None else None
    try:
        frames = []
        for frame in generate_frames(pixel_data, number_of_frames=nf, extended_offsets=extended):
            frames.append(bytes(frame))
            if len(frames) == nf:
                break
    except Exception as exc:  # noqa: BLE001 - malformed encapsulation in any way; only pydicom's generator
        raise DicomError(f"cannot read the encapsulated {what} pixel data ({type(exc).__name__})", path=path,
                         fix=H.CORRUPT) from exc
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


def check_codestreams(ds, pixel_data: bytes, g: H.Geometry, samples: int, path: Path) -> None:
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
                             f"the header {g.rows} x {g.columns} with {samples}", path=path, fix=H.CORRUPT)


def stored_pixels(ds, path: Path) -> np.ndarray:
    """Decoded stored values, (H, W) or (F, H, W), integer numpy (pydicom and its plugins)."""
    H.check_grayscale(ds, path)
    tsyntax = H.transfer_syntax(ds, path)
    g, pixel_data = H.geometry(ds, path), H.pixel_bytes(ds, path)
    H.check_size(g, len(pixel_data), tsyntax, path)
    if tsyntax is not None and tsyntax.is_compressed:
        from pydicom.pixels import get_decoder
        try:
            available = get_decoder(tsyntax).is_available
        except NotImplementedError as exc:  # no pydicom decoder exists for it (video, private syntaxes)
            raise DicomError(f"pixel data is compressed as {tsyntax.name}, which medcl cannot decode", path=path,
                             fix="convert it to an image transfer syntax (e.g. dcmdjpeg, gdcmconv --raw)") from exc
        if not available:
            raise MissingCodecError(
                f"pixel data is compressed as {tsyntax.name} ({tsyntax}) and no decoder plugin for it "
                "is installed", path=path, fix=CODECS_FIX)
        if tsyntax.is_encapsulated and tsyntax != H.RLE_LOSSLESS:   # before a plugin allocates what they say
            check_codestreams(ds, pixel_data, g, H.int_value(ds, "SamplesPerPixel", path, 1), path)
    reason = "cannot decode the pixel data"
    try:
        arr = ds.pixel_array
    except Exception as exc:  # noqa: BLE001 - truncated/corrupt pixel data in any encoding; only this call
        raise DicomError(f"{reason} ({type(exc).__name__})", path=path, fix=H.CORRUPT) from exc
    except BaseException as exc:
        if type(exc).__name__ != "PanicException":  # Rust plugins (pylibjpeg-rle) panic on bad data
            raise
        raise DicomError(f"{reason} (the decoder plugin failed)", path=path, fix=H.CORRUPT) from exc
    if not np.issubdtype(arr.dtype, np.integer) and arr.dtype != np.bool_:
        raise DicomError(f"pixel data decodes to {arr.dtype}, not integers", path=path)
    return arr
