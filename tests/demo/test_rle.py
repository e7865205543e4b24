"""The numpy RLE Lossless encoder against pydicom's decoders (PS3.5 Annex G)."""
from __future__ import annotations

import os

import numpy as np
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.pixels import pixel_array
from pydicom.pixels.decoders import RLELosslessDecoder
from pydicom.uid import RLELossless

from medcl.demo.rle import packbits_rows, rle_encode_frame

PLUGINS = ["pydicom"] + (["pylibjpeg"] if "pylibjpeg" in RLELosslessDecoder.available_plugins else [])


@pytest.fixture
def rng():
    seed = int.from_bytes(os.urandom(4), "little")
    print(f"rng seed {seed}")
    return np.random.default_rng(seed)


def _decode(frame: bytes, shape, dtype, plugin: str) -> np.ndarray:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = RLELossless
    ds.Rows, ds.Columns = shape
    ds.SamplesPerPixel = 1
    ds.BitsAllocated = ds.BitsStored = np.dtype(dtype).itemsize * 8
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = 0
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.PixelData = encapsulate([frame])
    return pixel_array(ds, decoding_plugin=plugin)


def _unpackbits(data: bytes) -> bytes:
    """Reference PackBits decoder (Annex G.3.2), written out byte by byte."""
    out, i = bytearray(), 0
    while i < len(data):
        h = data[i]
        if h < 128:
            out += data[i + 1:i + 2 + h]
            i += 2 + h
        elif h > 128:
            out += bytes([data[i + 1]]) * (257 - h)
            i += 2
        else:
            i += 1
    return bytes(out)


def _run_images(rng) -> list[np.ndarray]:
    """Byte planes with runs of every awkward length (1, 2, 3, 127-130, 255-257) and noise."""
    rows = []
    for length in (1, 2, 3, 4, 127, 128, 129, 130, 131, 255, 256, 257, 384, 385):
        v = int(rng.integers(0, 256))
        row = np.concatenate([np.full(length, v), rng.integers(0, 256, size=int(rng.integers(1, 300)))])
        rows.append(row[:300] if row.size >= 300 else np.pad(row, (0, 300 - row.size), constant_values=v))
    return [np.array(rows, dtype=np.uint8),
            rng.integers(0, 256, size=(37, 301)).astype(np.uint8),  # all literal
            np.full((5, 1000), int(rng.integers(0, 256)), dtype=np.uint8),  # all replicate
            rng.integers(0, 2, size=(64, 129)).astype(np.uint8),  # short runs mixed
            np.repeat(rng.integers(0, 256, size=(20, 40)), rng.integers(1, 6), axis=1).astype(np.uint8),
            rng.integers(0, 256, size=(3, 1)).astype(np.uint8)]  # one column


def test_packbits_rows_decodes_row_by_row(rng):
    for plane in _run_images(rng):
        enc = packbits_rows(plane)
        assert _unpackbits(enc) == plane.tobytes()
        # each row is encoded on its own: decoding the rows' streams separately works too
        assert len(enc) <= plane.size + -(-plane.shape[1] // 128) * plane.shape[0]  # literal overhead bound


def test_packbits_never_emits_noop_or_overlong_runs(rng):
    plane = _run_images(rng)[0]
    enc = packbits_rows(plane)
    i = 0
    while i < len(enc):
        h = enc[i]
        assert h != 128, "header -128 is reserved"
        i += 2 + h if h < 128 else 2


@pytest.mark.parametrize("plugin", PLUGINS)
def test_rle_frame_roundtrip_uint16(rng, plugin):
    smooth = np.cumsum(rng.integers(-3, 4, size=(96, 131)), axis=1) + 2048
    images = [rng.integers(0, 4096, size=(64, 70)), np.clip(smooth, 0, 4095),
              np.zeros((7, 300)), np.full((9, 129), 4095), (rng.integers(0, 2, size=(50, 257)) * 300)]
    for img in images:
        img = img.astype(np.uint16)
        frame = rle_encode_frame(img)
        assert len(frame) % 2 == 0
        header = np.frombuffer(frame[:64], dtype="<u4")
        assert header[0] == 2 and header[1] == 64 and header[2] > 64 and not header[3:].any()
        assert (header[2] - 64) % 2 == 0  # segments padded to even length
        out = _decode(frame, img.shape, np.uint16, plugin)
        np.testing.assert_array_equal(out, img)


@pytest.mark.parametrize("plugin", PLUGINS)
def test_rle_frame_roundtrip_uint8(rng, plugin):
    for img in _run_images(rng):
        out = _decode(rle_encode_frame(img), img.shape, np.uint8, plugin)
        np.testing.assert_array_equal(out, img)


def test_msb_segment_first(rng):
    img = rng.integers(0, 4096, size=(16, 16)).astype(np.uint16)
    frame = rle_encode_frame(img)
    off = np.frombuffer(frame[:64], dtype="<u4")
    high = _unpackbits(frame[off[1]:off[2]])[: img.size]
    assert high == (img >> 8).astype(np.uint8).tobytes()


def test_rle_rejects_bad_frames():
    with pytest.raises(ValueError):
        rle_encode_frame(np.zeros((2, 2, 2), dtype=np.uint16))
    with pytest.raises(ValueError):
        rle_encode_frame(np.zeros((4, 4), dtype=np.int32))
