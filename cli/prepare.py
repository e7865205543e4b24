"""``medcl prepare SOURCE --out DATASET``: pack DICOM pixels into shards for fast loading."""
from __future__ import annotations

import logging

import click

from medcl.cli.manifest import id_options
from medcl.cli.options import common_options

log = logging.getLogger("medcl")


@click.command("prepare")
@click.argument("source", type=click.Path())
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="Dataset folder (new or empty; or an unfinished one, to resume).")
@click.option("--workers", type=int, default=None, help="Processes (default: every core this job may use; one per GiB of files for small jobs).")
@click.option("--chunk-files", type=click.IntRange(min=1), default=None,
              help="Files per shard (default: about 256 MB of files, at most 1024, at least 4 chunks per worker).")
@id_options
@common_options
def command(source: str, out: str, workers: int | None, chunk_files: int | None, ids, id_key, val_fraction,
            test_fraction, device: str) -> None:
    """Index the DICOM files of SOURCE (a folder, or a manifest FID,IID,path[,frame,*_path]) into OUT.

    OUT gets manifest.csv, index.parquet, shards/ of raw pixel bytes, bad_files.csv (every file
    that cannot be read or decoded, with the reason; skipped, never fatal) and
    medcl-dataset.json. Pass OUT (or OUT/manifest.csv) to --data of pretrain, preview, embed
    and finetune: DataLoader workers then read bytes, not DICOM files. Interrupted? Run the
    same command again: finished chunks are kept.

    From a folder, manifest.csv has one row per image frame (FID, IID, path, frame, study,
    series, split): people from the headers as keyed hashes (--ids, --id-key; the key is
    OUT/id-key unless given), splits drawn per person. It is yours to edit (drop rows, change
    splits per person, add columns; see `medcl manifest --help`); labels and genetics join on
    its IIDs. From a manifest, its rows are kept (a multi-frame file listed once gets one row
    per frame). --device is accepted for uniformity (validation decodes on the CPU).
    """
    from medcl.prepare import prepare

    s = prepare(source, out, workers=workers, chunk_files=chunk_files, ids=ids, id_key=id_key,
                val_fraction=val_fraction, test_fraction=test_fraction)
    if not s.already:
        rate = s.n_processed / max(s.elapsed_s, 1e-9)
        log.info("prepared %s in %.1f s (%.1f files/s): %d files, %d skipped, %d records in %d shards (%.2f GB)",
                 s.out, s.elapsed_s, rate, s.n_files, s.n_bad, s.n_records, s.n_shards, s.n_bytes / 1e9)
    click.echo(str(s.out))
