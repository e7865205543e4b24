"""Prepared datasets: raw pixel records packed into shards, read back one record at a time.

``medcl prepare`` (medcl/prepare.py, medcl/data/shard_writer.py) writes a DATASET folder::

    medcl-dataset.json    format, version, counts, source, medcl version (no header values)
    manifest.csv          the rows the loaders read (paths as in the source manifest)
    index.parquet         one row per frame: path, frame, shard, offset, length; rows, columns,
                          bits_allocated, bits_stored, high_bit, signed, encoding, slope, intercept,
                          window_center/_width/_function ("minmax": none), invert; per table LUT
                          (modality_lut_*, voi_lut_*) offset (-1: none), length, first, bits
    shards/shard-NNNNN.bin  concatenated frame bytes and LUT tables (uint32 LE), one shard per chunk
    bad_files.csv         path, reason: the files that were skipped

:class:`ShardSource` reads one record with a single ``os.pread`` on a cached descriptor per
shard, so DataLoader workers read bytes only (no DICOM parsing); it reopens its descriptors
after a fork or unpickling. Keys are the manifest's path values, normalised
(:func:`dataset_key`); an absolute path below the dataset (or the original source) folder is
found too, so the paths ``read_manifest(DATASET/manifest.csv)`` returns work as they are.
"""
from __future__ import annotations

import csv
import json
import os
from collections import OrderedDict
from pathlib import Path

import numpy as np

from medcl.data.frames import check_frame
from medcl.errors import DicomError, MedclError

FORMAT, VERSION = "medcl-dataset", 1
META, MANIFEST, INDEX, BAD_FILES = "medcl-dataset.json", "manifest.csv", "index.parquet", "bad_files.csv"
SHARDS, PARTS = "shards", "parts"
LUT_DTYPE = "<u4"  # LUT entries as stored in the shard
_MAX_OPEN = 64  # shard descriptors kept open per process


def shard_name(chunk: int) -> str:
    return f"shard-{chunk:05d}.bin"


def dataset_key(value) -> str:
    """A manifest path value as the dataset keys it: stripped, ~ expanded, normalised."""
    return os.path.normpath(os.path.expanduser(str(value).strip()))


def read_bad(path) -> list[tuple[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return [(r[0], r[1]) for r in list(csv.reader(fh))[1:] if r]


def read_meta(dataset) -> dict:
    path = Path(dataset) / META
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise MedclError(f"cannot read the dataset description ({type(exc).__name__})", path=path,
                         fix="prepare the dataset again with medcl prepare") from None
    if meta.get("format") != FORMAT or not isinstance(meta.get("version"), int):
        raise MedclError("not a medcl dataset description", path=path)
    if meta["version"] > VERSION:
        raise MedclError(f"dataset format version {meta['version']} is newer than this medcl reads ({VERSION})",
                         path=path, fix="upgrade medcl")
    return meta


class ShardSource:
    """Raw pixel records of a prepared dataset. ``read(path, frame)`` → RawImage."""

    prepared = True

    def __init__(self, dataset):
        self.root = Path(os.fspath(dataset)).resolve()
        meta = read_meta(self.root)
        self.meta = meta
        self._source_root = meta.get("source", {}).get("root")
        self._index = None
        self._bad = None
        self._fds: OrderedDict = OrderedDict()
        self._pid = os.getpid()

    # ---- loading (lazy, so that pickling to DataLoader workers stays cheap)
    def _load(self):
        if self._index is None:
            import pyarrow.parquet as pq

            table = pq.read_table(self.root / INDEX)
            cols = {name: table.column(name).to_numpy(zero_copy_only=False) for name in table.column_names}
            starts = np.flatnonzero(cols["frame"] == 0)
            frames = np.diff(np.append(starts, len(cols["frame"])))
            keys = cols["path"][starts].tolist()
            self._index = (cols, dict(zip(keys, zip(starts.tolist(), frames.tolist()))))
        return self._index

    @property
    def bad(self) -> dict[str, str]:
        """Skipped files: key → reason (as in bad_files.csv)."""
        if self._bad is None:
            path = self.root / BAD_FILES
            self._bad = dict(read_bad(path)) if path.exists() else {}
        return self._bad

    def _key(self, path, table: dict):
        key = dataset_key(os.fspath(path))
        if key in table:
            return key
        if os.path.isabs(key):
            for base in (str(self.root), self._source_root):
                if base:
                    rel = os.path.relpath(key, base)
                    if rel in table:
                        return rel
        return None

    @property
    def files_root(self) -> Path | None:
        """The folder the manifest's relative paths were taken from when the dataset was prepared
        (the source folder, or the source manifest's folder)."""
        return Path(self._source_root) if self._source_root else None

    @property
    def paths(self) -> list[str]:
        """Keys of the files with records, in index order."""
        return list(self._load()[1])

    def __len__(self) -> int:
        return len(self._load()[1])

    def __contains__(self, path) -> bool:
        return self._key(path, self._load()[1]) is not None

    def frames(self, path) -> int:
        return self._locate(path)[1]

    def _locate(self, path):
        cols, starts = self._load()
        key = self._key(path, starts)
        if key is None:
            bad = self._key(path, self.bad)
            if bad is not None:
                raise DicomError(f"was skipped by medcl prepare: {self.bad[bad]}", path=os.fspath(path),
                                 fix=f"see {self.root / BAD_FILES}")
            raise DicomError(f"is not in the prepared dataset {self.root}", path=os.fspath(path),
                             fix="prepare the dataset from a manifest that lists it")
        return starts[key]

    # ---- reading
    def _fd(self, shard: int) -> int:
        if self._pid != os.getpid():  # forked: descriptors of the parent are not ours to cache
            self._fds = OrderedDict()
            self._pid = os.getpid()
        fd = self._fds.pop(shard, None)
        if fd is None:
            if len(self._fds) >= _MAX_OPEN:
                os.close(self._fds.popitem(last=False)[1])
            fd = os.open(self.root / SHARDS / shard_name(shard), os.O_RDONLY)
        self._fds[shard] = fd  # most recently used last
        return fd

    def _pread(self, shard: int, offset: int, length: int) -> bytes:
        fd = self._fd(shard)
        data = os.pread(fd, length, offset)
        while len(data) < length:  # large reads may come back in pieces
            more = os.pread(fd, length - len(data), offset + len(data))
            if not more:
                raise DicomError(f"shard {shard_name(shard)} is shorter than its index says",
                                 path=self.root / SHARDS / shard_name(shard), fix="prepare the dataset again")
            data += more
        return data

    def _lut(self, cols, i: int, shard: int, prefix: str):
        offset = int(cols[f"{prefix}_offset"][i])
        if offset < 0:
            return None
        from medcl.io.dicom_header import Lut

        data = np.frombuffer(self._pread(shard, offset, int(cols[f"{prefix}_length"][i])), dtype=LUT_DTYPE)
        return Lut(data=data.astype(np.uint32), first_mapped=int(cols[f"{prefix}_first"][i]),
                   bits=int(cols[f"{prefix}_bits"][i]))

    def read(self, path, frame: int | None = None):
        """The RawImage of ``frame`` of ``path`` (None: a single-frame file's frame), reading only
        that record's bytes."""
        from medcl.io.pixels import RawImage

        start, count = self._locate(path)
        cols, i = self._index[0], start + check_frame(count, frame, os.fspath(path))
        shard = int(cols["shard"][i])
        function = str(cols["window_function"][i])
        window = None if function == "minmax" else (float(cols["window_center"][i]),
                                                     float(cols["window_width"][i]), function)
        return RawImage(data=self._pread(shard, int(cols["offset"][i]), int(cols["length"][i])),
                        rows=int(cols["rows"][i]), columns=int(cols["columns"][i]),
                        bits_allocated=int(cols["bits_allocated"][i]), bits_stored=int(cols["bits_stored"][i]),
                        high_bit=int(cols["high_bit"][i]), signed=bool(cols["signed"][i]),
                        encoding=int(cols["encoding"][i]), slope=float(cols["slope"][i]),
                        intercept=float(cols["intercept"][i]), window=window, invert=bool(cols["invert"][i]),
                        modality_lut=self._lut(cols, i, shard, "modality_lut"),
                        voi_lut=self._lut(cols, i, shard, "voi_lut"))

    def read_all(self, path) -> list:
        """Every frame of ``path``."""
        return [self.read(path, f) for f in range(self.frames(path))]

    # ---- lifetime
    def close(self) -> None:
        if self._pid == os.getpid():
            for fd in self._fds.values():
                os.close(fd)
        self._fds = OrderedDict()

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass

    def __getstate__(self):
        return {"root": self.root, "meta": self.meta}

    def __setstate__(self, state):
        self.root, self.meta = state["root"], state["meta"]
        self._source_root = self.meta.get("source", {}).get("root")
        self._index, self._bad, self._fds, self._pid = None, None, OrderedDict(), os.getpid()


def open_prepared(path):
    """``(manifest_path, ShardSource)`` when ``path`` is a prepared DATASET folder or its
    manifest.csv, else None. A folder whose preparation has not finished is an error."""
    path = Path(os.fspath(path))
    if not path.is_dir() and path.name != MANIFEST:
        return None
    root = path if path.is_dir() else path.parent
    if not (root / META).is_file():
        if (root / PARTS / "plan.json").is_file():
            raise MedclError("the preparation of this dataset has not finished", path=root,
                             fix="rerun the same medcl prepare command to finish it")
        return None
    return root / MANIFEST, ShardSource(root)
