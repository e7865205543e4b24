"""Per-SNP mean imputation and standardisation, fitted on training rows only and saved.

``GenotypeStats.fit(g, rows=train_rows)`` computes, for each SNP, the mean and population
standard deviation (ddof=0) of the *called* (non-missing) values in the training rows.
``transform`` replaces a missing call by that mean and returns ``(x - mean) / std``.
SNPs without variance in the training rows (monomorphic, or all calls missing) carry no
information the model could have learnt: they transform to 0 for every row.

The statistics remember the SNP ids, the counted allele ("a1"/"a2") and the counted allele's
letter per SNP, so applying them to a fileset with other SNPs, another order or a flipped
orientation raises a :class:`~medcl.errors.PlinkError` instead of silently mis-scaling.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass

import numpy as np

from medcl.errors import PlinkError

FORMAT = "medcl.genotype_stats"
VERSION = 1


def column_stats(x: np.ndarray, rows: np.ndarray | None = None, *, block: int = 4096
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per column of ``x[rows]`` (R, M): mean and population std of the non-missing (non-NaN)
    values, and their count; 0 where a column has none. Column blocks: never a float64 copy of
    the whole matrix."""
    rows = np.arange(x.shape[0]) if rows is None else np.asarray(rows)
    m = x.shape[1]
    mean, std, n_called = np.zeros(m), np.zeros(m), np.zeros(m, dtype=np.int64)
    for lo in range(0, m, block):
        sub = x[rows, lo:lo + block].astype(np.float64)  # (R, B)
        called = ~np.isnan(sub)
        cnt = called.sum(axis=0)
        mu = np.divide(np.where(called, sub, 0.0).sum(axis=0), cnt, out=np.zeros(sub.shape[1]), where=cnt > 0)
        var = np.divide(np.where(called, (sub - mu) ** 2, 0.0).sum(axis=0), cnt, out=np.zeros(sub.shape[1]),
                        where=cnt > 0)
        mean[lo:lo + block], std[lo:lo + block], n_called[lo:lo + block] = mu, np.sqrt(var), cnt
    return mean, std, n_called


def standardise(x: np.ndarray, mean, std, *, dtype=np.float32) -> np.ndarray:
    """(x - mean) / std per column, a missing value imputed with the mean (→ 0) and a column
    without variance mapped to 0: (N, M) -> (N, M) of ``dtype``."""
    mean = np.asarray(mean, dtype=np.float64)
    std = np.asarray(std, dtype=np.float64)
    scale = np.divide(1.0, std, out=np.zeros_like(std), where=std > 0)
    out = (np.asarray(x).astype(np.float64) - mean) * scale  # (N, M)
    out[np.isnan(out)] = 0.0
    return out.astype(dtype)


def _matrix_and_meta(genotypes, snp_ids, counted_allele, alleles):
    """Accept a Genotypes object or a bare (N, M) array plus its metadata."""
    if hasattr(genotypes, "values") and hasattr(genotypes, "snp"):
        return (np.asarray(genotypes.values), list(map(str, genotypes.snp)), genotypes.counted_allele,
                list(map(str, genotypes.counted)))
    x = np.asarray(genotypes)
    return x, snp_ids, counted_allele, alleles


@dataclass
class GenotypeStats:
    """Training-split statistics for genotype standardisation."""

    snp_ids: list  # (M,) SNP ids the statistics belong to, in column order
    counted_allele: str  # "a1" or "a2": which .bim allele the values count
    alleles: list | None  # (M,) letter of the counted allele per SNP, or None when unknown
    mean: np.ndarray  # (M,) float64 mean of called values in the training rows (0 if none)
    std: np.ndarray  # (M,) float64 population std of those values (0 = no variance)
    n_called: np.ndarray  # (M,) int64 number of called training values per SNP
    n_rows: int  # number of training rows used

    @classmethod
    def fit(cls, genotypes, rows=None, *, snp_ids=None, counted_allele=None, alleles=None,
            block: int = 4096) -> "GenotypeStats":
        """Fit on ``rows`` (integer indices or a boolean mask of the training individuals; None = all).

        genotypes: a :class:`~medcl.io.plink.Genotypes` or an (N, M) array; with an array,
        give ``snp_ids=`` and ``counted_allele=`` (and ``alleles=`` if known).
        """
        x, snp_ids, counted_allele, alleles = _matrix_and_meta(genotypes, snp_ids, counted_allele, alleles)
        if x.ndim != 2:
            raise PlinkError(f"genotypes must be (individuals, SNPs), got shape {x.shape}")
        if snp_ids is None or counted_allele not in ("a1", "a2"):
            raise PlinkError("GenotypeStats.fit on a bare array needs snp_ids= and counted_allele='a1'|'a2'",
                             fix="pass the Genotypes returned by read_genotypes, or the metadata")
        if len(snp_ids) != x.shape[1]:
            raise PlinkError(f"{len(snp_ids)} snp_ids for {x.shape[1]} columns")
        if rows is None:
            rows = np.arange(x.shape[0])
        rows = np.asarray(rows)
        if rows.dtype == bool:
            if rows.shape != (x.shape[0],):
                raise PlinkError(f"row mask has shape {rows.shape}, expected ({x.shape[0]},)")
            rows = np.flatnonzero(rows)
        if len(rows) == 0:
            raise PlinkError("no training rows to fit genotype statistics on",
                             fix="check the split column: at least one row must be 'train'")
        mean, std, n_called = column_stats(x, rows, block=block)
        return cls(snp_ids=[str(s) for s in snp_ids], counted_allele=counted_allele,
                   alleles=None if alleles is None else [str(a) for a in alleles],
                   mean=mean, std=std, n_called=n_called, n_rows=int(len(rows)))

    def check_compatible(self, genotypes) -> None:
        """Raise if ``genotypes`` (a Genotypes) has other SNPs, order or counted allele."""
        _, snp_ids, counted, alleles = _matrix_and_meta(genotypes, None, None, None)
        where = getattr(genotypes, "source", "") or None
        if counted != self.counted_allele:
            raise PlinkError(f"statistics count allele {self.counted_allele}, the genotypes count {counted}",
                             path=where, fix=f"read with counted_allele={self.counted_allele!r}")
        if list(snp_ids) != self.snp_ids:
            extra = len(set(snp_ids) ^ set(self.snp_ids))
            raise PlinkError(f"statistics were fitted on {len(self.snp_ids)} other SNPs or another order "
                             f"({len(snp_ids)} SNPs given, {extra} ids differ)", path=where,
                             fix="read the same SNP selection as at training time")
        if self.alleles is not None and alleles is not None and list(alleles) != self.alleles:
            bad = [s for s, a, b in zip(self.snp_ids, self.alleles, alleles) if a != b]
            raise PlinkError(f"counted allele letters differ for {len(bad)} SNP(s), e.g. {', '.join(bad[:5])}",
                             path=where, fix="the .bim alleles are flipped relative to training; re-align them")

    def transform(self, genotypes, *, dtype=np.float32) -> np.ndarray:
        """Impute missing calls with the mean and standardise: (N, M) -> (N, M) of ``dtype``.

        A Genotypes is checked against the fitted SNPs and allele; a bare array only by width.
        """
        if hasattr(genotypes, "values") and hasattr(genotypes, "snp"):
            self.check_compatible(genotypes)
            x = np.asarray(genotypes.values)
        else:
            x = np.asarray(genotypes)
        if x.ndim != 2 or x.shape[1] != len(self.snp_ids):
            raise PlinkError(f"genotype matrix has shape {x.shape}, statistics cover {len(self.snp_ids)} SNPs")
        return standardise(x, self.mean, self.std, dtype=dtype)

    def to_dict(self) -> dict:
        """JSON-serialisable form (floats as lists)."""
        return {"format": FORMAT, "version": VERSION, "counted_allele": self.counted_allele,
                "snp_ids": list(self.snp_ids), "alleles": self.alleles,
                "mean": [float(v) for v in self.mean], "std": [float(v) for v in self.std],
                "n_called": [int(v) for v in self.n_called], "n_rows": self.n_rows}

    @classmethod
    def from_dict(cls, d: dict) -> "GenotypeStats":
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise PlinkError("not a medcl genotype-statistics record", fix="save it with GenotypeStats.to_dict()")
        if d.get("version") != VERSION:
            raise PlinkError(f"genotype statistics version {d.get('version')} is not supported "
                             f"(expected {VERSION})")
        keys = ("counted_allele", "snp_ids", "alleles", "mean", "std", "n_called", "n_rows")
        absent = [k for k in keys if k not in d]
        if absent or d["counted_allele"] not in ("a1", "a2"):
            raise PlinkError(f"genotype statistics record is incomplete (missing {', '.join(absent) or 'nothing'}, "
                             f"counted_allele {d.get('counted_allele')!r})", fix="save it with GenotypeStats.to_dict()")
        m = len(d["snp_ids"])
        if any(len(d[k]) != m for k in ("mean", "std", "n_called")) or (d["alleles"] is not None
                                                                       and len(d["alleles"]) != m):
            raise PlinkError("genotype statistics record has columns of different lengths")
        return cls(snp_ids=[str(s) for s in d["snp_ids"]], counted_allele=d["counted_allele"],
                   alleles=d["alleles"], mean=np.asarray(d["mean"], dtype=np.float64),
                   std=np.asarray(d["std"], dtype=np.float64),
                   n_called=np.asarray(d["n_called"], dtype=np.int64), n_rows=int(d["n_rows"]))

    def save(self, path) -> None:
        """Write the statistics as JSON."""
        tmp = os.fspath(path) + ".tmp"
        with open(tmp, "w") as fh:
            json.dump(self.to_dict(), fh)
        os.replace(tmp, path)

    @classmethod
    def load(cls, path) -> "GenotypeStats":
        try:
            with open(path) as fh:
                return cls.from_dict(json.load(fh))
        except (OSError, json.JSONDecodeError) as exc:
            raise PlinkError(f"cannot read genotype statistics ({exc})", path=path,
                             fix="point at the stats JSON saved at training time") from None
