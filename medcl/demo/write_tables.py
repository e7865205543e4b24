"""The demo cohort's CSV tables: manifest, labels, PRS and burden (FID,IID first).

Written with the csv module and fixed number formats so the bytes depend on
the values only. Rows are sorted by IID (then visit for the manifest).
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from medcl.demo.images import ImageJob
from medcl.demo.plan import CohortPlan

MANIFEST_COLUMNS = ["FID", "IID", "path", "view", "split", "visit", "bone_path"]


def _write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    with open(path, "w", newline="", encoding="ascii") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(header)
        w.writerows(rows)


def _num(x: float, digits: int = 6) -> str:
    """Fixed-point text; empty for NaN (a missing value)."""
    return "" if np.isnan(x) else f"{x:.{digits}f}"


def write_manifest(path: Path, plan: CohortPlan, jobs: list[ImageJob]) -> None:
    """One row per standard image; bone_path is its co-registered bone image."""
    rows = ([plan.fid[j.index], j.iid, j.path, "PA", plan.split[j.index], j.visit, j.bone_path]
            for j in jobs)
    _write_csv(path, MANIFEST_COLUMNS, rows)


def write_labels(path: Path, plan: CohortPlan) -> None:
    """Every individual (imaged or not): split, cardiomegaly (0/1), ctr, bone_density."""
    rows = ([plan.fid[i], plan.iid[i], plan.split[i], int(plan.cardiomegaly[i]),
             _num(plan.ctr[i], 4), _num(plan.bone_density[i], 4)] for i in range(plan.iid.size))
    _write_csv(path, ["FID", "IID", "split", "cardiomegaly", "ctr", "bone_density"], rows)


def write_prs(path: Path, plan: CohortPlan) -> None:
    """Genotyped individuals only; an empty prs value marks a missing score."""
    idx = np.flatnonzero(plan.genotyped)
    _write_csv(path, ["FID", "IID", "prs"], ([plan.fid[i], plan.iid[i], _num(plan.prs[i])] for i in idx))


def write_burden(path: Path, plan: CohortPlan, genes: Sequence[str]) -> None:
    """Genotyped individuals only: rare-allele count per gene."""
    idx = np.flatnonzero(plan.genotyped)
    b = plan.traits.burden
    _write_csv(path, ["FID", "IID", *genes],
               ([plan.fid[i], plan.iid[i], *(int(v) for v in b[i])] for i in idx))
