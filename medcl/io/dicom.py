"""DICOM images → float tensors: stored values → modality LUT → VOI → MONOCHROME1 inversion.

pydicom reads the file and decodes the pixel data (compressed transfer syntaxes through its
plugins, ``pip install 'medcl[codecs]'``); the intensity pipeline runs in medcl's
``intensity`` op (C++/CUDA kernels). Table LUTs (Modality LUT and VOI LUT Sequences) are
looked up in :func:`medcl.io.dicom_header.apply_luts`. No header value other than the geometry, pixel and LUT attributes medcl uses
ever reaches an error message, a warning or a return value.

Every failure on a bad file is a :class:`DicomError` (never another exception): every header
value medcl reads goes through :mod:`medcl.io.dicom_header`, which turns pydicom's lazy parse
errors into a DicomError naming the element and checks the values and the declared size before
anything is decoded or allocated; a decoder plugin's failure is one too. bench/dicom_fuzz.py and
tests/io/test_dicom_fuzz.py hold it on thousands of mutated files.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import torch

from medcl.io import dicom_header as H
from medcl.io.dicom_codecs import stored_pixels


def _to_tensor(arr: np.ndarray) -> torch.Tensor:
    if not arr.dtype.isnative:  # big-endian transfer syntaxes
        arr = arr.astype(arr.dtype.newbyteorder("="))
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8)
    elif arr.dtype in (np.uint32, np.uint64):
        arr = arr.astype(np.int64)
    return torch.from_numpy(np.ascontiguousarray(arr))


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
        ds = H.read_dataset(path)
        arr = stored_pixels(ds, path)
        mlut = H.read_lut("ModalityLUTSequence", ds, path) if modality_lut else None
        vlut = H.read_lut("VOILUTSequence", ds, path) if voi else None
        window = H.window(ds, path) if voi and vlut is None else None
        mono1 = H.photometric(ds, path) == "MONOCHROME1"
        slope, intercept = H.rescale(ds, path, H.geometry(ds, path)) if modality_lut and mlut is None else (1.0, 0.0)
    frames = _to_tensor(arr)
    if device is not None:
        frames = frames.to(device)
    single = frames.dim() == 2
    x = frames.unsqueeze(0) if single else frames                    # (F, H, W)
    out = H.apply_luts(x, slope=slope, intercept=intercept, modality_lut=mlut, voi_lut=vlut, window=window,
                     invert=invert and mono1, voi=voi)
    return out[0] if single else out
