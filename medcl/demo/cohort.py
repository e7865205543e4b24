"""generate_cohort: write the built-in synthetic demo cohort to a folder.

OUT/
  README.md  manifest.csv  labels.csv  prs.csv  burden.csv
  genotypes/demo.bed .bim .fam
  images/000/ID0001_v1.dcm  ID0001_v1_bone.dcm  ...

Everything is written into a hidden sibling folder and renamed to OUT at the
end, so an interrupted run leaves nothing at OUT.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from medcl.demo.dicom_write import RESCALES
from medcl.demo.images import plan_jobs, run_jobs
from medcl.demo.plan import CohortPlan, DemoConfig, make_plan
from medcl.demo.readme import render_readme
from medcl.demo.write_tables import write_burden, write_labels, write_manifest, write_prs
from medcl.files import honour_umask
from medcl.errors import ConfigError, MedclError

Progress = Callable[[int, int, str], None]  # (done, total, stage)

LIMITS = {"n": (20, 200_000), "snps": (100, 200_000), "size": (64, 4096)}
MAX_CALLS = 500_000_000  # n * snps: the genotype matrix is held in memory
PLINK_PREFIX = "genotypes/demo"


@dataclass
class CohortSummary:
    out: Path  # the cohort folder
    n_individuals: int  # everyone in labels.csv
    n_imaged: int  # individuals with at least one radiograph
    n_images: int  # standard radiographs = manifest rows (each also has a bone image)
    n_followups: int  # second-visit radiographs
    n_rle_files: int  # DICOM files (standard + bone) stored RLE Lossless
    n_monochrome1_files: int  # DICOM files stored MONOCHROME1
    n_genotyped: int  # individuals in the .fam
    n_imaged_without_genotype: int
    n_genotyped_without_image: int
    n_snps: int
    seed: int
    size: int
    paths: dict[str, Path] = field(default_factory=dict)  # manifest, labels, prs, burden, plink_prefix, images, readme
    elapsed_s: float = 0.0  # wall-clock seconds of the whole run


def _check_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise MedclError("exists and is not a folder", path=out, fix="choose a new output folder")
    if out.is_dir() and any(out.iterdir()):
        raise MedclError("is not empty", path=out, fix="choose a new or empty output folder")


def _check_args(n: int, snps: int, size: int, seed: int) -> None:
    for name, value in (("n", n), ("snps", snps), ("size", size)):
        lo, hi = LIMITS[name]
        if not isinstance(value, (int, np.integer)) or not lo <= value <= hi:
            raise ConfigError(f"demo {name}={value!r} is out of range", fix=f"use {lo} <= {name} <= {hi}")
    if n * snps > MAX_CALLS:
        raise ConfigError(f"demo n x snps = {n * snps} genotype calls is too many for memory",
                          fix=f"keep n * snps <= {MAX_CALLS}")
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"demo seed={seed!r} must be a non-negative integer")


def _write_plink(root: Path, plan: CohortPlan) -> None:
    from medcl.io.plink import write_plink  # pandas: imported only here

    idx = np.flatnonzero(plan.genotyped)
    g = plan.geno
    write_plink(root / PLINK_PREFIX, plan.fid[idx], plan.iid[idx], g.snp_ids, g.chrom, g.pos,
                g.a1, g.a2, plan.observed[idx])


def generate_cohort(out, n: int = 1000, snps: int = 2000, size: int = 256, seed: int = 0,
                    progress: Optional[Progress] = None, *, workers: Optional[int] = None) -> CohortSummary:
    """Write a synthetic imaging-genetics cohort to `out` (must not exist or be empty).

    n individuals, snps common SNPs, size x size radiographs; seed fixes every
    byte. progress(done, total, stage) is called as stages advance. workers:
    processes for the images (None: 1 for small runs, else up to 4); the
    output does not depend on it.
    """
    t0 = time.perf_counter()
    out = Path(os.fspath(out))
    _check_args(n, snps, size, seed)
    _check_out(out)
    report = progress or (lambda done, total, stage: None)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    honour_umask(tmp, 0o777)  # mkdtemp made it private; OUT gets the usual mode
    try:
        cfg = DemoConfig()
        report(0, 1, "genetics")
        plan = make_plan(n, snps, seed, cfg)
        _write_plink(tmp, plan)
        report(1, 1, "genetics")

        jobs = plan_jobs(plan, seed, cfg)
        run_jobs(tmp, size, seed, jobs, workers, lambda d, t: report(d, t, "images"))

        report(0, 1, "tables")
        write_manifest(tmp / "manifest.csv", plan, jobs)
        write_labels(tmp / "labels.csv", plan)
        write_prs(tmp / "prs.csv", plan)
        write_burden(tmp / "burden.csv", plan, cfg.genetics.genes)
        counts = {
            "imaged": int(plan.imaged.sum()), "images": len(jobs),
            "followups": sum(j.visit == 2 for j in jobs),
            "rle_files": sum(j.standard.rle + j.bone_file.rle for j in jobs),
            "monochrome1_files": sum(j.standard.monochrome1 + j.bone_file.monochrome1 for j in jobs),
            "genotyped": int(plan.genotyped.sum()),
            "imaged_without_genotype": int((plan.imaged & ~plan.genotyped).sum()),
            "genotyped_without_image": int((plan.genotyped & ~plan.imaged).sum()),
            "prs_missing": int((plan.genotyped & np.isnan(plan.prs)).sum()),
        }
        ok = ~np.isnan(plan.prs)
        prs_r = float(np.corrcoef(plan.prs[ok], plan.traits.trait1[ok])[0, 1])
        text = render_readme(n=n, snps=snps, size=size, seed=seed, cfg=cfg, counts=counts, prs_r=prs_r,
                             prevalence=float(plan.cardiomegaly.mean()), rescales=RESCALES)
        (tmp / "README.md").write_text(text, encoding="utf-8")
        report(1, 1, "tables")

        if out.is_dir():
            _check_out(out)  # still empty?
            out.rmdir()
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    paths = {"manifest": out / "manifest.csv", "labels": out / "labels.csv", "prs": out / "prs.csv",
             "burden": out / "burden.csv", "plink_prefix": out / PLINK_PREFIX, "images": out / "images",
             "readme": out / "README.md"}
    return CohortSummary(
        out=out, n_individuals=n, n_imaged=counts["imaged"], n_images=counts["images"],
        n_followups=counts["followups"], n_rle_files=counts["rle_files"],
        n_monochrome1_files=counts["monochrome1_files"], n_genotyped=counts["genotyped"],
        n_imaged_without_genotype=counts["imaged_without_genotype"],
        n_genotyped_without_image=counts["genotyped_without_image"], n_snps=snps, seed=seed, size=size,
        paths=paths, elapsed_s=time.perf_counter() - t0)
