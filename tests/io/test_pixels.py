"""medcl.io.pixels (read_raw → decode_raw through the decode_pixels op) against pydicom's own
pipeline on every file of pydicom's and pydicom-data's test corpora, frame by frame."""
from __future__ import annotations

import importlib.util
import os
import pickle
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from medcl.errors import DicomError
from medcl.io.pixels import (ENCODINGS, RawImage, decode_packed, decode_raw, pack_raw, raw_from_dataset, read_raw,
                             status_reason)
from medcl.ops.decode_pixels import REASONS, STATUS

from conftest import dicom_corpus  # noqa: E402  (tests/ is on sys.path via rootdir conftest)


def _load_test_dicom():
    """tests/io/test_dicom.py as a module (its pydicom reference pipeline is reused, not copied)."""
    spec = importlib.util.spec_from_file_location("_medcl_test_dicom", Path(__file__).with_name("test_dicom.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_pydicom_pipeline = _load_test_dicom()._pydicom_pipeline

CORPUS = dicom_corpus()
NAMES = {os.path.basename(f): f for f in CORPUS}

# Single-channel grayscale files that pydicom decodes but medcl refuses, with why. None today:
# any file that starts being refused (or stops) fails test_corpus_file.
REFUSED_GRAYSCALE: dict[str, str] = {}


def _probe(path: str) -> tuple[str, str]:
    """("compare" | "refuse" | "pydicom-fails", reason) for one corpus file, from pydicom alone."""
    import pydicom

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            ds = pydicom.dcmread(path)
        except Exception as exc:  # noqa: BLE001
            return "pydicom-fails", f"pydicom cannot read it ({type(exc).__name__})"
        if "PixelData" not in ds:
            return "pydicom-fails", "no Pixel Data (not an image)"
        spp = int(ds.get("SamplesPerPixel", 1) or 1)
        photometric = str(ds.get("PhotometricInterpretation", "")).strip().upper()
        if spp != 1 or photometric not in ("MONOCHROME1", "MONOCHROME2"):
            return "refuse", f"not grayscale ({photometric}, {spp} samples per pixel)"
        try:
            ds.pixel_array
        except Exception as exc:  # noqa: BLE001
            return "pydicom-fails", f"pydicom cannot decode its pixel data ({type(exc).__name__})"
        tsyntax = ds.file_meta.TransferSyntaxUID
        return "compare", "rle" if tsyntax == "1.2.840.10008.1.2.5" else "native" if not tsyntax.is_encapsulated else "codec"


PROBES = {f: _probe(f) for f in CORPUS}


def _per_frame_reference(path: str) -> np.ndarray:
    """pydicom's pipeline as (F, H, W). A file with no VOI is windowed over each frame's own min..max
    (decode_raw's MINMAX; test_dicom's reference uses all frames); a constant frame gives 0.5, as
    medcl's LINEAR_EXACT window of width 1e-6 centred on it does."""
    import pydicom

    want = _pydicom_pipeline(path)
    out = want["out"].reshape((-1,) + want["out"].shape[-2:])
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    has_voi = bool(ds.get("VOILUTSequence")) or (ds.get("WindowCenter") is not None and ds.get("WindowWidth") is not None)
    if not has_voi:
        modality = want["modality"].reshape(out.shape)
        lo = modality.min(axis=(1, 2), keepdims=True)
        hi = modality.max(axis=(1, 2), keepdims=True)
        out = np.where(hi > lo, (modality - lo) / np.where(hi > lo, hi - lo, 1.0), 0.5)
        if str(ds.PhotometricInterpretation).upper() == "MONOCHROME1":
            out = 1.0 - out
    return out, want["modality"].reshape(out.shape)


def _id(f: str) -> str:
    return os.path.basename(os.path.dirname(f)) + "/" + os.path.basename(f)


@pytest.mark.parametrize("path", CORPUS, ids=[_id(f) for f in CORPUS])
def test_corpus_file(path, device):
    kind, reason = PROBES[path]
    name = os.path.basename(path)
    if kind == "refuse" or name in REFUSED_GRAYSCALE:
        with pytest.raises(DicomError):
            read_raw(path)
        return
    if kind == "pydicom-fails":
        with pytest.raises(DicomError):     # medcl refuses it too, with a DicomError, never a crash
            read_raw(path)
        pytest.skip(reason)
    raws = read_raw(path)
    want, modality = _per_frame_reference(path)
    assert len(raws) == want.shape[0]
    expected_encoding = {"rle": ENCODINGS["rle"], "codec": ENCODINGS["native_le"]}.get(reason)
    assert expected_encoding is None or all(r.encoding == expected_encoding for r in raws)
    images, sizes, status = decode_raw(raws, device=device)
    assert images.device.type == device.type and images.dtype == torch.float32
    assert status.cpu().tolist() == [0] * len(raws), [status_reason(s) for s in status.cpu().tolist()]
    assert sizes.cpu().tolist() == [list(want.shape[1:])] * len(raws)
    got = images.cpu().double().numpy()
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5, err_msg=name)
    raw_values, _, _ = decode_raw(raws, device=device, voi=False)
    np.testing.assert_allclose(raw_values.cpu().double().numpy(), modality, rtol=1e-6, atol=1e-3, err_msg=name)


def test_corpus_coverage():
    """The corpus holds what the comparison is meant to cover (RLE, big endian, 8/16/32-bit,
    MONOCHROME1, multi-frame, table LUTs), so a missing package cannot shrink it silently."""
    compared = {os.path.basename(f): r for f, (k, r) in PROBES.items() if k == "compare"}
    assert {"MR_small_RLE.dcm", "emri_small_RLE.dcm", "rtdose_rle.dcm", "MR_small_bigendian.dcm",
            "rtdose_expb.dcm", "RG1_UNCR.dcm", "vlut_04.dcm", "mlut_18.dcm", "liver.dcm"} <= set(compared)
    assert sum(r == "rle" for r in compared.values()) >= 4


# --- API --------------------------------------------------------------------------------------------

def test_read_raw_records():
    rle = read_raw(NAMES["emri_small_RLE.dcm"])
    assert len(rle) == 10 and all(r.encoding == ENCODINGS["rle"] and r.data[:4] == b"\x02\x00\x00\x00" for r in rle)
    assert rle[0].window is None and not rle[0].invert
    be = read_raw(NAMES["MR_small_bigendian.dcm"])[0]
    assert be.encoding == ENCODINGS["native_be"] and len(be.data) == 64 * 64 * 2 and be.window is not None
    mono1 = read_raw(NAMES["RG1_UNCR.dcm"])[0]
    assert mono1.invert and (mono1.bits_allocated, mono1.bits_stored, mono1.high_bit) == (16, 15, 14)
    j2k = read_raw(NAMES["RG1_J2KR.dcm"])[0]          # decoded on CPU by pydicom's plugins
    assert j2k.encoding == ENCODINGS["native_le"] and len(j2k.data) == j2k.rows * j2k.columns * 2
    assert read_raw(NAMES["mlut_18.dcm"])[0].modality_lut is not None
    assert read_raw(NAMES["vlut_04.dcm"])[0].voi_lut is not None


def test_raw_from_dataset_equals_read_raw():
    import pydicom
    path = NAMES["MR_small_RLE.dcm"]
    assert raw_from_dataset(pydicom.dcmread(path), path) == read_raw(path)


def test_pack_pickles_and_decode_packed_equals_decode_raw():
    raws = read_raw(NAMES["MR_small_RLE.dcm"]) + read_raw(NAMES["mlut_18.dcm"]) + read_raw(NAMES["CT_small.dcm"])
    packed = pickle.loads(pickle.dumps(pack_raw(raws)))
    a, sa, st_a = decode_packed(packed)
    b, sb, st_b = decode_raw(raws)
    assert torch.equal(a, b) and torch.equal(sa, sb) and torch.equal(st_a, st_b)
    assert a.shape == (3, 512, 512) and sa.tolist() == [[64, 64], [512, 512], [128, 128]]
    assert (a[0, 64:] == 0).all() and (a[0, :, 64:] == 0).all()


def test_corrupt_frame_gets_status_others_decode():
    good = read_raw(NAMES["MR_small_RLE.dcm"])[0]
    cut = RawImage(**{**good.__dict__, "data": good.data[: len(good.data) // 2]})
    wrong = RawImage(**{**good.__dict__, "data": b"\x05" + good.data[1:]})          # segment count 5
    ct = read_raw(NAMES["CT_small.dcm"])[0]
    images, sizes, status = decode_raw([good, cut, wrong, ct])
    assert status.tolist()[0] == 0 and status.tolist()[3] == 0
    assert status.tolist()[1] in (STATUS["rle_short"], STATUS["rle_past_end"])
    assert status.tolist()[2] == STATUS["rle_header"]
    assert (images[1:3] == 0).all()
    torch.testing.assert_close(images[0], decode_raw([good], height=128, width=128)[0][0])
    assert "RLE" in status_reason(int(status[1])) and "header" in status_reason(int(status[2]))


def test_output_smaller_than_frame_is_a_status():
    raws = read_raw(NAMES["CT_small.dcm"]) + read_raw(NAMES["MR_small.dcm"])
    images, _, status = decode_raw(raws, height=100, width=100)
    assert status.tolist() == [STATUS["bad_descriptor"], 0] and images.shape == (2, 100, 100)
    assert (images[0] == 0).all()


def test_status_reasons():
    for code in STATUS.values():
        assert status_reason(code) == REASONS[code] and "\n" not in status_reason(code)
    assert "unknown" in status_reason(99)


def test_empty_batch():
    images, sizes, status = decode_raw([])
    assert images.shape[0] == 0 and sizes.shape == (0, 2) and status.shape == (0,)


def test_truncated_native_is_a_dicom_error():
    with pytest.raises(DicomError, match="truncated"):
        read_raw(NAMES["MR_truncated.dcm"])


def test_errors_do_not_leak_header_values(tmp_path):
    import pydicom
    ds = pydicom.dcmread(NAMES["MR_small.dcm"])
    ds.PatientName = "Secret^Person"
    ds.PatientID = "SECRET-123"
    ds.PixelData = ds.PixelData[:100]
    p = tmp_path / "x.dcm"
    ds.save_as(p)
    with pytest.raises(DicomError) as exc:
        read_raw(p)
    assert "Secret" not in str(exc.value) and "SECRET-123" not in str(exc.value) and "x.dcm" in str(exc.value)


def test_rle_needs_no_codec_jpeg2000_says_which():
    """With every decoder plugin blocked (a machine without medcl[codecs]) RLE still decodes in
    medcl's op, and JPEG 2000 raises MissingCodecError naming the syntax and the extra."""
    code = (
        "import sys\n"
        "for m in ('pylibjpeg','openjpeg','libjpeg','rle','gdcm','PIL'): sys.modules[m] = None\n"
        "from medcl.io.pixels import read_raw, decode_raw\n"
        "from medcl.errors import MissingCodecError\n"
        f"_, _, st = decode_raw(read_raw({NAMES['emri_small_RLE.dcm']!r}))\n"
        "print('RLE', st.tolist())\n"
        f"try:\n    read_raw({NAMES['RG1_J2KR.dcm']!r})\n"
        "except MissingCodecError as e:\n    print('MISSING', e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "RLE [0, 0, 0, 0, 0, 0, 0, 0, 0, 0]" in out.stdout, out.stderr
    assert "MISSING" in out.stdout and "JPEG 2000" in out.stdout and "medcl[codecs]" in out.stdout
