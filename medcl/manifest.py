"""``medcl manifest FOLDER --out manifest.csv``: a manifest to edit, from a folder of image files.

The same people, frames and splits as ``medcl prepare`` writes into DATASET/manifest.csv
(medcl.data.identity), without packing pixels: every file below FOLDER (hidden ones aside) has
its header read (never its pixels), one row per frame: FID, IID, path, frame, study, series,
split. PNG/JPEG pictures are one frame and one person each. Files that are not DICOM images
are left out and counted. Paths are written relative to the manifest's folder.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from medcl.data import identity as I
from medcl.data.splits import TEST_FRACTION, VAL_FRACTION
from medcl.errors import ConfigError, MedclError
from medcl.files import atomic_write

log = logging.getLogger("medcl")

_SHOW = 10  # skipped files named in the log


@dataclass
class ManifestSummary:
    out: Path
    n_files: int    # files below the folder
    n_skipped: int  # of which left out (not DICOM images)
    n_rows: int     # rows written (one per frame)
    n_people: int


def folder_manifest(folder, out, *, ids: str = "headers", id_key=None, val_fraction: float = VAL_FRACTION,
                    test_fraction: float = TEST_FRACTION, overwrite: bool = False) -> ManifestSummary:
    """Writes ``out`` (CSV) for the image files below ``folder``; see the module docstring.
    id_key: the key file (default ``id-key`` beside ``out``, made when absent)."""
    from medcl.data.bad_samples import reason_of
    from medcl.data.sources import PICTURE_SUFFIXES
    from medcl.data.splits import check_fractions
    from medcl.prepare import list_directory
    from medcl.progress import Progress

    I.check_mode(ids)
    check_fractions(val_fraction, test_fraction)
    folder = Path(os.fspath(folder)).expanduser()
    out = Path(os.fspath(out)).expanduser().absolute()
    if not folder.is_dir():
        raise MedclError("no such folder" if not folder.exists() else "is not a folder", path=folder,
                         fix="pass a folder of DICOM files (a manifest needs no manifest: pass it to --data)")
    if out.suffix.lower() != ".csv":
        raise ConfigError(f"--out {out.name} is not a .csv file", path=out, fix="name the manifest e.g. manifest.csv")
    if out.exists() and not overwrite:
        raise MedclError("already exists (and may hold your edits)", path=out,
                         fix="choose another --out, or pass --overwrite to replace it")
    folder = folder.resolve()
    key = I.key_for(out.parent, id_key)[0] if ids == "headers" else None
    own = {os.path.realpath(out), os.path.realpath(out.parent / I.KEY_FILE)}
    listing = list_directory(folder)
    files = {k: f for k, f in listing.files.items() if os.path.realpath(f) not in own}
    entries, hashes, skipped = [], {}, []
    with Progress("manifest: files", total=len(files)) as progress:
        for n, (k, f) in enumerate(files.items(), start=1):
            try:
                header = None if k.lower().endswith(PICTURE_SUFFIXES) else I.read_header(f)
            except MemoryError:
                raise
            except Exception as exc:  # noqa: BLE001 - left out and counted, never fatal
                skipped.append((k, reason_of(exc)))
            else:
                entries.append((k, 1 if header is None else header["frames"]))
                if key is not None:
                    hashes[k] = I.hashed(key, header, k)
            progress.update(n, postfix=f"{len(skipped)} skipped")
    if not entries:
        raise MedclError(f"holds no readable image among its {len(files)} file(s)", path=folder,
                         fix="pass the folder of the DICOM (or PNG/JPEG) files")
    table = I.manifest_table(entries, hashes if key is not None else None, val_fraction=val_fraction,
                             test_fraction=test_fraction)
    rel = {k: os.path.relpath(folder / k, out.parent) for k, _ in entries}
    table["path"] = table["path"].map(rel)
    atomic_write(out, lambda p: table.to_csv(p, index=False))
    if skipped:
        shown = "; ".join(f"{k} ({r})" for k, r in skipped[:_SHOW])
        log.warning("left out %d of %d files that are not DICOM images: %s%s", len(skipped), len(files), shown,
                    " ..." if len(skipped) > _SHOW else "")
    return ManifestSummary(out, len(files), len(skipped), len(table), int(table["IID"].nunique()))
