"""Checks and text parsing for PLINK 1 filesets, run before any genotype is decoded (and one,
:func:`check_trailing_hom_a1`, on the decoded matrix).

Everything here raises :class:`~medcl.errors.PlinkError` naming the file and the fix.

A .fam one line short (or long) cannot always be seen from the .bed size: each SNP takes
``ceil(n / 4)`` bytes, so ``n`` and ``n - 1`` give the same size unless ``n - 1`` is a
multiple of 4. :func:`check_padding` catches most of the remaining cases: PLINK writers
fill the unused 2-bit slots at the end of each SNP's last byte with ``00``, so a non-zero
slot means a real individual the .fam does not list. The opposite, a .fam with extra line(s)
that still fit the last byte (37 -> 38 individuals), makes the extra individual read the zero
padding as homozygous A1 (code ``00``) at every SNP; :func:`check_trailing_hom_a1` catches it
when that is implausible for a real person.
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pandas as pd

from medcl.errors import PlinkError

BED_MAGIC = b"\x6c\x1b"
FAM_COLUMNS = ["fid", "iid", "father", "mother", "sex", "phenotype"]
BIM_COLUMNS = ["chrom", "snp", "cm", "pos", "a1", "a2"]
_REGENERATE = "regenerate the fileset, or use the .bed/.bim/.fam written together (plink --make-bed)"


def fileset_paths(prefix) -> tuple[Path, Path, Path]:
    """``prefix`` (with or without a .bed/.bim/.fam suffix) -> existing (bed, bim, fam) paths."""
    p = Path(os.fspath(prefix))
    if p.suffix.lower() in (".bed", ".bim", ".fam"):
        p = p.with_suffix("")
    paths = tuple(p.with_name(p.name + ext) for ext in (".bed", ".bim", ".fam"))
    for path in paths:
        if not path.is_file():
            raise PlinkError(
                f"{path.suffix} file not found", path=path,
                fix=f"a PLINK 1 fileset needs {p.name}.bed, {p.name}.bim and {p.name}.fam in one folder; "
                    "pass the common prefix")
    return paths  # type: ignore[return-value]


def _read_whitespace_table(path: Path, columns: list[str], what: str) -> pd.DataFrame:
    try:
        df = pd.read_csv(path, sep=r"\s+", header=None, dtype=str, keep_default_na=False,
                         na_filter=False, engine="c", comment=None)
    except pd.errors.EmptyDataError:
        raise PlinkError(f"{what} file is empty", path=path, fix=_REGENERATE) from None
    except pd.errors.ParserError as exc:
        raise PlinkError(f"{what} file is malformed ({exc})", path=path,
                         fix=f"each line needs exactly {len(columns)} whitespace-separated fields") from None
    short = (df == "").to_numpy().any(axis=1)
    if df.shape[1] != len(columns) or short.any():
        where = f" (record {1 + int(np.argmax(short))} has too few)" if short.any() else ""
        raise PlinkError(
            f"{what} file should have {len(columns)} fields per line ({' '.join(columns)}); "
            f"found {df.shape[1]}{where}", path=path,
            fix=f"each line needs exactly {len(columns)} whitespace-separated fields")
    df.columns = columns
    return df


def read_fam(path: Path) -> pd.DataFrame:
    """Parse a .fam: all six columns as strings (IDs keep leading zeros)."""
    fam = _read_whitespace_table(path, FAM_COLUMNS, ".fam")
    keys = fam["fid"] + "\x00" + fam["iid"]
    dup = keys.duplicated(keep=False)
    if dup.any():
        pairs = fam.loc[dup, ["fid", "iid"]].drop_duplicates().head(5)
        shown = ", ".join(f"{f}/{i}" for f, i in pairs.itertuples(index=False))
        raise PlinkError(
            f".fam lists {int(keys[dup].nunique())} FID/IID pair(s) more than once (e.g. {shown})",
            path=path, fix="individuals are keyed by FID/IID; make each pair unique (plink --update-ids)")
    return fam


def read_bim(path: Path) -> pd.DataFrame:
    """Parse a .bim: chrom, snp, a1, a2 as strings; cm float; pos int64."""
    bim = _read_whitespace_table(path, BIM_COLUMNS, ".bim")
    for col, kind in (("cm", float), ("pos", np.int64)):
        try:
            bim[col] = bim[col].astype(kind)
        except ValueError:
            raise PlinkError(f".bim column {col} is not numeric", path=path,
                             fix="columns are chrom, id, cm, position, A1, A2") from None
    return bim


def bytes_per_snp(n_individuals: int) -> int:
    return (n_individuals + 3) // 4


def check_bed(bed: Path, fam: Path, bim: Path, n: int, m: int) -> None:
    """Magic bytes, SNP-major mode and exact size ``3 + m * ceil(n / 4)``."""
    size = bed.stat().st_size
    with open(bed, "rb") as fh:
        head = fh.read(3)
    if len(head) < 3 or head[:2] != BED_MAGIC:
        raise PlinkError(
            f"not a PLINK 1 .bed (first bytes {head[:2].hex() or 'missing'}, expected 6c1b)", path=bed,
            fix="convert it with plink --make-bed; PLINK 2 .pgen and very old .bed files are not read")
    if head[2] != 0x01:
        what = "individual-major (mode 0x00)" if head[2] == 0 else f"mode byte 0x{head[2]:02x}"
        raise PlinkError(f".bed is {what}; only SNP-major (0x01) is supported", path=bed,
                         fix="rewrite it SNP-major with plink --make-bed")
    bps = bytes_per_snp(n)
    expected = 3 + m * bps
    if size == expected:
        return
    body = size - 3
    detail = [f".bed has {size} bytes but {bim.name} ({m} SNPs) and {fam.name} ({n} individuals) "
              f"need exactly 3 + {m} x {bps} = {expected}"]
    if body % bps == 0:
        detail.append(f"its size fits {body // bps} SNPs with {n} individuals: is the .bim right?")
    if m > 0 and body % m == 0 and body // m > 0:
        b = body // m
        detail.append(f"its size fits {4 * b - 3}-{4 * b} individuals with {m} SNPs: is the .fam right?")
    if body < m * bps:
        detail.append("the .bed may be truncated (interrupted copy?)")
    raise PlinkError("; ".join(detail), path=bed, fix=_REGENERATE)


def check_padding(bed: Path, fam: Path, n: int, snp_index: np.ndarray) -> None:
    """Raise if the unused 2-bit slots after individual ``n`` hold data in any SNP of ``snp_index``.

    Only the last byte of each listed SNP is read (those SNPs are about to be decoded anyway).
    """
    rem = n % 4
    if rem == 0 or len(snp_index) == 0:
        return
    bps = bytes_per_snp(n)
    mm = np.memmap(bed, dtype=np.uint8, mode="r", offset=3)
    last = mm[np.asarray(snp_index, dtype=np.int64) * bps + (bps - 1)]
    mask = np.uint8((0xFF << (2 * rem)) & 0xFF)
    bad = np.count_nonzero(last & mask)
    del mm
    if bad:
        raise PlinkError(
            f".bed holds genotype codes after the last of the {n} individuals in {fam.name} "
            f"(in the padding bits of {bad} of {len(snp_index)} SNPs read): the .fam is probably "
            f"missing individuals (one line short?)", path=bed,
            fix=f"use the .fam written with this .bed; {_REGENERATE}")


HOM_A1_EVIDENCE = 30.0  # flag at odds of 1 in 10**30 that a real person is homozygous A1 at every SNP read
_BLOCK_VALUES = 2**24   # values per block when summing the others' alleles (64 MiB of float32)


def check_trailing_hom_a1(values: np.ndarray, counted_allele: str, bed: Path, fam: Path) -> None:
    """Raise if the last .fam individual(s) look like padding: homozygous A1 at every SNP read.

    values: (N, M) decoded counts of ``counted_allele`` (NaN missing), any SNP selection.
    The rule: the last individual has a non-missing homozygous-A1 call at every one of the M SNPs,
    and the other individuals make that implausible for a real person. Each SNP j contributes
    ``-2 log10 p_j``, where p_j is the A1 frequency among the other individuals' calls counting
    one extra A1 allele, (a_j + 1) / (2 c_j + 1) for a_j A1 alleles in c_j called individuals:
    a SNP where nobody else carries another allele adds nothing, and a few people count little.
    The sum is -log10 of the probability that a real person (Hardy-Weinberg, independent SNPs)
    is homozygous A1 at all of them; the fileset is refused when it reaches HOM_A1_EVIDENCE (30).
    So a handful of SNPs, or SNPs where A1 is nearly fixed, never trigger it (e.g. 37 random
    individuals need some 50 SNPs of common variants). Cost: one row compare; the column sums
    run only when the last individual is homozygous A1 everywhere, in blocks, stopping early.
    """
    n, m = values.shape
    hom = np.float32(2.0 if counted_allele == "a1" else 0.0)
    if n < 2 or m == 0 or not np.all(values[n - 1] == hom):  # NaN (missing) compares unequal
        return
    last_byte = 4 * (bytes_per_snp(n) - 1)                  # the padding can only hide in the last byte
    k = 1
    while n - k - 1 >= max(last_byte, 1) and np.all(values[n - k - 1] == hom):
        k += 1
    others = values[:n - k]                                 # (N - k, M)
    evidence, step = 0.0, max(1, _BLOCK_VALUES // max(n - k, 1))
    for lo in range(0, m, step):
        block = others[:, lo:lo + step]                     # (N - k, B)
        called = np.count_nonzero(block == block, axis=0)   # (B,) non-missing calls
        a1 = np.nansum(block, axis=0, dtype=np.float64)     # (B,) counted alleles
        if counted_allele == "a2":
            a1 = 2.0 * called - a1
        evidence -= 2.0 * float(np.sum(np.log10((a1 + 1.0) / (2.0 * called + 1.0))))
        if evidence >= HOM_A1_EVIDENCE:
            break
    if evidence < HOM_A1_EVIDENCE:
        return
    who = "individual" if k == 1 else f"{k} individuals"
    raise PlinkError(
        f"the last {who} in {fam.name} read(s) as homozygous A1 at every one of the {m} SNPs read, as the zero "
        f"padding bits after the last individual of each SNP in {bed.name} do (for a real person, probability "
        f"under 1e-{math.floor(min(evidence, 999))} given the other individuals' calls): "
        f"{fam.name} probably has {k} line(s) more than {bed.name} holds", path=fam,
        fix=f"remove the extra line(s) from {fam.name} (added or duplicated individuals?), or use the .fam "
            f"written with this .bed; {_REGENERATE}")


def _decode_table(counted_allele: str) -> np.ndarray:
    """(256, 4) float32: a .bed byte -> the four calls it holds (low bits first), as counts."""
    per_code = {"a1": [2.0, np.nan, 1.0, 0.0], "a2": [0.0, np.nan, 1.0, 2.0]}[counted_allele]
    codes = (np.arange(256)[:, None] >> (2 * np.arange(4))[None, :]) & 0b11  # (256, 4)
    return np.asarray(per_code, dtype=np.float32)[codes]


def decode_bed(bed: Path, n: int, m: int, idx: np.ndarray, counted_allele: str,
               chunk_size: int) -> np.ndarray:
    """Decode the SNPs ``idx`` of a validated SNP-major .bed into an (n, len(idx)) float32 matrix.

    Only the bytes of the selected SNPs are read (numpy memmap), ``chunk_size`` SNPs at a time,
    so peak memory is the result plus one (chunk_size, n) block.
    """
    bps = bytes_per_snp(n)
    table = _decode_table(counted_allele)
    rows = np.memmap(bed, dtype=np.uint8, mode="r", offset=3, shape=(m, bps))
    out = np.empty((n, len(idx)), dtype=np.float32)  # (N, M_selected)
    for lo in range(0, len(idx), chunk_size):
        sel = idx[lo:lo + chunk_size]
        raw = np.asarray(rows[sel])  # (B, bps) uint8, read from disk
        calls = table[raw].reshape(len(sel), bps * 4)[:, :n]  # (B, N)
        out[:, lo:lo + len(sel)] = calls.T
    del rows
    return out
