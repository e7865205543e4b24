"""``medcl prepare``: index DICOM files into a prepared dataset (see medcl/data/shards.py).

The source is a folder (every file below it, hidden ones aside) or a manifest (every file its
``path`` and ``*_path`` columns list). The sorted list of files is cut into chunks of
``chunk_files``; each chunk is read (``medcl.io.pixels.read_raw``: header parsed, pixels kept
undecoded), validated (``decode_raw`` on the CPU: corrupt RLE never reaches a shard) and
written as one shard plus its index and bad-file parts, atomically, by a pool of processes. A
chunk whose index part exists is done, so an interrupted run resumes where it stopped. At the
end the parts are merged into index.parquet and bad_files.csv, the manifest is written and
medcl-dataset.json marks the dataset finished. A bad file is listed with its reason and
skipped, never stopping the job. Only the pixel, geometry and LUT attributes of a file reach
the dataset; paths come from the user's folder or manifest, never from headers.

The manifest (editable, and what ``--data DATASET`` reads): from a folder, one row per frame,
FID, IID, path, frame, study, series, split, the people taken from the headers as keyed hashes
(``ids="headers"``, medcl.data.identity; the key in DATASET/id-key unless ``id_key`` names one)
or from the paths (``ids="path"``: FID = IID = path), and the split drawn per person. From a
manifest, its rows as they are; when it has no frame column and lists multi-frame files, those
rows are repeated once per frame with a frame column added.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from medcl.data import identity as I
from medcl.data import shard_writer as W
from medcl.data import shards as S
from medcl.data.splits import TEST_FRACTION, VAL_FRACTION
from medcl.errors import ConfigError, MedclError
from medcl.files import TMP_GLOB, atomic_write

log = logging.getLogger("medcl")

TARGET_SHARD_BYTES = 256 * 2**20  # auto chunk size: about this much file data per shard ...
MAX_CHUNK_FILES = 1024            # ... but at most this many files ...
CHUNKS_PER_WORKER = 4             # ... and at least this many chunks per worker
WORKER_BYTES = 2**30              # default workers: one per GiB of files (a spawned worker costs ~2 s to start)
_NEW_OUT = "choose a new --out folder, or delete this one"


@dataclass
class Listing:
    kind: str                 # "directory" or "manifest"
    path: Path                # the source, resolved
    root: Path                # the folder relative paths are taken from
    files: dict               # key (path as in the manifest) → file to read, sorted by key
    manifest_sha256: str | None = None

    def identity(self) -> dict:
        digest = hashlib.sha256("\0".join(self.files).encode()).hexdigest()
        return {"kind": self.kind, "path": str(self.path), "root": str(self.root), "files": len(self.files),
                "files_sha256": digest, "manifest_sha256": self.manifest_sha256}


@dataclass
class PrepareSummary:
    out: Path
    n_files: int              # files in the source
    n_bad: int                # of which skipped (listed in bad_files.csv)
    n_records: int            # frame records in the index
    n_shards: int
    n_bytes: int              # shard bytes
    n_processed: int          # files read by this run (resumed chunks and finished datasets: fewer, or 0)
    chunks: int
    chunks_before: int        # chunks already done when this run started
    elapsed_s: float
    already: bool = False     # the dataset was finished before this run


def _write_json(path: Path, obj: dict) -> None:
    atomic_write(path, lambda p: Path(p).write_text(json.dumps(obj, indent=2) + "\n"))


def list_directory(root: Path, out: Path | None = None) -> Listing:
    """Every file below ``root`` (hidden files and folders, and ``out``, left out); key = its path
    relative to ``root``."""
    out_real = os.path.realpath(out) if out is not None else None
    keys = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")
                       and os.path.realpath(os.path.join(dirpath, d)) != out_real]
        keys += [os.path.relpath(os.path.join(dirpath, f), root) for f in filenames if not f.startswith(".")]
    keys.sort()
    return Listing("directory", root, root, {k: os.path.join(root, k) for k in keys})


def list_manifest(path: Path) -> Listing:
    """Every file the manifest's path columns list; key = the path value as written (normalised)."""
    import pandas as pd

    from medcl.io.tables import default_path_columns, read_manifest, read_manifest_raw

    frame = read_manifest(path, check_files=False)  # validates columns, IDs, splits
    raw = read_manifest_raw(path)
    raw.columns = [str(c) for c in raw.columns]
    found = {}
    for col in default_path_columns(list(frame.columns)):
        for value, file in zip(raw[col], frame[col]):
            if not pd.isna(file):
                found.setdefault(S.dataset_key(value), file)
    if found and not any(os.path.isfile(f) for f in found.values()):  # stops at the first file found
        from medcl.errors import ManifestError
        raise ManifestError(f"none of the {len(found)} files it lists exist (e.g. {next(iter(found.values()))})",
                            path=path, fix="relative paths are taken from the manifest's folder")
    return Listing("manifest", path, path.parent, dict(sorted(found.items())),
                   hashlib.sha256(path.read_bytes()).hexdigest())


def list_source(source, out) -> Listing:
    source = Path(os.fspath(source)).expanduser()
    if not source.exists():
        raise MedclError("no such file or folder", path=source,
                         fix="pass a folder of DICOM files or a manifest (FID,IID,path)")
    source = source.resolve()
    if source.is_dir():
        if (source / S.META).is_file():
            raise MedclError("is already a prepared dataset", path=source, fix="pass it to --data as it is")
        listing = list_directory(source, Path(out))
    else:
        listing = list_manifest(source)
    if not listing.files:
        raise MedclError("lists no files", path=source, fix="pass a folder of DICOM files or a manifest")
    return listing


def _init_worker() -> None:
    import signal

    import torch

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the parent, which ends the workers
    torch.set_num_threads(1)


def _results(tasks: list, workers: int):
    """W.run_chunk over the tasks: in this process, or in ``workers`` spawned processes."""
    if workers <= 1 or len(tasks) <= 1:
        import torch

        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # one image per decode call: threads only contend (10x slower on 2 cores)
        try:
            yield from map(W.run_chunk, tasks)
        finally:
            torch.set_num_threads(threads)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from concurrent.futures.process import BrokenProcessPool

    # spawn: no fork of a process that may hold torch's threads; an executor, not a Pool, so that a
    # worker killed by a crashing decoder plugin or the OOM killer ends the run instead of hanging it.
    pool = ProcessPoolExecutor(min(workers, len(tasks)), mp_context=multiprocessing.get_context("spawn"),
                               initializer=_init_worker)
    futures, ok = {}, False
    try:
        futures = {pool.submit(W.run_chunk, task): task[1] for task in tasks}
        for future in as_completed(futures):
            yield future.result()
        ok = True
    except BrokenProcessPool:
        left = sorted(c for f, c in futures.items() if not f.done() or f.exception() is not None)
        raise MedclError(f"a worker process died (a decoder crashed on a file, or memory ran out) while "
                         f"preparing chunk(s) {', '.join(map(str, left[:10]))}{' ...' if len(left) > 10 else ''}",
                         fix="rerun the same command to resume; finished chunks are kept") from None
    finally:
        if not ok:  # interrupted or failed: stop the workers now, not after their chunks
            for process in list((getattr(pool, "_processes", None) or {}).values()):
                process.terminate()
        pool.shutdown(wait=True, cancel_futures=True)


# ---------------------------------------------------------------- the whole job

def _mean_size(listing: Listing) -> float:
    """Mean size of up to 200 of the files, evenly spaced in the list."""
    files = list(listing.files.values())
    sizes = []
    for file in files[::max(1, len(files) // 200)][:200]:
        try:
            sizes.append(os.stat(file).st_size)
        except OSError:
            pass
    return max(sum(sizes) / len(sizes), 1.0) if sizes else float(1 << 20)


def default_workers(listing: Listing | None = None) -> int:
    """Every core this process may use; for a job of less than WORKER_BYTES per core, fewer."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    if listing is None:
        return cores
    return max(1, min(cores, int(_mean_size(listing) * len(listing.files) // WORKER_BYTES)))


def _auto_chunk_files(listing: Listing, workers: int) -> int:
    spread = math.ceil(len(listing.files) / (CHUNKS_PER_WORKER * max(workers, 1)))
    return int(max(1, min(TARGET_SHARD_BYTES // _mean_size(listing), MAX_CHUNK_FILES, spread)))


def _refuse_other(out: Path, recorded: dict, ident: dict, what: str) -> None:
    if (recorded["kind"], recorded["path"]) != (ident["kind"], ident["path"]):
        raise MedclError(f"{what} of {recorded['path']}, not of {ident['path']}", path=out, fix=_NEW_OUT)
    if recorded["files_sha256"] != ident["files_sha256"]:
        raise MedclError(f"{what} of {recorded['files']} files of {recorded['path']}; the source now lists "
                         f"{ident['files']} files, not the same ones", path=out, fix=_NEW_OUT)


def _id_mode(listing: Listing, ids: str | None, id_key) -> str:
    """"headers" or "path" for a folder (default headers); "manifest" for a manifest source."""
    if listing.kind == "manifest":
        if ids is not None:
            raise ConfigError("--ids applies to a folder; the IDs of a manifest are its FID and IID columns",
                              path=listing.path, fix="leave --ids out, or prepare the folder itself")
        if id_key:  # perhaps MEDCL_ID_KEY, set for every command
            log.info("the ID key is not used: the IDs of a manifest are its FID and IID columns")
        return "manifest"
    return I.check_mode(ids or "headers")


def _refuse_other_ids(out: Path, recorded: dict, mode: str, key: bytes | None, what: str) -> None:
    """Refuses to resume or reuse ``out`` with other IDs than it was started with."""
    was = recorded.get("mode", "path")  # datasets of earlier versions: FID = IID = path
    if was != mode and "manifest" not in (was, mode):
        raise MedclError(f"{what} with --ids {was}, not --ids {mode}", path=out,
                         fix=f"rerun with --ids {was}, or choose a new --out folder")
    if key is not None and recorded.get("key_check") not in (None, I.key_check(key)):
        raise MedclError(f"{what} with another ID key", path=out,
                         fix=f"pass the same --id-key, or none to use {out / I.KEY_FILE}; or choose a new --out")


def _frame_counts(paths) -> dict:
    """{path key: frames} from the index's path column (one entry per frame)."""
    from collections import Counter
    return dict(Counter(paths))


def _expanded(listing: Listing, frames: dict):
    """A manifest source's rows, each multi-frame file's row repeated per frame (frame column
    added), or None when nothing needs it (no such file, or a frame column already there)."""
    from medcl.io.tables import read_manifest_raw

    raw = read_manifest_raw(listing.path)
    raw.columns = [str(c) for c in raw.columns]
    if "frame" in raw.columns:
        return None if listing.path.suffix.lower() == ".csv" else raw
    counts = [frames.get(S.dataset_key(v), 0) if isinstance(v, str) else 0 for v in raw["path"]]
    if max(counts, default=0) <= 1 and listing.path.suffix.lower() == ".csv":
        return None
    repeat = [max(n, 1) for n in counts]
    out = raw.loc[raw.index.repeat(repeat)].reset_index(drop=True)
    if max(counts, default=0) > 1:
        import pandas as pd
        out.insert(list(out.columns).index("path") + 1, "frame",
                   pd.array([f if n else None for n, r in zip(counts, repeat) for f in range(r)], dtype="Int64"))
    return out


def _write_manifest(out: Path, listing: Listing, frames: dict, ids: dict) -> None:
    """DATASET/manifest.csv. frames: {path key: frames} of the files with records; ids: the
    preparation's ID settings (mode, fractions)."""
    target = out / S.MANIFEST
    if listing.kind == "manifest":
        table = _expanded(listing, frames)
        if table is None:  # rows and columns unchanged
            atomic_write(target, lambda p: shutil.copyfile(listing.path, p))
        else:
            n = int(table["frame"].notna().sum()) if "frame" in table.columns else 0
            if n:
                log.info("manifest.csv: multi-frame files listed once in %s now have one row per frame "
                         "(frame column)", listing.path)
            atomic_write(target, lambda p: table.to_csv(p, index=False))
        return
    hashes = None
    if ids["mode"] == "headers":
        import pandas as pd
        parts = [pd.read_csv(out / S.PARTS / W.ids_part(c), dtype=str, keep_default_na=False)
                 for c in range(ids["chunks"])]
        merged = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["path"])
        hashes = {r["path"]: {**r, "from_header": r["from_header"] == "True"} for r in merged.to_dict("records")}
    files = [(k, frames[k]) for k in listing.files if k in frames]
    table = I.manifest_table(files, hashes, val_fraction=ids["val_fraction"], test_fraction=ids["test_fraction"])
    atomic_write(target, lambda p: table.to_csv(p, index=False))


def _finished(out: Path, listing: Listing, ident: dict, t0: float, mode: str, id_key) -> PrepareSummary:
    meta = S.read_meta(out)
    _refuse_other(out, meta["source"], ident, "is a prepared dataset")
    _refuse_other_ids(out, meta.get("ids", {}), mode, I.read_key(id_key) if id_key and mode == "headers" else None,
                      "was prepared")
    c = meta["counts"]
    if listing.kind == "manifest" and meta["source"].get("manifest_sha256") != ident["manifest_sha256"]:
        import pyarrow.parquet as pq
        paths = pq.read_table(out / S.INDEX, columns=["path"]).column("path").to_pylist()
        _write_manifest(out, listing, _frame_counts(paths), meta.get("ids", {}))
        meta["source"] = ident
        _write_json(out / S.META, meta)
        log.info("%s: same files, new manifest rows: manifest.csv updated", out)
    log.info("%s is already prepared (%d files, %d bad); nothing to do", out, c["files"], c["bad_files"])
    return PrepareSummary(out, c["files"], c["bad_files"], c["records"], c["shards"], c["bytes"], 0,
                          meta["chunks"], meta["chunks"], time.monotonic() - t0, already=True)


def _lock(out: Path):
    import fcntl

    fh = open(out / S.PARTS / ".lock", "w")
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        fh.close()
        raise MedclError("another medcl prepare is writing this dataset", path=out,
                         fix="wait for it to finish, or choose another --out") from None
    return fh


def _plan(out: Path, ident: dict, listing: Listing, chunk_files: int | None, workers: int, mode: str,
          id_key) -> tuple[dict, bytes | None]:
    """The preparation's plan (made, or read to resume) and its ID key (None unless --ids headers)."""
    path = out / S.PARTS / "plan.json"
    if path.is_file():
        plan = json.loads(path.read_text())
        _refuse_other(out, plan["source"], ident, "holds an unfinished preparation")
        if chunk_files is not None and chunk_files != plan["chunk_files"]:
            raise MedclError(f"this preparation was started with --chunk-files {plan['chunk_files']}", path=out,
                             fix=f"rerun with --chunk-files {plan['chunk_files']} (or without it) to resume")
        what = "holds a preparation started"
        _refuse_other_ids(out, plan.get("ids", {}), mode, None, what)
        key = None
        if mode == "headers":
            if not id_key and not (out / I.KEY_FILE).is_file():
                raise MedclError(f"{what} with an ID key that is no longer there ({I.KEY_FILE})", path=out,
                                 fix="pass that key with --id-key to resume, or choose a new --out folder")
            key = I.read_key(id_key or out / I.KEY_FILE)
            _refuse_other_ids(out, plan["ids"], mode, key, what)
        return plan, key
    if out.exists() and any(out.iterdir()):
        raise MedclError("is not empty and not a medcl dataset", path=out, fix="choose a new or empty --out folder")
    if chunk_files is not None and chunk_files < 1:
        raise MedclError(f"--chunk-files {chunk_files} is not a positive number", fix="use e.g. 256")
    chunk_files = chunk_files or _auto_chunk_files(listing, workers)
    (out / S.SHARDS).mkdir(parents=True, exist_ok=True)
    (out / S.PARTS).mkdir(exist_ok=True)
    key = I.key_for(out, id_key)[0] if mode == "headers" else None
    plan = {"format": S.FORMAT, "version": S.VERSION, "source": ident, "chunk_files": chunk_files,
            "chunks": math.ceil(len(listing.files) / chunk_files),
            "ids": {"mode": mode, **({"key_check": I.key_check(key)} if key is not None else {})}}
    _write_json(path, plan)
    return plan, key


def _merge(out: Path, listing: Listing, plan: dict, val_fraction: float, test_fraction: float) -> dict:
    import pyarrow as pa
    import pyarrow.parquet as pq

    n = plan["chunks"]
    table = pa.concat_tables([pq.read_table(out / S.PARTS / f"index-{c:05d}.parquet") for c in range(n)])
    atomic_write(out / S.INDEX, lambda p: pq.write_table(table, p))
    bad = [row for c in range(n) for row in S.read_bad(out / S.PARTS / f"bad-{c:05d}.csv")]
    atomic_write(out / S.BAD_FILES, lambda p: W.write_bad(p, bad))
    frames = _frame_counts(table.column("path").to_pylist())
    ids = {**plan["ids"], "chunks": n, "val_fraction": val_fraction, "test_fraction": test_fraction}
    _write_manifest(out, listing, frames, ids)
    ids.pop("chunks")
    shard_files = [f for f in (out / S.SHARDS / S.shard_name(c) for c in range(n)) if f.exists()]
    from medcl import __version__
    return {"format": S.FORMAT, "version": S.VERSION, "medcl_version": __version__,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "source": plan["source"],
            "chunk_files": plan["chunk_files"], "chunks": n, "ids": ids,
            "counts": {"files": len(listing.files), "good_files": len(frames), "bad_files": len(bad),
                       "records": table.num_rows, "shards": len(shard_files),
                       "bytes": sum(f.stat().st_size for f in shard_files)}}


def _remove_stale(out: Path) -> None:
    """The leftovers of an interrupted run: a worker's shard, an atomic_write's file."""
    for folder in (out / S.SHARDS, out / S.PARTS):
        for pattern in (".*.tmp-*", TMP_GLOB):
            for stale in folder.glob(pattern):
                stale.unlink()


def _run_chunks(out: Path, listing: Listing, plan: dict, key: bytes | None, workers: int) -> tuple[int, int]:
    """Prepares the plan's chunks that are not done yet; returns (files read, chunks done before)."""
    from medcl.progress import Progress

    items = list(listing.files.items())
    size, n = plan["chunk_files"], plan["chunks"]
    todo = [c for c in range(n) if not (out / S.PARTS / f"index-{c:05d}.parquet").is_file()]
    done = len(items) - sum(len(items[c * size:(c + 1) * size]) for c in todo)
    if len(todo) < n:
        log.info("resuming %s: %d of %d chunks already done", out, n - len(todo), n)
    tasks = [(str(out), c, items[c * size:(c + 1) * size], key) for c in todo]
    processed = bad = finished = 0
    with Progress("prepare: files", total=len(items), start=done) as progress:
        try:
            for _, files, n_bad in _results(tasks, workers):
                processed, bad, finished = processed + files, bad + n_bad, finished + 1
                progress.update(done + processed, postfix=f"{bad} bad")
        except KeyboardInterrupt:
            log.warning("interrupted: %d of %d chunks done; rerun the same command to resume",
                        n - len(todo) + finished, n)
            raise
    return processed, n - len(todo)


def prepare(source, out, *, workers: int | None = None, chunk_files: int | None = None, ids: str | None = None,
            id_key=None, val_fraction: float = VAL_FRACTION, test_fraction: float = TEST_FRACTION) -> PrepareSummary:
    """Prepares (or resumes preparing) ``out`` from a folder of DICOM files or a manifest.

    ids: a folder's people: "headers" (default; keyed hashes of PatientID, medcl.data.identity)
        or "path" (FID = IID = the file's path). id_key: the key file (default DATASET/id-key,
        made when absent). val_fraction, test_fraction: the shares of people in val and test
        (a folder's manifest gets a split column drawn per person).
    """
    from medcl.data.splits import check_fractions

    t0 = time.monotonic()
    out = Path(os.fspath(out)).expanduser().absolute()
    if out.exists() and not out.is_dir():
        raise MedclError("exists and is not a folder", path=out, fix="choose a new --out folder")
    listing = list_source(source, out)
    ident = listing.identity()
    mode = _id_mode(listing, ids, id_key)
    check_fractions(val_fraction, test_fraction)
    if (out / S.META).is_file():
        return _finished(out, listing, ident, t0, mode, id_key)
    workers = default_workers(listing) if workers is None or workers < 1 else workers
    plan, key = _plan(out, ident, listing, chunk_files, workers, mode, id_key)
    lock = _lock(out)
    try:
        _remove_stale(out)
        processed, before = _run_chunks(out, listing, plan, key, workers)
        meta = _merge(out, listing, plan, val_fraction, test_fraction)
        _write_json(out / S.META, meta)
        shutil.rmtree(out / S.PARTS, ignore_errors=True)
    finally:
        lock.close()
    c = meta["counts"]
    if c["bad_files"]:
        log.warning("skipped %d of %d files that cannot be read or decoded; see %s", c["bad_files"], c["files"],
                    out / S.BAD_FILES)
    return PrepareSummary(out, c["files"], c["bad_files"], c["records"], c["shards"], c["bytes"], processed,
                          plan["chunks"], before, time.monotonic() - t0)
