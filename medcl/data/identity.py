"""Patient identity from DICOM headers, kept only as keyed hashes (``medcl prepare``, ``medcl manifest``).

From a folder of DICOM files the manifest's people come from the headers, never in clear:

    IID = FID = HMAC-SHA256(key, "patient" NUL PatientID), first 16 hex digits
    study      = the same of StudyInstanceUID   (a visit)
    series     = the same of SeriesInstanceUID

The key is the bytes of a key file (whitespace at either end ignored, at least 16 bytes): the
one ``--id-key FILE`` (or MEDCL_ID_KEY) names, else ``id-key`` beside the output (the dataset
folder, or the manifest's folder), made with ``secrets.token_bytes`` on first use, mode 0600.
The same key maps further files of the same archive to the same IDs; without it the IDs cannot
be linked back to patients (delete it for that), and with it anyone holding a PatientID can
find its IID, so keep it as private as the headers. A file without a PatientID is its own
person (IID = the keyed hash of its path); they are counted in the log. ``--ids path`` keeps
the former rule, FID = IID = the file's path.

Splits are by person: ``split`` is a hash of (FID, IID) (medcl.data.splits.hashed_split), so
every image of one patient is in one split.
"""
from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
import warnings
from pathlib import Path

from medcl.errors import ConfigError, DicomError

log = logging.getLogger("medcl")

ID_MODES = ("headers", "path")  # where people come from: the headers (keyed hashes) | the file's path
KEY_FILE = "id-key"             # the generated key's name, beside the dataset or manifest
KEY_ENV = "MEDCL_ID_KEY"        # a key file named by the environment
ID_HEX = 16                     # hex digits kept of each HMAC-SHA256
MIN_KEY_BYTES = 16
_TAGS = ("PatientID", "StudyInstanceUID", "SeriesInstanceUID", "NumberOfFrames", "Rows")
_KINDS = ("patient", "study", "series")


def check_mode(mode: str) -> str:
    if mode not in ID_MODES:
        raise ConfigError(f"--ids {mode!r} is not supported", fix=f"use one of {', '.join(ID_MODES)}")
    return mode


def read_key(path) -> bytes:
    """The key in a key file: its bytes, whitespace at either end ignored."""
    path = Path(os.fspath(path)).expanduser()
    try:
        key = path.read_bytes().strip()
    except OSError as exc:
        raise ConfigError(f"cannot read the ID key ({exc.strerror})", path=path,
                          fix="pass the key file of this archive to --id-key, or leave it out to make a new key"
                          ) from None
    if len(key) < MIN_KEY_BYTES:
        raise ConfigError(f"the ID key holds {len(key)} bytes, fewer than {MIN_KEY_BYTES}", path=path,
                          fix="use a longer key, e.g. python -c 'import secrets; print(secrets.token_hex(32))'")
    return key


def key_for(folder, given=None) -> tuple[bytes, Path, bool]:
    """(key, its file, made now): ``given`` (a file), else ``folder/id-key``, made when absent."""
    if given:
        return read_key(given), Path(os.fspath(given)).expanduser(), False
    path = Path(os.fspath(folder)) / KEY_FILE
    if path.exists():
        return read_key(path), path, False
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # 0600 whatever the umask
    with os.fdopen(fd, "w") as fh:
        fh.write(secrets.token_bytes(32).hex() + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    log.info("made a new ID key %s (mode 0600): keep it to give further files of this archive the same "
             "IDs (--id-key); delete it to make the IDs unlinkable", path)
    return read_key(path), path, True


def key_check(key: bytes) -> str:
    """A value that tells keys apart without revealing them (kept with a preparation, to resume)."""
    return keyed(key, "check", "medcl")


def keyed(key: bytes, kind: str, value: str) -> str:
    """The keyed hash of one header value (or path): HMAC-SHA256, first ID_HEX hex digits."""
    return hmac.new(key, f"{kind}\0{value}".encode("utf-8"), hashlib.sha256).hexdigest()[:ID_HEX]


def read_header(file) -> dict:
    """{patient, study, series: the header value or None, frames: int} of one DICOM file (the
    header only; pixels are not read). The values stay in memory: hash them with
    :func:`hashed`, never write or log them."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    file = Path(os.fspath(file))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warnings can quote header values
        try:
            try:
                ds = pydicom.dcmread(file, stop_before_pixels=True, specific_tags=list(_TAGS))
            except InvalidDicomError:  # no preamble (legal for old files): accept an image only
                ds = pydicom.dcmread(file, stop_before_pixels=True, force=True, specific_tags=list(_TAGS))
            if "Rows" not in ds:
                raise DicomError("not a DICOM image (no Rows)", path=file, fix="remove it from the folder")
            out = {}
            for kind, keyword in zip(_KINDS, _TAGS):
                value = ds.get(keyword)
                value = None if value is None else str(value).strip()
                out[kind] = value or None
            nf = ds.get("NumberOfFrames")
            out["frames"] = max(int(nf), 1) if nf not in (None, "") else 1
        except DicomError:
            raise
        except Exception as exc:  # noqa: BLE001 - pydicom raises many types on garbage; never echo their text
            raise DicomError(f"not a readable DICOM header ({type(exc).__name__})", path=file,
                             fix="the file is truncated or corrupt; re-export or remove it") from None
    return out


def hashed(key: bytes, header: dict | None, path_key: str) -> dict:
    """{IID, study, series, from_header} of one file: keyed hashes of its header values; a file
    without a PatientID (or no header: a picture) is its own person, keyed by its path."""
    patient = (header or {}).get("patient")
    iid = keyed(key, "patient", patient) if patient else keyed(key, "file", path_key)
    return {"IID": iid, "from_header": bool(patient),
            **{k: keyed(key, k, header[k]) if header and header.get(k) else "" for k in ("study", "series")}}


def manifest_table(files, ids: dict | None, *, val_fraction: float, test_fraction: float, split_seed: int = 0):
    """The manifest of a folder: one row per frame, people and splits by person.

    files: [(path key, frames)] in order; ids: {path key: hashed(...)} (None: ``--ids path``,
    FID = IID = the path). Columns FID, IID, path, frame, [study, series,] split.
    """
    import pandas as pd

    from medcl.data.splits import check_fractions, hashed_split

    check_fractions(val_fraction, test_fraction)
    rows = []
    for key, frames in files:
        iid = ids[key]["IID"] if ids is not None else key
        extra = {"study": ids[key]["study"], "series": ids[key]["series"]} if ids is not None else {}
        split = hashed_split(iid, iid, split_seed=split_seed, val_fraction=val_fraction, test_fraction=test_fraction)
        rows += [{"FID": iid, "IID": iid, "path": key, "frame": f, **extra, "split": split} for f in range(frames)]
    columns = ["FID", "IID", "path", "frame"] + (["study", "series"] if ids is not None else []) + ["split"]
    table = pd.DataFrame(rows, columns=columns)
    if ids is not None:
        anonymous = sum(1 for key, _ in files if not ids[key]["from_header"])
        people = table["IID"].nunique()
        log.info("%d file(s), %d image(s) of %d people (IDs: keyed hashes of PatientID)%s", len(files), len(table),
                 people, f"; {anonymous} file(s) without a PatientID, each its own person" if anonymous else "")
    return table
