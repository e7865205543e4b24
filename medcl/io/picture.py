"""PNG / JPEG / TIFF pictures (e.g. fundus photographs, as ContIG used) as raw grayscale frames.

Pillow reads the file; colour pictures are converted to luminance (ITU-R 601-2, Pillow's "L"),
16-bit grayscale pictures keep their 16 bits. The frame's window maps the full range onto
[0, 1] (LINEAR_EXACT over 0 .. 2^bits − 1), so a picture goes through the same decode and augment
ops as a DICOM radiograph. No metadata of the file is read.
"""
from __future__ import annotations

import os

import numpy as np

from medcl.errors import DicomError


def picture_raw(path: str | os.PathLike):
    """One RawImage (native little-endian stored values) from a picture file."""
    from PIL import Image, UnidentifiedImageError

    from medcl.io.pixels import ENCODINGS, RawImage

    try:
        with Image.open(path) as im:
            if im.mode in ("I;16", "I;16L", "I;16B", "I"):
                arr = np.asarray(im, dtype=np.int64)
                bits = 16
                arr = np.clip(arr, 0, 65535).astype("<u2")
            else:
                arr = np.asarray(im.convert("L"), dtype=np.uint8)
                bits = 8
    except FileNotFoundError:
        raise DicomError("no such file", path=path, fix="check the path or the manifest") from None
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise DicomError(f"not a readable picture ({type(exc).__name__})", path=path,
                         fix="the file is truncated or corrupt; re-export or remove it") from None
    top = float(2 ** bits - 1)
    rows, cols = arr.shape
    return RawImage(data=np.ascontiguousarray(arr).tobytes(), rows=rows, columns=cols, bits_allocated=bits,
                    bits_stored=bits, high_bit=bits - 1, signed=False, encoding=ENCODINGS["native_le"],
                    window=(top / 2.0, top, "linear_exact"))


def load_picture(path: str | os.PathLike):
    """(H, W) float32 in [0, 1] from a picture file, through the decode op on the CPU."""
    from medcl.io.pixels import decode_raw

    images, _, _ = decode_raw([picture_raw(path)])
    return images[0]
