"""Where a dataset's raw frames come from: the image files themselves, or a prepared dataset.

    source = open_source("DATASET")           # a `medcl prepare` output: bytes read from shards
    source = open_source("cohort/manifest.csv")  # plain files: DICOM headers parsed, pixels not decoded
    raw = source.read(path)                   # one RawImage (its undecoded pixel bytes + descriptor)

Both return :class:`medcl.io.pixels.RawImage`; decoding happens later, in batches
(:mod:`medcl.data.render`). PNG and JPEG pictures (fundus photographs) are read with Pillow as
8- or 16-bit grayscale frames whose window maps the full range onto [0, 1], so they share the
decode and augment ops.
"""
from __future__ import annotations

import os
from pathlib import Path

from medcl.errors import DicomError

PICTURE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")


class FileSource:
    """Raw frames read from the image files a manifest lists (one frame per file)."""

    prepared = False

    def read(self, path):
        if str(path).lower().endswith(PICTURE_SUFFIXES):
            from medcl.io.picture import picture_raw
            return picture_raw(path)
        from medcl.io.pixels import read_raw
        frames = read_raw(path)
        if len(frames) != 1:
            raise DicomError(f"has {len(frames)} frames; one image per file is expected", path=path,
                             fix="list single-frame images in the manifest")
        return frames[0]


def open_source(data) -> tuple[str, object]:
    """(manifest path, source) for ``--data``: a prepared dataset (its folder or its manifest.csv)
    reads from its shards; anything else is a manifest of image files."""
    from medcl.data.shards import open_prepared

    prepared = open_prepared(data) if data is not None else None
    if prepared is not None:
        manifest, source = prepared
        return os.fspath(manifest), source
    if data is not None and Path(data).is_dir():
        raise DicomError("is a folder but not a prepared dataset (no medcl-dataset.json)", path=data,
                         fix="pass its manifest, or run `medcl prepare` on it first")
    return data, FileSource()
