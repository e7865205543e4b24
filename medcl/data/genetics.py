"""Genetic modalities aligned to the people of a cohort, standardised with training statistics.

Each modality is matched to the cohort's individuals by (FID, IID), never by row order:
- ``snp``: a PLINK fileset (or a :class:`~medcl.io.plink.Genotypes` already read); missing
  calls are imputed with the training mean and every SNP standardised by
  :class:`~medcl.io.genotype_stats.GenotypeStats` fitted on the training people.
- ``prs`` / ``burden``: per-individual tables (FID, IID, numeric columns); a missing cell is
  imputed with the training column mean, columns are standardised with training mean/std
  (population std, ddof=0; a column without variance maps to 0).
A person absent from a source (or, for tables, with every cell empty) has ``present=False``
and a row of zeros.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import pandas as pd

from medcl.errors import ConfigError, PlinkError, TableError
from medcl.io.genotype_stats import GenotypeStats, column_stats, standardise
from medcl.io.tables import KEYS, join_on_ids, read_table

MODALITIES = ("snp", "prs", "burden")
TABLE_FORMAT = "medcl.table_stats"
TABLE_VERSION = 1


@dataclass
class GeneticsTable:
    """One genetic modality, one row per individual of the cohort (``Cohort.people`` order)."""

    name: str  # "snp" | "prs" | "burden"
    values: np.ndarray  # (N_people, D) float32, standardised with training statistics, missing imputed/zeroed
    present: np.ndarray  # (N_people,) bool: the person has this modality at all
    stats: dict  # JSON-serialisable: training mean/std, columns (+ GenotypeStats fields and counted allele for snp)

    @property
    def dim(self) -> int:
        return int(self.values.shape[1])


# ---------------------------------------------------------------- sources (raw values, before statistics)

@dataclass
class GeneticsSource:
    """Raw values of one modality, matched to the cohort's people; statistics not yet applied."""

    name: str  # modality
    matrix: np.ndarray  # (N_source, D) float, NaN = missing (genotype rows, or table rows)
    rows: np.ndarray  # (N_people,) int64 row of each person in ``matrix``, -1 = absent
    present: np.ndarray  # (N_people,) bool
    columns: list  # (D,) column names (SNP ids for snp)
    genotypes: object = None  # the Genotypes (snp only): SNP metadata and counted allele
    origin: str = ""  # file it came from, for messages

    def subset(self, keep: np.ndarray) -> "GeneticsSource":
        return GeneticsSource(self.name, self.matrix, self.rows[keep], self.present[keep], self.columns,
                              self.genotypes, self.origin)


def snp_source(genotypes, people: pd.DataFrame, *, counted_allele: str = "a1", snps=None) -> GeneticsSource:
    """genotypes: a PLINK prefix (read with ``snps`` and ``counted_allele``) or a Genotypes."""
    from medcl.io.plink import Genotypes, read_genotypes

    if isinstance(genotypes, Genotypes):
        if genotypes.counted_allele != counted_allele:
            raise ConfigError(f"the genotypes given count {genotypes.counted_allele}, counted_allele is "
                              f"{counted_allele!r}", fix="read them with the same counted allele")
        if snps is not None:
            raise ConfigError("a SNP selection applies when reading a fileset, not to Genotypes already read",
                              fix="pass the PLINK prefix with snps=, or select before")
        g = genotypes
    else:
        g = read_genotypes(os.fspath(genotypes), counted_allele=counted_allele, snps=snps)
    rows = g.index.get_indexer(pd.MultiIndex.from_frame(people[KEYS])).astype(np.int64)  # (N_people,), -1 = absent
    return GeneticsSource("snp", g.values, rows, rows >= 0, list(map(str, g.snp)), genotypes=g,
                          origin=g.source)


def table_source(name: str, table, people: pd.DataFrame) -> GeneticsSource:
    """table: a path (read with read_table) or a DataFrame with FID, IID (strings) and numeric columns."""
    origin = ""
    if isinstance(table, pd.DataFrame):
        df = table.copy()
        cols = [c for c in df.columns if c not in KEYS]
        if not cols:
            raise TableError(f"the {name} table has no value columns",
                             fix="add at least one numeric column besides FID and IID")
        for c in cols:
            try:
                df[c] = pd.to_numeric(df[c], errors="raise").astype(np.float64)
            except (TypeError, ValueError):
                raise TableError(f"{name} column {c!r} is not numeric",
                                 fix="score columns hold numbers; leave a cell empty for a missing value") from None
    else:
        origin = os.fspath(table)
        df = read_table(table, kind=name)  # value columns checked and made float64 there
        cols = [c for c in df.columns if c not in KEYS]
    df = df.reset_index(drop=True)
    df["_row"] = np.arange(len(df), dtype=np.int64)
    joined = join_on_ids(people[KEYS].reset_index(drop=True), df[KEYS + ["_row"]], how="left")
    rows = joined["_row"].fillna(-1).to_numpy(dtype=np.int64)  # (N_people,)
    matrix = df[cols].to_numpy(dtype=np.float64)  # (N_table, D)
    present = rows >= 0
    present[present] = ~np.isnan(matrix[rows[present]]).all(axis=1)
    return GeneticsSource(name, matrix, rows, present, [str(c) for c in cols], origin=origin)


# ---------------------------------------------------------------- statistics

def _table_stats(name: str, x: np.ndarray, columns: list) -> dict:
    """Column mean and population std of the non-missing values of ``x`` (R, D)."""
    mean, std, cnt = column_stats(x)
    return {"format": TABLE_FORMAT, "version": TABLE_VERSION, "modality": name, "columns": list(columns),
            "mean": [float(v) for v in mean], "std": [float(v) for v in std],
            "n_called": [int(v) for v in cnt], "n_rows": int(x.shape[0])}


def _check_table_stats(src: GeneticsSource, stats: dict) -> None:
    if not isinstance(stats, dict) or stats.get("format") != TABLE_FORMAT or stats.get("version") != TABLE_VERSION:
        raise ConfigError(f"saved {src.name} statistics are not a medcl table-statistics record",
                          fix="pass the stats dict saved with the run (GeneticsTable.stats)")
    if list(stats["columns"]) != list(src.columns):
        raise TableError(f"the {src.name} table has columns {', '.join(src.columns)}, the saved statistics "
                         f"{', '.join(map(str, stats['columns']))}", path=src.origin or None,
                         fix="use a table with the training columns, in the same order")


def _blockwise(out: np.ndarray, matrix: np.ndarray, present: np.ndarray, have: np.ndarray, fn,
               block: int = 4096) -> None:
    """out[present] = fn(matrix[have]), a block of people at a time (float64 temporaries stay
    (block, D) instead of (N, D))."""
    where = np.flatnonzero(present)  # (K,) people rows, aligned with ``have``
    for lo in range(0, len(where), block):
        out[where[lo:lo + block]] = fn(matrix[have[lo:lo + block]])


def build_table(src: GeneticsSource, train: np.ndarray, *, stats: dict | None = None) -> GeneticsTable:
    """Fit statistics on the present training people (``train``: (N_people,) bool), or apply
    ``stats`` saved earlier, and standardise every present person. Absent people get zeros."""
    fit_rows = src.rows[src.present & train]  # rows of ``matrix``
    if stats is None and len(fit_rows) == 0:
        raise TableError(f"no training individual has {src.name} data, so its statistics cannot be fitted",
                         path=src.origin or None,
                         fix="check the split and that the FID/IID values match the manifest's")
    out = np.zeros((len(src.rows), len(src.columns)), dtype=np.float32)  # (N_people, D)
    have = src.rows[src.present]
    if src.name == "snp":
        g = src.genotypes
        if stats is None:
            gs = GenotypeStats.fit(g, rows=fit_rows)
        else:
            try:
                gs = GenotypeStats.from_dict(stats)
            except PlinkError as exc:
                raise ConfigError(f"saved snp statistics: {exc}") from None
            gs.check_compatible(g)
        _blockwise(out, src.matrix, src.present, have, gs.transform)
        record = gs.to_dict() | {"modality": "snp", "columns": list(src.columns), "source": src.origin}
        return GeneticsTable("snp", out, src.present.copy(), record)
    if stats is None:
        stats = _table_stats(src.name, src.matrix[fit_rows], src.columns)
    else:
        _check_table_stats(src, stats)
        stats = dict(stats)
    _blockwise(out, src.matrix, src.present, have, lambda x: standardise(x, stats["mean"], stats["std"]))
    return GeneticsTable(src.name, out, src.present.copy(), stats)
