"""DICOM images → float tensors: stored values → modality LUT → VOI → MONOCHROME1 inversion.

pydicom reads the file and decodes the pixel data (compressed transfer syntaxes through its
plugins, ``pip install 'medcl[codecs]'``); the intensity pipeline runs in medcl's
``intensity`` op (C++/CUDA kernels). Table LUTs (Modality LUT and VOI LUT Sequences) are
looked up here. No header value other than the geometry, pixel and LUT attributes medcl uses
ever reaches an error message, a warning or a return value.
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from medcl.errors import DicomError, MissingCodecError

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
        raise DicomError(f"not a readable DICOM file ({type(exc).__name__})", path=path,
                         fix="the file is truncated or corrupt; re-export or remove it") from None


def _check_grayscale(ds, path: Path) -> None:
    """DicomError unless ds holds integer pixel data of a MONOCHROME1/2 single-sample image."""
    if "PixelData" not in ds:
        if "FloatPixelData" in ds or "DoubleFloatPixelData" in ds:
            raise DicomError("float pixel data is not supported (stored integer values are)", path=path)
        raise DicomError("has no pixel data", path=path, fix="it is not an image (e.g. a report or "
                         "structured set); remove it from the image list")
    spp = int(ds.get("SamplesPerPixel", 1) or 1)
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip().upper()
    if spp != 1 or photometric not in ("MONOCHROME1", "MONOCHROME2"):
        raise DicomError(f"not a grayscale image ({photometric}, {spp} samples per pixel)", path=path,
                         fix="read_image handles MONOCHROME1/MONOCHROME2 images")


def _stored_pixels(ds, path: Path) -> np.ndarray:
    """Decoded stored values, (H, W) or (F, H, W), integer numpy (pydicom and its plugins)."""
    _check_grayscale(ds, path)
    tsyntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if tsyntax is not None and tsyntax.is_compressed:
        from pydicom.pixels import get_decoder
        try:
            available = get_decoder(tsyntax).is_available
        except NotImplementedError:
            available = False
        if not available:
            raise MissingCodecError(
                f"pixel data is compressed as {tsyntax.name} ({tsyntax}) and no decoder plugin for it "
                "is installed", path=path, fix=_CODECS_FIX)
    try:
        arr = ds.pixel_array
    except Exception as exc:  # noqa: BLE001 - truncated/corrupt pixel data in any encoding
        raise DicomError(f"cannot decode the pixel data ({type(exc).__name__})", path=path,
                         fix="the file is truncated or corrupt; re-export or remove it") from None
    if not np.issubdtype(arr.dtype, np.integer) and arr.dtype != np.bool_:
        raise DicomError(f"pixel data decodes to {arr.dtype}, not integers", path=path)
    return arr


def _lut(item, ds, path: Path) -> Lut:
    """A Modality/VOI LUT Sequence item → Lut."""
    try:
        n, first, bits = (int(v) for v in item.LUTDescriptor)
    except (AttributeError, TypeError, ValueError):
        raise DicomError("malformed LUT Descriptor in a LUT sequence", path=path) from None
    n = n or 65536
    elem = item["LUTData"]
    if elem.VR == "OW" or isinstance(elem.value, (bytes, bytearray)):
        little = getattr(ds, "original_encoding", (None, True))[1] is not False
        data = np.frombuffer(bytes(elem.value), dtype="<u2" if little else ">u2")
    else:
        data = np.asarray(elem.value if isinstance(elem.value, (list, tuple)) else [elem.value])
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
        mlut = _lut(ds.ModalityLUTSequence[0], ds, path) if modality_lut and ds.get("ModalityLUTSequence") else None
        vlut = _lut(ds.VOILUTSequence[0], ds, path) if voi and ds.get("VOILUTSequence") else None
        window = _window(ds, path) if voi and vlut is None else None
    frames = _to_tensor(arr)
    if device is not None:
        frames = frames.to(device)
    single = frames.dim() == 2
    x = frames.unsqueeze(0) if single else frames                    # (F, H, W)
    mono1 = str(ds.get("PhotometricInterpretation", "")).strip().upper() == "MONOCHROME1"
    slope, intercept = (1.0, 0.0)
    if modality_lut and mlut is None and ds.get("RescaleSlope") is not None and ds.get("RescaleIntercept") is not None:
        slope, intercept = float(ds.RescaleSlope), float(ds.RescaleIntercept)
    out = apply_luts(x, slope=slope, intercept=intercept, modality_lut=mlut, voi_lut=vlut, window=window,
                     invert=invert and mono1, voi=voi)
    return out[0] if single else out


def _first(value) -> float:
    from pydicom.multival import MultiValue
    return float(value[0] if isinstance(value, (MultiValue, list, tuple)) else value)


def _window(ds, path: Path):
    """(center, width, function) of the first window in the file, or None."""
    if ds.get("WindowCenter") is None or ds.get("WindowWidth") is None:
        return None
    try:
        center, width = _first(ds.WindowCenter), _first(ds.WindowWidth)
    except (TypeError, ValueError, IndexError):
        raise DicomError("malformed Window Center/Width", path=path) from None
    function = str(ds.get("VOILUTFunction", "LINEAR") or "LINEAR").strip().upper()
    if function not in ("LINEAR", "LINEAR_EXACT", "SIGMOID"):
        raise DicomError(f"unknown VOI LUT Function {function!r}", path=path,
                         fix="expected LINEAR, LINEAR_EXACT or SIGMOID")
    if (function == "LINEAR" and width < 1) or width <= 0:
        raise DicomError(f"invalid Window Width {width} for {function}", path=path,
                         fix="pass voi=False, or fix the file's window")
    return center, width, function.lower()
