"""The cohort: images joined to genetic modalities by FID/IID, split by individual.

    cohort = load_cohort("demo/manifest.csv", genotypes="demo/genotypes/demo",
                         prs="demo/prs.csv", modalities=("snp", "prs"))
    cohort.people     # one row per individual: FID, IID, split
    cohort.images     # one row per image (manifest rows) + ``person`` (row of people) + ``manifest_row``
    cohort.genetics["snp"].values[cohort.images.person]   # (N_images, M) standardised genotypes

People are the individuals of the manifest (images are what is trained on), sorted by
(FID, IID) so that the result does not depend on row order in any input. Statistics are
fitted on the training people only and kept in ``GeneticsTable.stats`` for saving.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from medcl.data.genetics import MODALITIES, GeneticsTable, build_table, snp_source, table_source
from medcl.data.sources import manifest_rows, open_source
from medcl.data.splits import TEST_FRACTION, VAL_FRACTION, people_splits
from medcl.errors import ConfigError, TableError
from medcl.io.tables import KEYS, SPLITS

log = logging.getLogger("medcl")

AGGREGATES = ("outer", "inner")


@dataclass
class Cohort:
    """Images and genetics of one set of individuals."""

    people: pd.DataFrame  # one row per individual: FID, IID, split (sorted by FID, IID)
    images: pd.DataFrame  # manifest rows (one per image) + ``person`` (row index into people) + ``manifest_row``
    genetics: dict[str, GeneticsTable]  # {modality: table}, rows aligned with ``people``
    root: Path | None = None  # the manifest's folder (bad-sample paths are written relative to it)
    counted_allele: str = "a1"  # the allele the snp values count
    aggregate: str = "outer"  # "outer": everyone, with masks; "inner": only people with every modality
    dropped_people: int = 0  # individuals left out by aggregate="inner"
    source: object = None  # where frames are read from (medcl.data.sources: shards of a prepared dataset); None: the files

    @property
    def modalities(self) -> list:
        return list(self.genetics)

    def images_in(self, split: str | None) -> np.ndarray:
        """(K,) rows of ``images`` whose individual is in ``split`` (None: all)."""
        if split is None:
            return np.arange(len(self.images))
        _check_split_name(split)
        return np.flatnonzero(self.images["split"].to_numpy() == split)

    def stats(self) -> dict:
        """{modality: statistics} to save with a run (JSON-serialisable)."""
        return {m: t.stats for m, t in self.genetics.items()}

    def summary(self) -> dict:
        """Counts only (no identifiers): people, images, per split, per modality present."""
        split_p = self.people["split"].to_numpy()
        split_i = self.images["split"].to_numpy()
        out = {"people": len(self.people), "images": len(self.images), "aggregate": self.aggregate,
               "dropped_people": int(self.dropped_people),
               "splits": {s: {"people": int((split_p == s).sum()), "images": int((split_i == s).sum())}
                          for s in SPLITS},
               "modalities": {}}
        for m, t in self.genetics.items():
            out["modalities"][m] = {"dim": t.dim, "present": int(t.present.sum()),
                                    **{s: int((t.present & (split_p == s)).sum()) for s in SPLITS}}
        return out

    def describe(self) -> str:
        """One line of counts for logs."""
        s = self.summary()
        splits = ", ".join(f"{k} {v['people']}/{v['images']}" for k, v in s["splits"].items())
        mods = "; ".join(f"{m} (D={v['dim']}) present for {v['present']} (train {v['train']})"
                         for m, v in s["modalities"].items()) or "no genetics"
        dropped = f", {s['dropped_people']} without every modality left out" if s["dropped_people"] else ""
        return (f"cohort: {s['people']} people, {s['images']} images{dropped}; people/images by split: "
                f"{splits}; {mods}")


def _check_split_name(split: str) -> None:
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}", fix=f"use one of {', '.join(SPLITS)}")


def _modalities(modalities: Sequence[str], sources: Mapping[str, object]) -> list:
    if isinstance(modalities, str):
        modalities = [m.strip() for m in modalities.split(",") if m.strip()]
    wanted = [m for m in dict.fromkeys(modalities) if m != "image"]  # images are always there
    unknown = [m for m in wanted if m not in MODALITIES]
    if unknown:
        raise ConfigError(f"unknown modality {', '.join(map(repr, unknown))}",
                          fix=f"choose from image, {', '.join(MODALITIES)}")
    option = {"snp": "genotypes (a PLINK prefix)", "prs": "prs (a table)", "burden": "burden (a table)"}
    absent = [m for m in wanted if sources[m] is None]
    if absent:
        raise ConfigError(f"modality {', '.join(absent)} requested without its data",
                          fix="give " + " and ".join(option[m] for m in absent))
    return wanted


def _people(manifest: pd.DataFrame) -> pd.DataFrame:
    people = manifest[KEYS].drop_duplicates()
    return people.sort_values(KEYS, kind="stable").reset_index(drop=True)


def load_cohort(manifest, *, genotypes=None, prs=None, burden=None, snps=None, counted_allele: str = "a1",
                modalities: Sequence[str] = ("snp",), aggregate: str = "outer", split_seed: int = 0,
                val_fraction: float = VAL_FRACTION, test_fraction: float = TEST_FRACTION,
                stats: Mapping[str, dict] | None = None,
                check_files: bool = True, log_summary: bool = True) -> Cohort:
    """Join a manifest's images to genetic modalities by FID/IID and split by individual.

    manifest: ``--data`` (a manifest, a prepared dataset or its manifest.csv; resolved by
        medcl.data.sources.open_source) or a DataFrame as read_manifest returns it.
    genotypes: PLINK prefix or Genotypes; prs, burden: table paths or DataFrames.
    snps: a SnpSelection for the PLINK read; counted_allele: "a1" (PLINK default) or "a2".
    modalities: which of "snp", "prs", "burden" to load ("image" is accepted and implied).
    aggregate: "outer" keeps everyone with ``present`` masks; "inner" keeps only individuals
        (and their images) who have every requested modality.
    split_seed, val_fraction, test_fraction: the hashed split, used when the manifest has no
        ``split`` column.
    stats: {modality: stats dict saved earlier} to apply instead of fitting on this cohort's
        training people (embedding or evaluating with a trained model's statistics).
    check_files: passed to read_manifest (report every missing image file up front; a
        prepared dataset holds its images' bytes, so it is never checked).
    log_summary: log the counts (``Cohort.describe()``) once at INFO on the "medcl" logger;
        pass False on all ranks but the first.
    """
    if aggregate not in AGGREGATES:
        raise ConfigError(f"aggregate={aggregate!r} is not supported", fix="use 'outer' or 'inner'")
    if counted_allele not in ("a1", "a2"):
        raise ConfigError(f"counted_allele must be 'a1' or 'a2', not {counted_allele!r}")
    source, reader = None, None
    if not isinstance(manifest, pd.DataFrame):  # a missing --data is named before anything else
        path, reader = open_source(manifest)
        source = Path(path)
    wanted = _modalities(modalities, {"snp": genotypes, "prs": prs, "burden": burden})
    stats = dict(stats or {})
    frame, root = _manifest_frame(manifest, source, reader, check_files)

    people = _people(frame)
    people["split"] = people_splits(people, frame, split_seed=split_seed, val_fraction=val_fraction,
                                    test_fraction=test_fraction, source=source)
    sources = {m: snp_source(genotypes, people, counted_allele=counted_allele, snps=snps) if m == "snp"
               else table_source(m, prs if m == "prs" else burden, people) for m in wanted}
    dropped = 0
    if aggregate == "inner" and sources:
        people, sources, dropped = _complete_people(people, sources, source)

    train = people["split"].to_numpy() == "train"
    if not train.any() and len(stats) < len(sources):
        raise TableError("no individual is in the training split", path=source,
                         fix="statistics are fitted on training people: give some the split 'train'")
    genetics = {m: build_table(s, train, stats=stats.get(m)) for m, s in sources.items()}
    cohort = Cohort(people=people, images=_image_rows(frame, people), genetics=genetics, root=root,
                    counted_allele=counted_allele, aggregate=aggregate, dropped_people=dropped,
                    source=reader if reader is not None and reader.prepared else None)
    if log_summary:
        log.info(cohort.describe())
    return cohort


def _manifest_frame(manifest, source: Path | None, reader, check_files: bool) -> tuple[pd.DataFrame, Path | None]:
    """(the manifest's rows, numbered by "manifest_row"; the folder relative image paths start
    from, None for a DataFrame) with FID/IID checked to be text."""
    root = None
    if isinstance(manifest, pd.DataFrame):
        frame = manifest.reset_index(drop=True).copy()
        missing = [c for c in KEYS + ["path"] if c not in frame.columns]
        if missing:
            raise TableError(f"manifest frame lacks column(s) {', '.join(missing)}",
                             fix="read it with medcl.io.read_manifest")
    else:
        frame = manifest_rows(source, reader, check_files=check_files)
        root = source.resolve().parent
    for key in KEYS:
        if not all(isinstance(v, str) for v in frame[key]):
            raise TableError(f"manifest {key} values are not all strings", path=source,
                             fix="keep IDs as text, as read_manifest returns them")
    frame["manifest_row"] = np.arange(len(frame), dtype=np.int64)
    return frame, root


def _complete_people(people: pd.DataFrame, sources: dict, source) -> tuple[pd.DataFrame, dict, int]:
    """aggregate="inner": (the people with every modality, their sources, how many were dropped)."""
    keep = np.logical_and.reduce([s.present for s in sources.values()])
    if not keep.any():
        raise TableError(f"no individual of the manifest has every modality ({', '.join(sources)})",
                         path=source, fix="check that FID/IID match across files, or use aggregate='outer'")
    return people[keep].reset_index(drop=True), {m: s.subset(keep) for m, s in sources.items()}, int((~keep).sum())


def _image_rows(frame: pd.DataFrame, people: pd.DataFrame) -> pd.DataFrame:
    """The manifest rows of the people kept, in manifest order, with their "person" index and split."""
    lookup = pd.DataFrame({"FID": people["FID"], "IID": people["IID"],
                           "person": np.arange(len(people), dtype=np.int64), "_split": people["split"]})
    images = frame.drop(columns=[c for c in ("person",) if c in frame.columns])
    images = images.merge(lookup, on=KEYS, how="inner", sort=False)  # inner: images of dropped people go
    images = images.sort_values("manifest_row", kind="stable").reset_index(drop=True)
    images["split"] = images.pop("_split")
    return images
