"""``medcl manifest FOLDER --out manifest.csv``: a manifest to edit, from a folder of DICOM files."""
from __future__ import annotations

import functools
import logging

import click

from medcl.cli.options import common_options

log = logging.getLogger("medcl")

def id_options(func):
    """--ids, --id-key, --val-fraction, --test-fraction (medcl manifest and medcl prepare)."""

    @click.option("--ids", type=click.Choice(["headers", "path"]), default=None,
                  help="Who is who, for a folder. headers (default): FID = IID = a keyed hash (HMAC-SHA256, "
                       "16 hex digits) of the DICOM PatientID, study and series columns likewise from the "
                       "Study/Series Instance UIDs; the raw values are never written. A file without a "
                       "PatientID is its own person (counted in the log). path: FID = IID = the file's path "
                       "below the folder.")
    @click.option("--id-key", type=click.Path(dir_okay=False), default=None, envvar="MEDCL_ID_KEY",
                  help="File holding the key of the hashed IDs (env MEDCL_ID_KEY). Default: id-key beside the "
                       "output, made (mode 0600) when absent. Keep it to give further files of the same "
                       "archive the same IDs; it is as private as the PatientIDs; delete it to make the IDs "
                       "unlinkable.")
    @click.option("--val-fraction", type=click.FloatRange(0, 1, max_open=True), default=None,
                  help="Share of people in the val split (default 0.15). Splits are drawn per person "
                       "(a hash of FID/IID), so no patient is in two splits.")
    @click.option("--test-fraction", type=click.FloatRange(0, 1, max_open=True), default=None,
                  help="Share of people in the test split (default 0.15).")
    @functools.wraps(func)
    def wrapper(*args, val_fraction=None, test_fraction=None, **kwargs):
        from medcl.data.splits import TEST_FRACTION, VAL_FRACTION
        return func(*args, val_fraction=VAL_FRACTION if val_fraction is None else val_fraction,
                    test_fraction=TEST_FRACTION if test_fraction is None else test_fraction, **kwargs)

    return wrapper


@click.command("manifest")
@click.argument("folder", type=click.Path())
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Manifest to write (.csv).")
@click.option("--overwrite", is_flag=True, help="Replace an existing --out (and your edits in it).")
@id_options
@common_options
def command(folder, out, overwrite, ids, id_key, val_fraction, test_fraction, device) -> None:
    """Write a manifest (CSV) of the DICOM and PNG/JPEG files below FOLDER, to edit and pass to
    --data (or to medcl prepare), without packing the pixels.

    One row per image frame: FID, IID, path (relative to the manifest), frame (0-based; a
    multi-frame file has one row per frame), study, series (hashed visit and series), split
    (train/val/test, drawn per person). Only headers are read.

    \b
    Editing it (any spreadsheet or pandas; keep the columns FID, IID, path):
      - drop rows (images) you do not want; change split per person (all rows of an IID alike);
      - genetics and labels join by FID/IID: put the manifest's IIDs in your label table
        (FID,IID,<target>) or .fam, or replace FID/IID with your study IDs (every row of a
        patient alike);
      - add columns (view, ...); a frame column picks one frame of a multi-frame file.
    Then: medcl prepare manifest.csv --out DATASET (fast loading), or --data manifest.csv.
    --device is accepted for uniformity.
    """
    from medcl.manifest import folder_manifest

    s = folder_manifest(folder, out, ids=ids or "headers", id_key=id_key, val_fraction=val_fraction,
                        test_fraction=test_fraction, overwrite=overwrite)
    log.info("wrote %s: %d rows (image frames) of %d people from %d files (%d left out)", s.out, s.n_rows,
             s.n_people, s.n_files, s.n_skipped)
    click.echo(str(s.out))
