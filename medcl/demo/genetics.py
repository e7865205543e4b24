"""Synthetic genotypes, rare-variant burden and the two planted traits.

Common SNPs (the .bed): haplotypes from a latent Gaussian AR(1) process per LD
block (the copula), thresholded at the minor-allele frequency, so that
neighbouring SNPs in a block are correlated and blocks are independent.
Rare variants (MAF < 1%) are drawn per gene and only summarised as burden
counts (burden.csv); they are not written to the .bed, as if they came from
a separate exome sequencing. Every individual gets genotypes and traits;
the cohort decides who is genotyped and who is imaged.
"""
from __future__ import annotations

from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

_BASES = np.array(list("ACGT"))
_CHUNK_ELEMENTS = 1 << 23  # latent normals drawn at once (64 MiB of float64)


@dataclass(frozen=True)
class GeneticsConfig:
    n_chrom: int = 3  # chromosomes 1..n_chrom
    block_min: int = 5  # smallest LD block, SNPs
    block_max: int = 40  # largest LD block, SNPs
    rho_min: float = 0.60  # AR(1) latent correlation of neighbours in a block, lower bound
    rho_max: float = 0.95  # ... upper bound
    maf_min: float = 0.05  # common-SNP minor-allele frequency, uniform between these
    maf_max: float = 0.50
    missing_rate: float = 0.01  # fraction of calls set missing, completely at random
    n_causal: int = 50  # causal SNPs of trait 1
    h2_trait1: float = 0.5  # heritability of trait 1 (all from the causal SNPs)
    n_poly2: int = 30  # common causal SNPs of trait 2 (disjoint from trait 1's)
    var_burden2: float = 0.3  # share of trait-2 variance from the driver gene's burden
    var_poly2: float = 0.2  # share of trait-2 variance from its common SNPs
    genes: tuple[str, ...] = ("GENE01", "GENE02", "GENE03", "GENE04", "GENE05")
    driver_gene: str = "GENE03"  # the gene whose rare-variant burden lowers trait 2
    rare_per_gene: tuple[int, int] = (8, 24)  # rare variants per gene, inclusive range
    rare_maf: tuple[float, float] = (0.001, 0.01)  # rare-variant MAF, uniform


@dataclass
class Genotypes:
    dosage: np.ndarray  # (N, M) int8 A1 counts 0/1/2, -1 missing
    chrom: np.ndarray  # (M,) int
    pos: np.ndarray  # (M,) int, increasing within a chromosome
    snp_ids: np.ndarray  # (M,) str, rsIDs
    a1: np.ndarray  # (M,) str, counted (minor) allele
    a2: np.ndarray  # (M,) str
    maf: np.ndarray  # (M,) float, the A1 frequency the SNP was drawn with


@dataclass
class Traits:
    trait1: np.ndarray  # (N,) standardised, sets the heart width
    trait2: np.ndarray  # (N,) standardised, sets the bone density
    genetic1: np.ndarray  # (N,) standardised genetic value of trait 1
    burden: np.ndarray  # (N, G) rare-allele counts per gene
    causal1: np.ndarray  # (C,) SNP indices of trait 1
    causal2: np.ndarray  # (C2,) SNP indices of trait 2


def _standardise(x: np.ndarray) -> np.ndarray:
    sd = x.std()
    return (x - x.mean()) / (sd if sd > 0 else 1.0)


def _blocks(rng: np.random.Generator, m: int, cfg: GeneticsConfig) -> np.ndarray:
    """(M,) bool, True where a new LD block starts."""
    start = np.zeros(m, dtype=bool)
    j = 0
    while j < m:
        start[j] = True
        j += int(rng.integers(cfg.block_min, cfg.block_max + 1))
    return start


def simulate_genotypes(rng: np.random.Generator, n: int, m: int, cfg: GeneticsConfig) -> Genotypes:
    """True (missing-free) genotypes of n individuals at m common SNPs, plus the .bim fields."""
    chrom = np.sort(np.arange(m) % cfg.n_chrom) + 1  # (M,) near-equal chromosomes
    new_chrom = np.r_[True, chrom[1:] != chrom[:-1]]
    block = _blocks(rng, m, cfg) | new_chrom  # (M,)
    rho = rng.uniform(cfg.rho_min, cfg.rho_max, size=m)  # (M,)
    rho[block] = 0.0
    maf = rng.uniform(cfg.maf_min, cfg.maf_max, size=m)  # (M,)
    thresh = np.array([NormalDist().inv_cdf(p) for p in maf])  # (M,) P(z < t) = maf

    scale = np.sqrt(1.0 - rho**2)
    dosage = np.empty((n, m), dtype=np.int8)
    step = max(1, _CHUNK_ELEMENTS // m)  # individuals per chunk: bounded memory, same draws for same (n, m)
    for i0 in range(0, n, step):
        k = min(step, n - i0)
        noise = rng.standard_normal((m, 2 * k))  # (M, 2K) innovations, SNP-major
        z = noise[0]
        hap = np.empty((m, 2 * k), dtype=bool)
        hap[0] = z < thresh[0]
        for j in range(1, m):  # AR(1) along the chromosome; rho=0 restarts a block
            z = rho[j] * z + scale[j] * noise[j]
            hap[j] = z < thresh[j]  # carries the minor allele
        dosage[i0:i0 + k] = (hap[:, :k].astype(np.int8) + hap[:, k:]).T  # (K, M)

    # Positions: ~2 kb apart inside a block, ~60 kb between blocks, from 1 Mb.
    gap = np.where(block, rng.integers(30_000, 90_000, m), rng.integers(500, 4_000, m))
    pos = np.empty(m, dtype=np.int64)
    for c in np.unique(chrom):
        sel = chrom == c
        pos[sel] = 1_000_000 + np.cumsum(gap[sel])
    ids = 100_000 + rng.choice(99_900_000, size=m, replace=False)  # unique, unordered like real rsIDs
    snp_ids = np.array([f"rs{i}" for i in ids])
    a1_i = rng.integers(0, 4, size=m)
    a2_i = (a1_i + rng.integers(1, 4, size=m)) % 4  # a different base
    return Genotypes(dosage=dosage, chrom=chrom, pos=pos, snp_ids=snp_ids,
                     a1=_BASES[a1_i], a2=_BASES[a2_i], maf=maf)


def add_missing(rng: np.random.Generator, dosage: np.ndarray, rate: float) -> np.ndarray:
    """Copy of dosage with a fraction `rate` of calls set to -1 (missing)."""
    out = dosage.copy()
    out[rng.random(out.shape) < rate] = -1
    return out


def simulate_burden(rng: np.random.Generator, n: int, cfg: GeneticsConfig) -> np.ndarray:
    """(N, G) int rare-allele counts per gene (sum over the gene's rare variants)."""
    out = np.zeros((n, len(cfg.genes)), dtype=np.int64)
    lo, hi = cfg.rare_per_gene
    for g in range(len(cfg.genes)):
        k = int(rng.integers(lo, hi + 1))
        maf = rng.uniform(*cfg.rare_maf, size=k)  # (K,)
        out[:, g] = rng.binomial(2, maf, size=(n, k)).sum(axis=1)
    return out


def simulate_traits(rng: np.random.Generator, geno: Genotypes, burden: np.ndarray,
                    cfg: GeneticsConfig) -> Traits:
    """Trait 1 (h2 from common SNPs) and trait 2 (rare burden + common SNPs); see README."""
    n, m = geno.dosage.shape
    k1 = min(cfg.n_causal, m // 2)
    k2 = min(cfg.n_poly2, m - k1)
    pick = rng.permutation(m)
    causal1, causal2 = np.sort(pick[:k1]), np.sort(pick[k1:k1 + k2])

    def genetic_value(idx: np.ndarray) -> np.ndarray:
        x = geno.dosage[:, idx].astype(np.float64)  # (N, C)
        p = geno.maf[idx]
        x = (x - 2 * p) / np.sqrt(2 * p * (1 - p))  # standardised by the drawn frequency
        return _standardise(x @ rng.standard_normal(idx.size))  # (N,)

    g1 = genetic_value(causal1)
    t1 = _standardise(np.sqrt(cfg.h2_trait1) * g1 + np.sqrt(1 - cfg.h2_trait1) * rng.standard_normal(n))

    b = burden[:, cfg.genes.index(cfg.driver_gene)].astype(np.float64)
    g2 = genetic_value(causal2)
    e2 = np.sqrt(max(0.0, 1 - cfg.var_burden2 - cfg.var_poly2))
    t2 = _standardise(-np.sqrt(cfg.var_burden2) * _standardise(b) + np.sqrt(cfg.var_poly2) * g2
                      + e2 * rng.standard_normal(n))
    return Traits(trait1=t1, trait2=t2, genetic1=g1, burden=burden, causal1=causal1, causal2=causal2)


def noisy_prs(rng: np.random.Generator, genetic1: np.ndarray, noise_sd: float) -> np.ndarray:
    """(N,) standardised PRS = genetic value of trait 1 + N(0, noise_sd^2) estimation error."""
    return _standardise(genetic1 + noise_sd * rng.standard_normal(genetic1.size))
