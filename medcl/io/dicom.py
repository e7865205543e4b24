"""DICOM images → float tensors: stored values → modality LUT → VOI → MONOCHROME1 inversion.

pydicom reads the file and decodes the pixel data (compressed transfer syntaxes through its
plugins, ``pip install 'medcl[codecs]'``); the intensity pipeline runs in medcl's
``intensity`` op (C++/CUDA kernels). Table LUTs (Modality LUT and VOI LUT Sequences) are
looked up here. No header value other than the geometry, pixel and LUT attributes medcl uses
ever reaches an error message, a warning or a return value.

Every failure on a bad file is a :class:`DicomError` (never another exception): every header
value medcl reads goes through :mod:`medcl.io._dicom_header`, which turns pydicom's lazy parse
errors into a DicomError naming the element and checks the values and the declared size before
anything is decoded or allocated; a decoder plugin's failure is one too. bench/dicom_fuzz.py and
tests/io/test_dicom_fuzz.py hold it on thousands of mutated files.
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from medcl.errors import DicomError, MissingCodecError
from medcl.io import _dicom_header as H

_CODECS_FIX = "install the decoder plugins: pip install 'medcl[codecs]'"

# Transfer syntaxes `medcl info` reports decoder availability for.
_CODEC_SYNTAXES = {
    "RLE Lossless": "1.2.840.10008.1.2.5",
    "JPEG Baseline": "1.2.840.10008.1.2.4.50",
    "JPEG Lossless": "1.2.840.10008.1.2.4.70",
    "JPEG-LS": "1.2.840.10008.1.2.4.80",
    "JPEG 2000": "1.2.840.10008.1.2.4.90",
}


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


def codec_status() -> dict[str, bool]:
    """Which compressed transfer syntaxes pydicom can decode here (for `medcl info`)."""
    from pydicom.pixels import get_decoder

    out = {}
    for name, uid in _CODEC_SYNTAXES.items():
        try:
            out[name] = bool(get_decoder(uid).is_available)
        except (NotImplementedError, ValueError):
            out[name] = False
    return out


def _read_dataset(path: Path):
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
        raise DicomError(f"not a readable DICOM file ({type(exc).__name__})", path=path, fix=H.CORRUPT) from exc


def _check_grayscale(ds, path: Path) -> None:
    """DicomError unless ds holds integer pixel data of a MONOCHROME1/2 single-sample image."""
    if "PixelData" not in ds:
        if "FloatPixelData" in ds or "DoubleFloatPixelData" in ds:
            raise DicomError("float pixel data is not supported (stored integer values are)", path=path)
        raise DicomError("has no pixel data", path=path, fix="it is not an image (e.g. a report or "
                         "structured set); remove it from the image list")
    spp = H.int_value(ds, "SamplesPerPixel", path, 1)
    photometric = H.photometric(ds, path)
    if spp != 1 or photometric not in ("MONOCHROME1", "MONOCHROME2"):
        shown = photometric if photometric in H.PHOTOMETRIC else "an unknown Photometric Interpretation"
        raise DicomError(f"not a grayscale image ({shown}, {spp} samples per pixel)", path=path,
                         fix="read_image handles MONOCHROME1/MONOCHROME2 images")


def _stored_pixels(ds, path: Path) -> np.ndarray:
    """Decoded stored values, (H, W) or (F, H, W), integer numpy (pydicom and its plugins)."""
    _check_grayscale(ds, path)
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
                "is installed", path=path, fix=_CODECS_FIX)
        if tsyntax.is_encapsulated and tsyntax != H.RLE_LOSSLESS:   # before a plugin allocates what they say
            H.check_codestreams(ds, pixel_data, g, H.int_value(ds, "SamplesPerPixel", path, 1), path)
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


def _lut(keyword: str, ds, path: Path) -> Lut | None:
    """The first item of a Modality/VOI LUT Sequence → Lut (None when the file has none)."""
    from pydicom.multival import MultiValue
    from pydicom.sequence import Sequence

    seq = H.get(ds, keyword, path)
    if seq is None or isinstance(seq, Sequence) and len(seq) == 0:
        return None
    if not isinstance(seq, Sequence):
        raise DicomError(f"malformed {keyword} element (not a sequence)", path=path, fix=H.CORRUPT)
    item = seq[0]
    desc = H.get(item, "LUTDescriptor", path)
    try:
        n, first, bits = (int(v) for v in desc)
    except (TypeError, ValueError):
        raise DicomError(f"malformed LUT Descriptor in the {keyword}", path=path) from None
    if not 1 <= bits <= 16:
        raise DicomError(f"LUT Descriptor in the {keyword} gives {bits} bits (1 to 16 allowed)", path=path)
    n = n or 65536
    elem = H.element(item, "LUTData", path)
    if elem is None or elem.value is None:
        raise DicomError(f"the {keyword} has no LUT Data", path=path)
    if isinstance(elem.value, (bytes, bytearray)):  # OW
        little = getattr(ds, "original_encoding", (None, True))[1] is not False
        raw = bytes(elem.value)
        data = np.frombuffer(raw[:len(raw) // 2 * 2], dtype="<u2" if little else ">u2")
    else:  # US / SS values
        data = np.asarray(list(elem.value) if isinstance(elem.value, (MultiValue, list, tuple)) else [elem.value])
    if not np.issubdtype(data.dtype, np.integer):
        raise DicomError(f"malformed LUT Data in the {keyword}", path=path, fix=H.CORRUPT)
    if data.size < n:
        raise DicomError(f"LUT Data has {data.size} entries, the descriptor says {n}", path=path)
    return Lut(data=data[:n].astype(np.uint32), first_mapped=first, bits=bits)


def _to_tensor(arr: np.ndarray) -> torch.Tensor:
    if not arr.dtype.isnative:  # big-endian transfer syntaxes
        arr = arr.astype(arr.dtype.newbyteorder("="))
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8)
    elif arr.dtype in (np.uint32, np.uint64):
        arr = arr.astype(np.int64)
    return torch.from_numpy(np.ascontiguousarray(arr))


def apply_luts(x: torch.Tensor, *, slope: float = 1.0, intercept: float = 0.0, modality_lut: Lut | None = None,
               voi_lut: Lut | None = None, window: tuple | None = None, invert: bool = False,
               voi: bool = True) -> torch.Tensor:
    """Integer stored values (F, H, W) → float32 through the intensity pipeline of :func:`read_image`:
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


def read_image(path: str | os.PathLike, *, modality_lut: bool = True, voi: bool = True,
               invert: bool = True, device: str | torch.device | None = None) -> torch.Tensor:
    """Reads a grayscale DICOM image as float32, shaped like pydicom's ``pixel_array``.

    (H, W), or (F, H, W) for multi-frame. With every step on, values are in [0, 1]:
    - ``modality_lut``: Modality LUT Sequence if present, else rescale slope/intercept;
    - ``voi``: VOI LUT Sequence if present (output scaled by its 2**bits - 1), else the first
      window (LINEAR, LINEAR_EXACT or SIGMOID per VOI LUT Function); a file with neither is
      windowed LINEAR_EXACT over its own min..max modality values (all frames together);
    - ``invert``: MONOCHROME1 images are inverted after windowing (so bright = dense).
    With ``voi=False`` the result is modality values (or stored values without the modality
    step) and ``invert`` does not apply. Bad files raise :class:`medcl.DicomError`.
    """
    path = Path(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warnings can quote header values
        ds = _read_dataset(path)
        arr = _stored_pixels(ds, path)
        mlut = _lut("ModalityLUTSequence", ds, path) if modality_lut else None
        vlut = _lut("VOILUTSequence", ds, path) if voi else None
        window = H.window(ds, path) if voi and vlut is None else None
        mono1 = H.photometric(ds, path) == "MONOCHROME1"
        slope, intercept = H.rescale(ds, path, H.geometry(ds, path)) if modality_lut and mlut is None else (1.0, 0.0)
    frames = _to_tensor(arr)
    if device is not None:
        frames = frames.to(device)
    single = frames.dim() == 2
    x = frames.unsqueeze(0) if single else frames                    # (F, H, W)
    out = apply_luts(x, slope=slope, intercept=intercept, modality_lut=mlut, voi_lut=vlut, window=window,
                     invert=invert and mono1, voi=voi)
    return out[0] if single else out
