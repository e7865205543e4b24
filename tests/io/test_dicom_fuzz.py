"""Mutated DICOM files through read_image, read_raw + decode_raw and prepare: each ends in success,
a decode status or a DicomError, never another exception and never a hang.

The mutations (bit flips, truncations, overwritten header values and lengths) are bench/dicom_fuzz.py's;
a failure names the seed and case, which ``python bench/dicom_fuzz.py --seed S`` reproduces.
"""
from __future__ import annotations

import csv
import importlib.util
import os
import random
import warnings
from pathlib import Path

import pytest

from medcl.errors import DicomError
from medcl.io.dicom import read_image
from medcl.io.pixels import decode_raw, read_raw

from conftest import dicom_corpus  # noqa: E402  (tests/ is on sys.path via rootdir conftest)

_spec = importlib.util.spec_from_file_location(
    "dicom_fuzz", Path(__file__).resolve().parents[2] / "bench" / "dicom_fuzz.py")
F = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(F)

CASES = 300          # in CI: a few seconds
MAX_BYTES = 150_000  # corpus files up to this size (the large run uses up to 1.2 MB)
LIMIT_S = 20.0       # per case and route; a hang fails as "timeout"


@pytest.fixture(scope="module")
def files():
    return F.corpus(MAX_BYTES)


@pytest.fixture
def seed():
    s = int.from_bytes(os.urandom(3), "little")
    print(f"fuzz seed {s}")  # shown when a test fails
    return s


def test_mutated_files_give_success_or_dicom_error(files, seed, tmp_path):
    res = F.run(files, CASES, seed, LIMIT_S, str(tmp_path))
    bad = [f"case {f['case']} {f['route']}: {f['outcome']} ({f['source']}, {', '.join(f['mutations'])})"
           for f in res["failures"]]
    assert not bad, f"seed {seed} (python bench/dicom_fuzz.py --seed {seed} --cases {CASES}):\n" + "\n".join(bad)
    # The mutations leave both readable and broken files: about 12% read (2,000 cases, seed 99),
    # so 36 ± 6 of 300; at least 10 fails by chance about once in 10^5 runs.
    for route, counts in res["outcomes"].items():
        assert counts.get("ok", 0) >= CASES // 30 and counts.get("DicomError", 0) >= CASES // 2, (route, counts)


def test_prepare_lists_mutated_files_as_bad_files(files, seed, tmp_path):
    """prepare on a folder of mutated files: every unreadable one is in bad_files.csv with a
    DicomError reason, exactly those read_raw refuses or decode_raw flags; the run finishes."""
    from medcl.prepare import prepare

    src = tmp_path / "src"
    src.mkdir()
    for i in range(40):
        (src / f"case{i:03d}.dcm").write_bytes(F.case(files, seed, i)[1])
    expect_bad = set()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for f in sorted(src.iterdir()):
            try:
                raws = read_raw(f)
                if not raws or decode_raw(raws, voi=False)[2].any():
                    expect_bad.add(f.name)
            except DicomError:
                expect_bad.add(f.name)
    # ids="path": people from the paths, so only the pixels decide (with the default, a bit flip in
    # the PatientID element also makes a file bad: its person cannot be known).
    summary = prepare(src, tmp_path / "out", workers=1, ids="path")
    with open(tmp_path / "out" / "bad_files.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert {r["path"] for r in rows} == expect_bad, f"seed {seed}"
    assert all(r["reason"].startswith(("DicomError: ", "MissingCodecError: ")) for r in rows), rows
    assert summary.n_files == 40 and summary.n_bad == len(expect_bad)


# --- the cases the large fuzz run found, each built by hand ---------------------------------------

def _names():
    return {os.path.basename(f): f for f in dicom_corpus()}


def _with_value(name: str, keyword: str, value: bytes, **more: bytes) -> bytes:
    data = Path(_names()[name]).read_bytes()
    for kw, v in {keyword: value, **more}.items():
        data = F._replace(data, F._elements(data)[kw], v, random.Random(0))
    return data


def _unknown_vr(name: str, keyword: str) -> bytes:
    data = Path(_names()[name]).read_bytes()
    tell = F._elements(data)[keyword][0]
    return data[:tell - 4] + b"CC" + data[tell - 2:]  # explicit VR: tag, VR, 2-byte length, value


def _transfer_syntax(name: str, uid: bytes) -> bytes:
    data = Path(_names()[name]).read_bytes()
    at = data.index(F._TSYNTAX_TAG)
    length = int.from_bytes(data[at + 6:at + 8], "little")
    return data[:at + 6] + len(uid).to_bytes(2, "little") + uid + data[at + 8 + length:]


def _rle_panic() -> bytes:
    """A bit of RLE data that makes pylibjpeg-rle's Rust decoder panic (a BaseException)."""
    data = bytearray(Path(_names()["rtdose_rle_1frame.dcm"]).read_bytes())
    data[data.rindex(b"\xe0\x7f\x10\x00") + 8 + 32] ^= 0x01
    return bytes(data)


def _codestream_size(name: str, marker: bytes, offset: int, value: bytes) -> bytes:
    """The file with ``value`` written ``offset`` bytes after the first ``marker`` of its pixel
    data: a size field of the codestream's own header (the DICOM header keeps its size)."""
    data = bytearray(Path(_names()[name]).read_bytes())
    at = data.index(marker, data.rindex(b"\xe0\x7f\x10\x00")) + offset
    data[at:at + len(value)] = value
    return bytes(data)


CASES_BY_HAND = {  # name → (bytes, words the message has); before: the exception in the comment
    "unknown VR": (lambda: _unknown_vr("MR_small.dcm", "PhotometricInterpretation"),
                   "malformed PhotometricInterpretation"),                                  # NotImplementedError
    "not a transfer syntax": (lambda: _transfer_syntax("CT_small.dcm", b"1.2.3\x00"),
                              "Transfer Syntax UID"),                                       # ValueError
    "slope not a number": (lambda: _with_value("CT_small.dcm", "RescaleSlope", b"abc "), "RescaleSlope"),  # ValueError
    "two slopes": (lambda: _with_value("CT_small.dcm", "RescaleSlope", b"1\\2 "), "RescaleSlope"),         # TypeError
    "slope overflows": (lambda: _with_value("CT_small.dcm", "RescaleSlope", b"1e305 "), "Rescale"),      # ValueError
    "window center nan": (lambda: _with_value("MR_small.dcm", "WindowCenter", b"nan "), "WindowCenter"),  # ValueError
    "absurd size, JPEG 2000": (lambda: _with_value("MR_small_jp2klossless.dcm", "Rows", b"\xff\xff",
                                                   Columns=b"\xff\xff"), "would decode to"),  # (size guard)
    "absurd size, RLE": (lambda: _with_value("MR_small_RLE.dcm", "Rows", b"\xff\xff"), "cannot fit"),
    "RLE decoder panic": (_rle_panic, "cannot decode the pixel data"),                      # PanicException
    # a bit flipped in a codestream's own size: openjpeg allocated ~24 GB for 16,778,240 rows
    # (the OOM killer ended bench/dicom_fuzz.py --seed 12); JPEG-LS read the same way as JPEG
    "codestream size, JPEG 2000": (lambda: _codestream_size("MR_small_jp2klossless.dcm", b"\xff\x4f\xff\x51",
                                                            12, (4096).to_bytes(4, "big")), "compressed data declares"),
    "codestream size, JPEG-LS": (lambda: _codestream_size("MR_small_jpeg_ls_lossless.dcm", b"\xff\xf7", 5,
                                                          b"\xff\xf0"), "compressed data declares"),
    "video transfer syntax": (lambda: _transfer_syntax("MR_small.dcm", b"1.2.840.10008.1.2.4.100\x00"),
                              "which medcl cannot decode"),     # MissingCodecError, "install medcl[codecs]"
}


@pytest.mark.parametrize("case", sorted(CASES_BY_HAND))
def test_each_found_case_is_a_dicom_error(case, tmp_path):
    make, words = CASES_BY_HAND[case]
    path = tmp_path / "case.dcm"
    path.write_bytes(make())
    with pytest.raises(DicomError) as err:
        read_image(path)
    assert words in str(err.value) and str(path) in str(err.value), str(err.value)
    try:
        raws = read_raw(path)
    except DicomError as exc:
        assert words in str(exc) and str(path) in str(exc), str(exc)
    else:  # RLE: medcl's own decoder reports the bad frame in its status
        assert case == "RLE decoder panic" and decode_raw(raws)[2].any()
