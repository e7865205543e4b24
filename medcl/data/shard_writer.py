"""Writing a prepared dataset's chunks (``medcl prepare``; the format is in medcl/data/shards.py).

One chunk = a list of (key, file): every file is read with ``medcl.io.pixels.read_raw`` (header
parsed, pixels kept undecoded), validated by a CPU ``decode_raw`` (so corrupt RLE never reaches a
shard) and appended to ``shards/shard-NNNNN.bin``; :meth:`ChunkWriter.commit` then makes the
shard, the bad-file part and the index part appear atomically (temp file, fsync, os.replace), the
index part last: it marks the chunk done. A bad file is listed with its reason (medcl's own error
message, never a header value) and skipped. With an ID key (``--ids headers``) each good file's
PatientID, StudyInstanceUID and SeriesInstanceUID are read and only their keyed hashes
(medcl.data.identity) are written, to the chunk's ids part.
"""
from __future__ import annotations

import csv
import os
import warnings
from pathlib import Path

import numpy as np

from medcl.data.shards import LUT_DTYPE, PARTS, SHARDS, shard_name
from medcl.errors import DicomError
from medcl.files import atomic_write, fsync_dir


def index_schema():
    import pyarrow as pa

    lut = lambda name: [(f"{name}_offset", pa.int64()), (f"{name}_length", pa.int64()),  # noqa: E731
                        (f"{name}_first", pa.int64()), (f"{name}_bits", pa.int16())]
    return pa.schema([
        ("path", pa.string()), ("frame", pa.int32()), ("shard", pa.int32()), ("offset", pa.int64()),
        ("length", pa.int64()), ("rows", pa.int32()), ("columns", pa.int32()), ("bits_allocated", pa.int16()),
        ("bits_stored", pa.int16()), ("high_bit", pa.int16()), ("signed", pa.bool_()), ("encoding", pa.int8()),
        ("slope", pa.float64()), ("intercept", pa.float64()), ("window_center", pa.float64()),
        ("window_width", pa.float64()), ("window_function", pa.string()), ("invert", pa.bool_()),
        *lut("modality_lut"), *lut("voi_lut")])


class ChunkWriter:
    """One chunk's shard (written to a temp file until :meth:`commit`) and its index rows."""

    def __init__(self, out, chunk: int):
        self.out, self.chunk = Path(out), int(chunk)
        self.shard = self.out / SHARDS / shard_name(chunk)
        self.tmp = self.shard.with_name(f".{self.shard.name}.tmp-{os.getpid()}")
        self._fh = None
        self.size = 0
        self.rows: list[dict] = []

    def _put(self, data: bytes) -> int:
        if self._fh is None:
            self._fh = open(self.tmp, "wb")
        offset = self.size
        self._fh.write(data)
        self.size += len(data)
        return offset

    def _lut(self, lut, prefix: str, row: dict, seen: dict) -> None:
        if lut is None:
            row.update({f"{prefix}_offset": -1, f"{prefix}_length": 0, f"{prefix}_first": 0, f"{prefix}_bits": 0})
            return
        if id(lut) not in seen:  # frames of one file share their LUT bytes
            data = np.ascontiguousarray(np.asarray(lut.data), dtype=LUT_DTYPE).tobytes()
            seen[id(lut)] = (self._put(data), len(data))
        offset, length = seen[id(lut)]
        row.update({f"{prefix}_offset": offset, f"{prefix}_length": length,
                    f"{prefix}_first": int(lut.first_mapped), f"{prefix}_bits": int(lut.bits)})

    def add(self, key: str, raws: list) -> None:
        """One file's records (RawImage per frame) under ``key``."""
        seen: dict = {}
        for frame, r in enumerate(raws):
            window = r.window
            row = {"path": key, "frame": frame, "shard": self.chunk, "offset": self._put(bytes(r.data)),
                   "length": len(r.data), "rows": int(r.rows), "columns": int(r.columns),
                   "bits_allocated": int(r.bits_allocated), "bits_stored": int(r.bits_stored),
                   "high_bit": int(r.high_bit), "signed": bool(r.signed), "encoding": int(r.encoding),
                   "slope": float(r.slope), "intercept": float(r.intercept),
                   "window_center": float("nan") if window is None else float(window[0]),
                   "window_width": float("nan") if window is None else float(window[1]),
                   "window_function": "minmax" if window is None else str(window[2]), "invert": bool(r.invert)}
            self._lut(r.modality_lut, "modality_lut", row, seen)
            self._lut(r.voi_lut, "voi_lut", row, seen)
            self.rows.append(row)

    def commit(self, bad: list[tuple[str, str]], ids: list[dict] | None = None) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if self._fh is not None:
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()
            self._fh = None
            os.replace(self.tmp, self.shard)
            fsync_dir(self.shard.parent)
        parts = self.out / PARTS
        atomic_write(parts / f"bad-{self.chunk:05d}.csv", lambda p: write_bad(p, bad))
        if ids is not None:
            atomic_write(parts / ids_part(self.chunk), lambda p: ids_table(ids).to_csv(p, index=False))
        table = pa.Table.from_pylist(self.rows, schema=index_schema())
        atomic_write(parts / f"index-{self.chunk:05d}.parquet", lambda p: pq.write_table(table, p))

    def abort(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        if self.tmp.exists():
            self.tmp.unlink()


def ids_part(chunk: int) -> str:
    return f"ids-{chunk:05d}.csv"


def ids_table(ids: list[dict]):
    """A chunk's hashed IDs as a table: path, IID, study, series, from_header."""
    import pandas as pd
    return pd.DataFrame(ids, columns=["path", "IID", "study", "series", "from_header"])


def write_bad(path, rows) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(("path", "reason"))
        writer.writerows(rows)


def check_file(file: str) -> list:
    """read_raw's records, after a CPU decode proved every frame decodes."""
    import torch

    from medcl.io.pixels import decode_raw, read_raw, status_reason

    raws = read_raw(file)
    if not raws:
        raise DicomError("has no frames", path=file, fix="remove it from the image list")
    _, _, status = decode_raw(raws, device="cpu", voi=False)
    failed = torch.nonzero(status).flatten()
    if len(failed):
        f = int(failed[0])
        where = f" (frame {f})" if len(raws) > 1 else ""
        raise DicomError(f"pixel data cannot be decoded{where}: {status_reason(int(status[f]))}", path=file,
                         fix="the file is truncated or corrupt; re-export or remove it")
    return raws


def run_chunk(task) -> tuple[int, int, int]:
    """Reads, validates and writes one chunk: task = (out, chunk, [(key, file), ...][, id key]).
    With an ID key (bytes) the files' header IDs are hashed into the ids part.
    Returns (chunk, files, bad files)."""
    from medcl.data.bad_samples import reason_of
    from medcl.data.identity import hashed, read_header

    out, chunk, items = task[:3]
    id_key = task[3] if len(task) > 3 else None
    writer = ChunkWriter(out, chunk)
    bad, ids = [], []
    try:
        for key, file in items:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # pydicom warnings can quote header values
                    raws = check_file(file)
                    if id_key is not None:
                        ids.append({"path": key, **hashed(id_key, read_header(file), key)})
            except MemoryError:
                raise
            except Exception as exc:  # noqa: BLE001 - a bad file is listed and skipped, never fatal
                bad.append((key, reason_of(exc)))
                continue
            writer.add(key, raws)
        writer.commit(bad, ids if id_key is not None else None)
    except BaseException:
        writer.abort()
        raise
    return chunk, len(items), len(bad)
