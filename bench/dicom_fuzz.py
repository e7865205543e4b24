"""Fuzzing of medcl's DICOM readers: every outcome on a mutated file is success or a DicomError.

Real files (pydicom's test files and pydicom-data) are mutated deterministically from a seed:
bit flips in the header and in the pixel data, truncation at a random offset, overwritten
values of the elements medcl reads (geometry, bit layout, frames, rescale, window, photometric
interpretation, transfer syntax) and overwritten element lengths; one to three mutations a case.
Each mutated file goes through ``read_image`` and through ``read_raw`` + ``decode_raw``; an
outcome is "ok", "status" (decode_raw's nonzero status: a bad frame reported, not raised),
"DicomError"/"MissingCodecError", "timeout" (past the per-case limit) or the name of any other
exception, which is a bug. tests/io/test_dicom_fuzz.py runs a few hundred cases from here.

Writes bench/results/cpu/dicom_fuzz.json. Usage: python bench/dicom_fuzz.py [--cases 5000] [--seed 0]
[--max-bytes 1200000]; exits 1 if any outcome is neither success nor a DicomError.
"""
from __future__ import annotations

import argparse
import io
import os
import random
import signal
import struct
import sys
import tempfile
import time
import warnings
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

# Elements medcl reads, by keyword, and the values written over them.
US_KEYWORDS = ("Rows", "Columns", "BitsAllocated", "BitsStored", "HighBit", "PixelRepresentation",
               "SamplesPerPixel")
STRING_KEYWORDS = ("NumberOfFrames", "RescaleSlope", "RescaleIntercept", "WindowCenter", "WindowWidth",
                   "PhotometricInterpretation", "VOILUTFunction")
US_VALUES = (0, 1, 2, 7, 8, 9, 12, 15, 16, 17, 24, 31, 32, 33, 64, 255, 256, 4096, 0x7FFF, 0x8000, 0xFFFF)
NUMBER_STRINGS = ("0", "-1", "1", "2", "3", "1e308", "-1e308", "1e-320", "nan", "inf", "-inf", "abc", "1\\2\\3",
                  "\\", " ", "", "99999999", "2147483648", "-0", "+5", "0x10", "1.5", "\x00\x00", "\xff\xfe",
                  "65535", "4294967296")
PHOTOMETRIC = ("MONOCHROME1", "MONOCHROME2", "RGB", "PALETTE COLOR", "YBR_FULL", "YBR_FULL_422", "",
               "monochrome2", "MONO", "\x00")
VOI_FUNCTIONS = ("LINEAR", "LINEAR_EXACT", "SIGMOID", "", "linear", "CUBIC")
TRANSFER_SYNTAXES = ("1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2", "1.2.840.10008.1.2.1.99",
                     "1.2.840.10008.1.2.5", "1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51",
                     "1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.70", "1.2.840.10008.1.2.4.80",
                     "1.2.840.10008.1.2.4.81", "1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91",
                     "1.2.840.10008.1.2.4.201", "1.2.840.10008.1.2.4.100", "1.2.3", "", "garbage")
LENGTH_VALUES = (0, 1, 3, 0xFF, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF, 0xFFFFFFFE)
MUTATIONS = ("flip_header", "flip_pixels", "truncate", "value", "value", "length", "transfer_syntax")
LONG_LENGTH_VRS = {"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"}
_TSYNTAX_TAG = b"\x02\x00\x10\x00UI"  # file meta (0002,0010): always explicit VR little endian


class CaseTimeout(BaseException):
    """A case ran past its limit (a BaseException, so no `except Exception` in medcl swallows it)."""


def corpus(max_bytes: int) -> list[str]:
    """pydicom's and pydicom-data's files that hold pixel data, up to ``max_bytes`` each; those with
    a grayscale photometric interpretation are listed three times (so drawn more often)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from conftest import dicom_corpus

    import pydicom

    files = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for f in dicom_corpus():
            if os.path.getsize(f) > max_bytes:
                continue
            try:
                ds = pydicom.dcmread(f, force=True, stop_before_pixels=False, defer_size=64)
                if "PixelData" in ds:
                    gray = str(ds.get("PhotometricInterpretation", "")).startswith("MONOCHROME")
                    files += [f] * (3 if gray else 1)
            except Exception:  # noqa: BLE001 - the corpus holds deliberately broken files
                continue
    return files


# --- mutations (bytes → bytes) ------------------------------------------------------------------

def _elements(data: bytes) -> dict:
    """keyword → (value_tell, length, length field offset, its size, '<' or '>') of top-level elements."""
    import pydicom
    from pydicom.datadict import keyword_for_tag

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(io.BytesIO(data), force=True, defer_size=None)
    implicit, little = ds.original_encoding
    if implicit is None:
        return {}
    out = {}
    for tag in list(ds.keys()):
        raw = ds.get_item(tag)
        if not getattr(raw, "is_raw", False) or raw.value_tell is None:
            continue
        vr = None if implicit else raw.VR
        size = 4 if implicit or vr in LONG_LENGTH_VRS else 2
        if raw.length == 0xFFFFFFFF:  # undefined length (encapsulated pixel data, sequences)
            size = 4
        out[keyword_for_tag(tag) or str(tag)] = (raw.value_tell, raw.length, raw.value_tell - size, size,
                                                 "<" if little else ">")
    return out


def _pixel_start(data: bytes) -> int:
    """Offset of the Pixel Data element's value (the last (7FE0,0010) tag), else len(data)."""
    at = max(data.rfind(b"\xe0\x7f\x10\x00"), data.rfind(b"\x7f\xe0\x00\x10"))
    return at + 8 if at >= 0 else len(data)


def _flip(data: bytes, lo: int, hi: int, rng: random.Random) -> bytes:
    if hi <= lo:
        return data
    buf = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        buf[rng.randrange(lo, hi)] ^= 1 << rng.randrange(8)
    return bytes(buf)


def _replace(data: bytes, elem: tuple, value: bytes, rng: random.Random) -> bytes:
    tell, length, len_at, size, endian = elem
    if length == 0xFFFFFFFF or size == 2 and len(value) > 0xFFFF:
        return data
    if len(value) % 2 and rng.random() < 0.8:
        value += b" "                                         # DICOM pads to even lengths, mostly
    new_len = struct.pack(endian + ("H" if size == 2 else "I"), len(value))
    return data[:len_at] + new_len + value + data[tell + length:]


def _set_value(data: bytes, rng: random.Random) -> bytes:
    elems = _elements(data)
    choices = [k for k in US_KEYWORDS + STRING_KEYWORDS if k in elems]
    if not choices:
        return _flip(data, 0, len(data), rng)
    keyword = rng.choice(choices)
    elem = elems[keyword]
    if keyword in US_KEYWORDS:
        tell, length, _, _, endian = elem
        value = rng.choice(US_VALUES) if rng.random() < 0.8 else rng.randrange(0x10000)
        if length != 2:
            return _replace(data, elem, struct.pack(endian + "H", value), rng)
        return data[:tell] + struct.pack(endian + "H", value) + data[tell + 2:]
    pool = {"PhotometricInterpretation": PHOTOMETRIC, "VOILUTFunction": VOI_FUNCTIONS}.get(keyword, NUMBER_STRINGS)
    return _replace(data, elem, rng.choice(pool).encode("latin-1"), rng)


def _set_length(data: bytes, rng: random.Random) -> bytes:
    elems = _elements(data)
    if not elems:
        return _flip(data, 0, len(data), rng)
    tell, length, len_at, size, endian = elems[rng.choice(sorted(elems))]
    options = [v for v in LENGTH_VALUES if v < 1 << (8 * size)]
    if length != 0xFFFFFFFF:
        options += [length + 2, max(length - 2, 0), length * 2, length + 1]
    new = rng.choice(options) if rng.random() < 0.8 else rng.randrange(1 << (8 * size))
    return data[:len_at] + struct.pack(endian + ("H" if size == 2 else "I"), new % (1 << (8 * size))) + \
        data[len_at + size:]


def _set_transfer_syntax(data: bytes, rng: random.Random) -> bytes:
    at = data.find(_TSYNTAX_TAG, 0, 4096)
    if at < 0:
        return _flip(data, 0, min(len(data), 512), rng)
    (length,) = struct.unpack_from("<H", data, at + 6)
    value = rng.choice(TRANSFER_SYNTAXES).encode()
    if len(value) % 2:
        value += b"\x00"
    return data[:at + 6] + struct.pack("<H", len(value)) + value + data[at + 8 + length:]


def mutate(data: bytes, rng: random.Random) -> tuple[bytes, list[str]]:
    """One to three mutations of a file's bytes; returns the bytes and the mutations' names."""
    names = []
    for _ in range(rng.choice((1, 1, 2, 3))):
        name = rng.choice(MUTATIONS)
        pixels = _pixel_start(data)
        try:
            if name == "flip_header":
                data = _flip(data, 0, pixels, rng)
            elif name == "flip_pixels":
                data = _flip(data, pixels, len(data), rng)
            elif name == "truncate":
                data = data[:rng.randrange(len(data))] if data else data
            elif name == "value":
                data = _set_value(data, rng)
            elif name == "length":
                data = _set_length(data, rng)
            else:
                data = _set_transfer_syntax(data, rng)
        except Exception:  # noqa: BLE001 - an earlier mutation left bytes pydicom cannot list
            name += "(flip)"
            data = _flip(data, 0, len(data), rng)
        names.append(name)
    return data, names


def case(files: list[str], seed: int, index: int) -> tuple[str, bytes, list[str]]:
    """Case ``index`` of ``seed``: (source file, mutated bytes, mutations), the same every run."""
    rng = random.Random(seed * 1_000_003 + index)
    source = files[rng.randrange(len(files))]
    data, names = mutate(Path(source).read_bytes(), rng)
    return source, data, names


# --- running ------------------------------------------------------------------------------------

@contextmanager
def time_limit(seconds: float):
    """CaseTimeout past ``seconds`` (SIGALRM; main thread only)."""
    def alarm(signum, frame):
        raise CaseTimeout(f"over {seconds} s")

    old = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def outcome(exc: BaseException | None) -> str:
    from medcl.errors import DicomError, MissingCodecError

    if exc is None:
        return "ok"
    if isinstance(exc, CaseTimeout):
        return "timeout"
    if isinstance(exc, MissingCodecError):
        return "MissingCodecError"
    return "DicomError" if isinstance(exc, DicomError) else type(exc).__name__


def run_routes(path: str, limit_s: float) -> dict[str, str]:
    """{"read_image": outcome, "read_raw": outcome} of one file ("status" when decode_raw flags a frame)."""
    from medcl.io.dicom import read_image
    from medcl.io.pixels import decode_raw, read_raw

    result = {}
    for route in ("read_image", "read_raw"):
        exc, status = None, False
        try:
            with time_limit(limit_s):
                if route == "read_image":
                    read_image(path)
                else:
                    raws = read_raw(path)
                    if raws:
                        status = bool(decode_raw(raws)[2].any())
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as e:  # noqa: BLE001 - classified, not handled (Rust plugins panic with a BaseException)
            exc = e
        result[route] = "status" if exc is None and status else outcome(exc)
    return result


def is_failure(result: str) -> bool:
    """An outcome that breaks medcl's promise (anything but success, a reported status or a DicomError)."""
    return result not in ("ok", "status", "DicomError", "MissingCodecError")


def run(files: list[str], n: int, seed: int, limit_s: float, folder: str, progress: bool = False) -> dict:
    counts = {"read_image": Counter(), "read_raw": Counter()}
    failures, slowest = [], (0.0, None)
    path = os.path.join(folder, "case.dcm")
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i in range(n):
            source, data, names = case(files, seed, i)
            Path(path).write_bytes(data)
            t = time.perf_counter()
            result = run_routes(path, limit_s)
            dt = time.perf_counter() - t
            slowest = max(slowest, (dt, i))
            for route, r in result.items():
                counts[route][r] += 1
                if is_failure(r):
                    failures.append({"case": i, "route": route, "outcome": r, "source": os.path.basename(source),
                                     "mutations": names})
            if progress and (i + 1) % 500 == 0:
                print(f"{i + 1}/{n} cases, {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return {"cases": n, "seed": seed, "files": len(files), "seconds": round(time.perf_counter() - t0, 1),
            "slowest_case_s": round(slowest[0], 3), "slowest_case": slowest[1],
            "outcomes": {route: dict(c.most_common()) for route, c in counts.items()}, "failures": failures}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=5000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-bytes", type=int, default=1_200_000, help="largest corpus file used")
    ap.add_argument("--limit-s", type=float, default=20.0, help="per-case time limit (each route)")
    args = ap.parse_args()
    import torch

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _common import save, table

    torch.set_num_threads(1)
    files = corpus(args.max_bytes)
    with tempfile.TemporaryDirectory() as folder:
        res = run(files, args.cases, args.seed, args.limit_s, folder, progress=True)
    rows = [{"route": route, **{k: v for k, v in c.items()}} for route, c in res["outcomes"].items()]
    columns = ["route"] + sorted({k for r in rows for k in r if k != "route"})
    print(table(rows, columns))
    print(f"{res['cases']} cases from {res['files']} files (seed {res['seed']}) in {res['seconds']} s; "
          f"slowest case {res['slowest_case_s']} s (#{res['slowest_case']}); {len(res['failures'])} failures")
    for f in res["failures"][:20]:
        print(f"  case {f['case']} {f['route']}: {f['outcome']} ({f['source']}, {', '.join(f['mutations'])})")
    print("wrote", save("dicom_fuzz", torch.device("cpu"), res))
    sys.exit(1 if res["failures"] else 0)


if __name__ == "__main__":
    main()
