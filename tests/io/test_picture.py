"""PNG/JPEG pictures as raw grayscale frames: values over 2^bits − 1, colour to luminance, bad files."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from medcl.errors import DicomError
from medcl.io.picture import load_picture, picture_raw


def test_8_and_16_bit_grayscale_round_trip(tmp_path, gen):
    a8 = torch.randint(0, 256, (37, 53), generator=gen, dtype=torch.int64).numpy().astype(np.uint8)
    a16 = torch.randint(0, 65536, (21, 18), generator=gen, dtype=torch.int64).numpy().astype(np.uint16)
    Image.fromarray(a8).save(tmp_path / "a.png")
    Image.fromarray(a16).save(tmp_path / "b.png")
    torch.testing.assert_close(load_picture(tmp_path / "a.png"), torch.from_numpy(a8 / 255.0).float(),
                               rtol=0, atol=1e-6)
    raw = picture_raw(tmp_path / "b.png")
    assert (raw.rows, raw.columns, raw.bits_allocated) == (21, 18, 16)
    torch.testing.assert_close(load_picture(tmp_path / "b.png"), torch.from_numpy(a16 / 65535.0).float(),
                               rtol=0, atol=1e-6)


def test_colour_pictures_become_luminance(tmp_path, gen):
    rgb = torch.randint(0, 256, (16, 24, 3), generator=gen, dtype=torch.int64).numpy().astype(np.uint8)
    Image.fromarray(rgb).save(tmp_path / "c.png")
    want = np.asarray(Image.fromarray(rgb).convert("L")) / 255.0
    torch.testing.assert_close(load_picture(tmp_path / "c.png"), torch.from_numpy(want).float(), rtol=0, atol=1e-6)


def test_bad_pictures_raise_dicom_error(tmp_path):
    (tmp_path / "x.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(DicomError, match="not a readable picture"):
        picture_raw(tmp_path / "x.png")
    with pytest.raises(DicomError, match="no such file"):
        picture_raw(tmp_path / "missing.png")
