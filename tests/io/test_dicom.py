"""medcl.io.dicom.read_image against pydicom's own pipeline on pydicom's and pydicom-data's files."""
from __future__ import annotations

import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch

from medcl.errors import DicomError, MissingCodecError
from medcl.io.dicom import read_image

from conftest import dicom_corpus  # noqa: E402  (tests/ is on sys.path via rootdir conftest)


def _pydicom_pipeline(path):
    """pixel_array → apply_modality_lut → apply_voi_lut → MONOCHROME1 inversion, in [0, 1].

    pydicom's VOI output range (y_min..y_max: the LUT's 0..2**bits-1, or for windows the
    stored range through the rescale, PS3.3 C.11.2.1.2) is mapped to 0..1; a file with no
    VOI is mapped over its own min..max. Returns None when the file is not for read_image."""
    import pydicom
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            ds = pydicom.dcmread(path)
        except Exception:
            return None
        if "PixelData" not in ds or int(ds.get("SamplesPerPixel", 1)) != 1:
            return None
        if str(ds.get("PhotometricInterpretation", "")).upper() not in ("MONOCHROME1", "MONOCHROME2"):
            return None
        try:
            arr = ds.pixel_array
        except Exception:
            return None
        modality = apply_modality_lut(arr, ds).astype(np.float64)
        voi = apply_voi_lut(modality, ds).astype(np.float64)
        if ds.get("VOILUTSequence"):
            y_min, y_max = 0.0, 2.0 ** int(ds.VOILUTSequence[0].LUTDescriptor[2]) - 1
        elif ds.get("WindowCenter") is not None and ds.get("WindowWidth") is not None:
            if ds.get("ModalityLUTSequence"):
                y_min, y_max = 0.0, 2.0 ** int(ds.ModalityLUTSequence[0].LUTDescriptor[2]) - 1
            elif ds.PixelRepresentation == 0:
                y_min, y_max = 0.0, 2.0 ** ds.BitsStored - 1
            else:
                y_min, y_max = -(2.0 ** (ds.BitsStored - 1)), 2.0 ** (ds.BitsStored - 1) - 1
            if ds.get("RescaleSlope") is not None and ds.get("RescaleIntercept") is not None:
                y_min = y_min * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
                y_max = y_max * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
        else:
            y_min, y_max = float(modality.min()), float(modality.max())
            if y_max == y_min:
                y_max = y_min + 1e-6
        out = (voi - y_min) / (y_max - y_min)
        if ds.PhotometricInterpretation == "MONOCHROME1":
            out = 1.0 - out
        return {"out": out, "modality": modality, "name": os.path.basename(path)}


CORPUS = dicom_corpus()


def test_corpus_is_there():
    names = {os.path.basename(f) for f in CORPUS}
    assert {"RG1_UNCR.dcm", "RG3_UNCR.dcm", "CT_small.dcm", "mlut_18.dcm", "vlut_04.dcm"} <= names, \
        "pydicom-data (a test dependency) is not installed"


@pytest.mark.parametrize("path", CORPUS, ids=[os.path.basename(os.path.dirname(f)) + "/" + os.path.basename(f)
                                              for f in CORPUS])
def test_matches_pydicom_pipeline(path):
    want = _pydicom_pipeline(path)
    if want is None:
        # Not a grayscale image pydicom can decode: read_image must say so with DicomError.
        with pytest.raises(DicomError):
            read_image(path)
        return
    got = read_image(path)
    assert got.dtype == torch.float32
    assert tuple(got.shape) == want["out"].shape
    assert float(got.min()) >= 0.0 and float(got.max()) <= 1.0
    np.testing.assert_allclose(got.numpy(), want["out"], rtol=0, atol=1e-5, err_msg=want["name"])
    raw = read_image(path, voi=False)
    np.testing.assert_allclose(raw.double().numpy(), want["modality"], rtol=1e-6, atol=1e-3,
                               err_msg=want["name"])


def test_real_radiographs_rg1_rg3_monochrome1():
    names = {os.path.basename(f): f for f in CORPUS}
    for name in ("RG1_UNCR.dcm", "RG3_UNCR.dcm", "RG1_J2KR.dcm"):
        img = read_image(names[name])
        want = _pydicom_pipeline(names[name])["out"]
        assert img.shape == want.shape and img.shape[0] > 1000  # full-size CR radiographs
        assert float((img.numpy() - want).__abs__().max()) < 1e-5
        # Inversion applied: without it, the result is the complement.
        np.testing.assert_allclose(read_image(names[name], invert=False).numpy(), 1 - want, atol=1e-5)


def test_multiframe_shape():
    names = {os.path.basename(f): f for f in CORPUS}
    img = read_image(names["emri_small.dcm"])
    assert img.ndim == 3 and img.shape[0] == 10


def test_tables_are_used():
    names = {os.path.basename(f): f for f in CORPUS}
    # mlut_18: a Modality LUT Sequence; vlut_04: a VOI LUT Sequence (no window tags).
    m = read_image(names["mlut_18.dcm"], voi=False)
    import pydicom
    from pydicom.pixels import apply_modality_lut
    ds = pydicom.dcmread(names["mlut_18.dcm"])
    np.testing.assert_allclose(m.numpy(), apply_modality_lut(ds.pixel_array, ds), atol=1e-3)
    assert not np.allclose(m.numpy(), ds.pixel_array)
    v = read_image(names["vlut_04.dcm"])
    assert 0 <= float(v.min()) and float(v.max()) <= 1


def test_modality_lut_on_unsigned_16_bit(tmp_path, gen):
    """A Modality LUT Sequence over unsigned 16-bit stored values (uint16 tensors)."""
    import pydicom
    from pydicom.pixels import apply_modality_lut
    names = {os.path.basename(f): f for f in CORPUS}
    ds = pydicom.dcmread(names["mlut_18.dcm"])
    arr = torch.randint(0, 4096, (ds.Rows, ds.Columns), generator=gen, dtype=torch.int64).numpy().astype("<u2")
    ds.PixelRepresentation, ds.BitsStored, ds.HighBit = 0, 12, 11
    ds.PixelData = arr.tobytes()
    ds.save_as(tmp_path / "u16.dcm")
    want = apply_modality_lut(pydicom.dcmread(tmp_path / "u16.dcm").pixel_array, ds)
    np.testing.assert_allclose(read_image(tmp_path / "u16.dcm", voi=False).numpy(), want, atol=1e-3)


# --- bad inputs ---------------------------------------------------------------------------

def test_missing_and_empty_and_random(tmp_path):
    with pytest.raises(DicomError, match="no such file"):
        read_image(tmp_path / "nope.dcm")
    (tmp_path / "empty.dcm").write_bytes(b"")
    with pytest.raises(DicomError, match="empty"):
        read_image(tmp_path / "empty.dcm")
    (tmp_path / "random.dcm").write_bytes(os.urandom(5000))
    with pytest.raises(DicomError, match="random.dcm"):
        read_image(tmp_path / "random.dcm")


def test_truncated(tmp_path):
    names = {os.path.basename(f): f for f in CORPUS}
    data = open(names["CT_small.dcm"], "rb").read()
    pixel_tag = data.rindex(b"\xe0\x7f\x10\x00")  # (7FE0,0010) Pixel Data, little endian
    for cut in (200, len(data) // 3, pixel_tag + 100, pixel_tag + 20000):
        p = tmp_path / f"cut{cut}.dcm"
        p.write_bytes(data[:cut])
        with pytest.raises(DicomError, match=f"cut{cut}.dcm"):
            read_image(p)


def test_no_pixel_data(tmp_path):
    import pydicom
    names = {os.path.basename(f): f for f in CORPUS}
    ds = pydicom.dcmread(names["CT_small.dcm"])
    del ds.PixelData
    p = tmp_path / "nopix.dcm"
    ds.save_as(p)
    with pytest.raises(DicomError, match="no pixel data"):
        read_image(p)


def test_errors_do_not_leak_header_values(tmp_path):
    import pydicom
    names = {os.path.basename(f): f for f in CORPUS}
    ds = pydicom.dcmread(names["CT_small.dcm"])
    ds.PatientName = "Secret^Person"
    ds.PatientID = "SECRET-123"
    del ds.PixelData
    p = tmp_path / "x.dcm"
    ds.save_as(p)
    with pytest.raises(DicomError) as exc:
        read_image(p)
    assert "Secret" not in str(exc.value) and "SECRET-123" not in str(exc.value)


def test_missing_codec_names_syntax_and_extra():
    names = {os.path.basename(f): f for f in CORPUS}
    # Block every JPEG 2000 plugin in a fresh interpreter, as on a machine without medcl[codecs].
    code = (
        "import sys\n"
        "for m in ('pylibjpeg','openjpeg','libjpeg','rle','gdcm','PIL'): sys.modules[m] = None\n"
        "from medcl.io.dicom import read_image\n"
        "from medcl.errors import MissingCodecError\n"
        f"try:\n    read_image({names['RG1_J2KR.dcm']!r})\n"
        "except MissingCodecError as e:\n    print('MISSING', e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "MISSING" in out.stdout, out.stderr
    assert "JPEG 2000" in out.stdout and "medcl[codecs]" in out.stdout
    assert issubclass(MissingCodecError, DicomError)
