"""Write a PLINK 1 binary fileset (.bed/.bim/.fam) from an array of allele counts.

The genotype matrix holds counts of the **A1** allele (the first allele column of the
.bim, the PLINK standard): 0, 1 or 2, with NaN (or -1) for a missing call.

.bed layout (SNP-major): magic ``0x6c 0x1b``, mode ``0x01``, then for each SNP
``ceil(n / 4)`` bytes, four individuals per byte, the first individual in the low bits.
2-bit codes: ``00`` hom A1, ``01`` missing, ``10`` het, ``11`` hom A2; padding is ``00``.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from medcl.errors import PlinkError
from medcl.io._plink_files import BED_MAGIC, bytes_per_snp

MODE_SNP_MAJOR = b"\x01"

# A1 count -> 2-bit code; index 3 is "missing"
_COUNT_TO_CODE = np.array([0b11, 0b10, 0b00, 0b01], dtype=np.uint8)


def encode_bed(genotypes: np.ndarray) -> bytes:
    """Pack an (n_individuals, n_snps) A1-count matrix into .bed bytes (header included)."""
    g = np.asarray(genotypes, dtype=np.float64)  # (N, M)
    if g.ndim != 2:
        raise PlinkError(f"genotypes must be 2-D (individuals x SNPs), got shape {g.shape}")
    missing = np.isnan(g) | (g == -1)
    ok = missing | (g == 0) | (g == 1) | (g == 2)
    if not ok.all():
        bad = g[~ok][0]
        raise PlinkError(f"genotypes must be A1 counts 0, 1, 2 or NaN/-1 for missing; found {bad!r}")
    idx = np.where(missing, 3, np.nan_to_num(g, nan=0.0)).astype(np.uint8)  # (N, M)
    codes = _COUNT_TO_CODE[idx.T]  # (M, N)
    n_snps, n = codes.shape
    n_bytes = bytes_per_snp(n)
    padded = np.zeros((n_snps, n_bytes * 4), dtype=np.uint8)
    padded[:, :n] = codes
    quads = padded.reshape(n_snps, n_bytes, 4)
    packed = quads[..., 0] | (quads[..., 1] << 2) | (quads[..., 2] << 4) | (quads[..., 3] << 6)
    return BED_MAGIC + MODE_SNP_MAJOR + np.ascontiguousarray(packed, dtype=np.uint8).tobytes()


def _as_str_column(values, n: int, name: str) -> list[str]:
    out = [str(v) for v in np.asarray(values).ravel().tolist()]
    if len(out) != n:
        raise PlinkError(f"{name} has {len(out)} entries, expected {n}")
    for v in out:
        if v == "" or any(ch.isspace() for ch in v):
            raise PlinkError(f"{name} entry {v!r} is empty or contains whitespace; PLINK ids cannot")
    return out


def _as_num_column(values, n: int, name: str, default) -> list[str]:
    if values is None:
        return [str(default)] * n
    arr = np.asarray(values).ravel()
    if arr.shape[0] != n:
        raise PlinkError(f"{name} has {arr.shape[0]} entries, expected {n}")
    out = []
    for v in arr.tolist():
        if isinstance(v, float) and np.isnan(v):
            out.append(str(default))
        elif isinstance(v, float) and v.is_integer():
            out.append(str(int(v)))
        else:
            out.append(str(v))
    return out


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)


def write_plink(prefix, fid, iid, snp_ids, chrom, pos, a1, a2, genotypes, *,
                sex=None, phenotype=None, cm=None) -> None:
    """Write ``prefix.bed``, ``prefix.bim`` and ``prefix.fam``.

    genotypes: (n_individuals, n_snps) A1-allele counts (0, 1, 2); NaN or -1 = missing.
    sex: 1 male, 2 female, 0 unknown (default 0). phenotype: default -9 (missing).
    cm: genetic position in centimorgans (default 0). Output is deterministic.
    """
    g = np.asarray(genotypes)
    if g.ndim != 2:
        raise PlinkError(f"genotypes must be 2-D (individuals x SNPs), got shape {g.shape}")
    n, m = g.shape
    fid_s = _as_str_column(fid, n, "fid")
    iid_s = _as_str_column(iid, n, "iid")
    snp_s = _as_str_column(snp_ids, m, "snp_ids")
    chrom_s = _as_str_column(chrom, m, "chrom")
    a1_s = _as_str_column(a1, m, "a1")
    a2_s = _as_str_column(a2, m, "a2")
    pos_s = _as_num_column(pos, m, "pos", 0)
    cm_s = _as_num_column(cm, m, "cm", 0)
    sex_s = _as_num_column(sex, n, "sex", 0)
    pheno_s = _as_num_column(phenotype, n, "phenotype", -9)
    bed = encode_bed(g)

    prefix = Path(os.fspath(prefix))
    prefix.parent.mkdir(parents=True, exist_ok=True)
    bim = "".join(f"{c}\t{s}\t{d}\t{p}\t{x}\t{y}\n"
                  for c, s, d, p, x, y in zip(chrom_s, snp_s, cm_s, pos_s, a1_s, a2_s))
    fam = "".join(f"{f} {i} 0 0 {s} {ph}\n" for f, i, s, ph in zip(fid_s, iid_s, sex_s, pheno_s))
    _atomic_write(prefix.with_name(prefix.name + ".bim"), bim.encode())
    _atomic_write(prefix.with_name(prefix.name + ".fam"), fam.encode())
    _atomic_write(prefix.with_name(prefix.name + ".bed"), bed)
