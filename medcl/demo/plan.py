"""Who is in the demo cohort, what they carry, and which files they get.

Everything here is drawn from independent random streams keyed by
(seed, stage, ...), so a stage's draws do not depend on how other stages or
the image workers consume randomness.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from medcl.demo.genetics import (
    GeneticsConfig, Genotypes, Traits, add_missing, noisy_prs, simulate_burden, simulate_genotypes,
    simulate_traits,
)

# Random-stream stage keys (never renumber: they define the output for a seed).
GENOTYPES, MISSING, BURDEN, TRAITS, MEMBERS, PRS, ANATOMY, IMAGE, FILES = range(1, 10)


def stream(seed: int, *key: int) -> np.random.Generator:
    """Independent generator for one (seed, stage, ...) key."""
    return np.random.default_rng([seed, *key])


@dataclass(frozen=True)
class DemoConfig:
    genetics: GeneticsConfig = field(default_factory=GeneticsConfig)
    frac_no_image: float = 0.02  # of all individuals: genotyped but never imaged
    frac_no_genotype: float = 0.10  # of imaged individuals: no genotypes (absent from .fam)
    frac_followup: float = 0.30  # of imaged individuals: a second visit
    frac_rle: float = 0.25  # of DICOM files: RLE Lossless (rest Explicit VR Little Endian)
    frac_monochrome1: float = 0.40  # of DICOM files: stored inverted as MONOCHROME1
    frac_prs_missing: float = 0.10  # of genotyped individuals: empty PRS value
    prs_noise_sd: float = 0.6  # PRS = genetic value of trait 1 + N(0, sd^2), then standardised
    split: tuple[float, float, float] = (0.70, 0.15, 0.15)  # train / val / test, by individual
    ctr_mean: float = 0.45  # ctr = ctr_mean + ctr_sd * trait1, clipped to ctr_range
    ctr_sd: float = 0.05
    ctr_range: tuple[float, float] = (0.30, 0.65)
    cardiomegaly_ctr: float = 0.49  # cardiomegaly = ctr > this (about 20% prevalence)
    bone_sd: float = 0.20  # bone_density = 1 + bone_sd * trait2, clipped to bone_range
    bone_range: tuple[float, float] = (0.5, 1.6)
    folder_size: int = 100  # individuals per images/NNN/ folder


@dataclass
class CohortPlan:
    fid: np.ndarray  # (N,) str
    iid: np.ndarray  # (N,) str
    split: np.ndarray  # (N,) str train/val/test
    imaged: np.ndarray  # (N,) bool
    genotyped: np.ndarray  # (N,) bool
    visits: np.ndarray  # (N,) int 0 (not imaged), 1 or 2
    geno: Genotypes  # all N individuals, missing-free; rows of genotyped ones go to the .bed
    observed: np.ndarray  # (N, M) int8 dosage with missing calls (-1)
    traits: Traits
    prs: np.ndarray  # (N,) float, NaN = missing value
    ctr: np.ndarray  # (N,) cardiothoracic ratio
    bone_density: np.ndarray  # (N,) relative bone density
    cardiomegaly: np.ndarray  # (N,) bool


def _choose(rng: np.random.Generator, pool: np.ndarray, k: int) -> np.ndarray:
    """k distinct members of pool (indices), chosen at random."""
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    return rng.choice(pool, size=min(k, pool.size), replace=False)


def make_plan(n: int, snps: int, seed: int, cfg: DemoConfig) -> CohortPlan:
    width = max(4, len(str(n)))
    fid = np.array([f"FAM{i + 1:0{width}d}" for i in range(n)])
    iid = np.array([f"ID{i + 1:0{width}d}" for i in range(n)])

    rng = stream(seed, MEMBERS)
    everyone = np.arange(n)
    no_image = np.zeros(n, dtype=bool)
    no_image[_choose(rng, everyone, round(cfg.frac_no_image * n))] = True
    imaged_idx = np.flatnonzero(~no_image)
    no_geno = np.zeros(n, dtype=bool)
    no_geno[_choose(rng, imaged_idx, round(cfg.frac_no_genotype * imaged_idx.size))] = True
    visits = (~no_image).astype(np.int64)
    visits[_choose(rng, imaged_idx, round(cfg.frac_followup * imaged_idx.size))] = 2
    order = rng.permutation(n)
    n_train = round(cfg.split[0] * n)
    n_val = round(cfg.split[1] * n)
    split = np.empty(n, dtype=object)
    split[order[:n_train]] = "train"
    split[order[n_train:n_train + n_val]] = "val"
    split[order[n_train + n_val:]] = "test"

    g = cfg.genetics
    geno = simulate_genotypes(stream(seed, GENOTYPES), n, snps, g)
    observed = add_missing(stream(seed, MISSING), geno.dosage, g.missing_rate)
    burden = simulate_burden(stream(seed, BURDEN), n, g)
    traits = simulate_traits(stream(seed, TRAITS), geno, burden, g)

    rng = stream(seed, PRS)
    prs = noisy_prs(rng, traits.genetic1, cfg.prs_noise_sd)
    genotyped = ~no_geno
    geno_idx = np.flatnonzero(genotyped)
    prs[_choose(rng, geno_idx, round(cfg.frac_prs_missing * geno_idx.size))] = np.nan
    prs[~genotyped] = np.nan

    # rounded as written to labels.csv, so cardiomegaly = (ctr > threshold) holds in the file too
    ctr = np.round(np.clip(cfg.ctr_mean + cfg.ctr_sd * traits.trait1, *cfg.ctr_range), 4)
    bone = np.round(np.clip(1.0 + cfg.bone_sd * traits.trait2, *cfg.bone_range), 4)
    return CohortPlan(fid=fid, iid=iid, split=split.astype(str), imaged=~no_image, genotyped=genotyped,
                      visits=visits, geno=geno, observed=observed, traits=traits, prs=prs, ctr=ctr,
                      bone_density=bone, cardiomegaly=ctr > cfg.cardiomegaly_ctr)
