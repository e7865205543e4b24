"""What ``--data`` names, and where its raw frames come from.

    manifest, source = open_source("DATASET")         # a `medcl prepare` output: bytes read from shards
    manifest, source = open_source("DATASET/manifest.csv")   # the same
    manifest, source = open_source("cohort/manifest.csv")    # plain files: headers parsed, pixels not decoded
    table, source, root = read_data(data)             # its rows (read_manifest), source, manifest folder
    raw = source.read(path, frame)                    # one RawImage (undecoded pixel bytes + descriptor)

``open_source`` is the one resolver of ``--data`` for every command that reads images (pretrain,
preview, embed, finetune, and load_cohort): a manifest (.csv/.tsv/.parquet), a prepared dataset
folder or that dataset's manifest.csv. Anything else is a ManifestError naming the path and the
fix, raised before any other input is looked at.

Frames: each frame of a multi-frame file is one image. A manifest row picks its frame with the
``frame`` column (0-based; ``<name>_frame`` for a ``<name>_path`` column); ``medcl manifest`` and
``medcl prepare`` write one row per frame. A row without a frame number reads a single-frame
file; for a multi-frame file it is an error (DicomError, so a dataset skips and logs that row),
on every route alike.

PNG and JPEG pictures (fundus photographs) are read with Pillow as 8- or 16-bit grayscale frames
whose window maps the full range onto [0, 1], so they share the decode and augment ops.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from medcl.data.frames import check_frame
from medcl.errors import ManifestError

PICTURE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
MANIFEST_SUFFIXES = (".csv", ".tsv", ".txt", ".tab", ".parquet", ".pq")
MAKE_ONE = ("pass a manifest (FID,IID,path; .csv, .tsv or .parquet), a prepared dataset folder or its "
            "manifest.csv; from a folder of DICOM files make one with `medcl manifest FOLDER --out "
            "manifest.csv` or `medcl prepare FOLDER --out DATASET`")


class FileSource:
    """Raw frames read from the image files a manifest lists."""

    prepared = False

    def read_all(self, path) -> list:
        """Every frame of ``path`` (a picture has one)."""
        if str(path).lower().endswith(PICTURE_SUFFIXES):
            from medcl.io.picture import picture_raw
            return [picture_raw(path)]
        from medcl.io.pixels import read_raw
        return read_raw(path)

    def read(self, path, frame: int | None = None):
        """The RawImage of ``frame`` of ``path`` (None: a single-frame file's frame)."""
        frames = self.read_all(path)
        return frames[check_frame(len(frames), frame, path)]


def frame_numbers(table, path_column: str = "path") -> np.ndarray:
    """(N,) object array: each row's frame number of ``path_column`` (int), or None where the
    manifest names none (no column, or an empty cell)."""
    from medcl.io.tables import frame_column

    col = frame_column(path_column)
    if col not in table.columns:
        return np.full(len(table), None, dtype=object)
    return np.asarray([None if v is None or v != v else int(v) for v in table[col]], dtype=object)


def open_source(data) -> tuple[str, object]:
    """(manifest path, source) for ``--data``: a prepared dataset (its folder or its manifest.csv)
    reads from its shards; a manifest file reads its image files. Anything else: ManifestError."""
    from medcl.data.shards import open_prepared

    if data is None:
        raise ManifestError("no --data given", fix=MAKE_ONE)
    path = Path(os.path.expanduser(os.fspath(data)))
    prepared = open_prepared(path) if path.exists() else None
    if prepared is not None:
        manifest, source = prepared
        return os.fspath(manifest), source
    if not path.exists():
        raise ManifestError("no such manifest or prepared dataset", path=path, fix=MAKE_ONE)
    if path.is_dir():
        raise ManifestError("is a folder but not a prepared dataset (no medcl-dataset.json)", path=path,
                            fix=MAKE_ONE)
    if path.suffix.lower() not in MANIFEST_SUFFIXES:
        raise ManifestError(f"is not a manifest ({path.suffix or 'no extension'})", path=path, fix=MAKE_ONE)
    return os.fspath(path), FileSource()


def manifest_rows(manifest, source, *, check_files: bool = True):
    """read_manifest of ``manifest`` for ``source``: a plain manifest's files must exist (with
    ``check_files``); a prepared dataset's rows keep the paths of the files it was prepared
    from (their bytes are in its shards, so they are not checked)."""
    from medcl.io.tables import read_manifest

    if source.prepared:
        return read_manifest(manifest, check_files=False, base=source.files_root)
    return read_manifest(manifest, check_files=check_files)


def read_data(data) -> tuple:
    """(manifest rows as read_manifest returns them, source, the manifest's folder) for ``--data``
    (see manifest_rows)."""
    manifest, source = open_source(data)
    return manifest_rows(manifest, source), source, Path(manifest).resolve().parent
