"""PLINK 1 binary filesets (.bed/.bim/.fam): reading, writing, genotype statistics.

Counted allele
--------------
Matrices count the allele named by ``counted_allele``: ``"a1"`` (default, the PLINK
standard) is the **first** allele column of the .bim (column 5), ``"a2"`` the second.
pandas-plink calls the .bim's allele columns ``a0`` and ``a1`` and, by default, counts its
``a1`` -- the .bim's *second* allele, PLINK's A2. The ``engine="pandas-plink"`` path reads
that default orientation and converts with ``2 - x`` when A1 is wanted; the default
``engine="memmap"`` path decodes the 2-bit codes itself with a table per orientation
(``00`` hom A1, ``01`` missing, ``10`` het, ``11`` hom A2). Tests check both engines and
both orientations against bed-reader (whose ``count_A1=True`` counts the .bim's first allele).

Validation (before any genotype is decoded; see :mod:`medcl.io._plink_files`)
----------------------------------------------------------------------------
Missing .bed/.bim/.fam, malformed lines, duplicate FID/IID pairs (individuals are keyed by
the pair; one IID in two families is allowed), wrong magic, individual-major mode, a .bed
whose size is not exactly ``3 + n_snps * ceil(n / 4)``, and genotype codes in the padding
bits after the last .fam individual (a .fam one line short that the size cannot show). After
decoding, a last individual homozygous A1 at every SNP read, where the others make that
implausible, is refused as padding read through an extra .fam line (see
:func:`medcl.io._plink_files.check_trailing_hom_a1`; the same rule whatever the engine, chunk size
or selection, judged on the SNPs read).
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence, Union

import numpy as np
import pandas as pd

from medcl.errors import PlinkError
from medcl.io._bed_write import write_plink
from medcl.io._plink_files import (check_bed, check_padding, check_trailing_hom_a1, decode_bed, fileset_paths, read_bim,
                                   read_fam)
from medcl.io.genotype_stats import GenotypeStats

__all__ = ["Genotypes", "SnpSelection", "GenotypeStats", "read_genotypes", "write_plink"]

COUNTED_ALLELES = ("a1", "a2")
PathLike = Union[str, os.PathLike]
ENGINES = ("auto", "pandas-plink", "memmap")


def _norm_chrom(c) -> str:
    s = str(c).strip().lower()
    return s[3:] if s.startswith("chr") else s


@dataclass(frozen=True)
class SnpSelection:
    """Which SNPs to read. Filters apply in this order; the result keeps .bim order."""

    chromosomes: Sequence[Union[str, int]] | None = None  # keep SNPs on these ("1", 2, "X"; "chr" prefix ignored)
    ids: Sequence[str] | PathLike | None = None  # keep these SNP ids: a list, or a file with one id per line
    stride: int = 1  # then keep every stride-th remaining SNP (ContIG kept every 100th)
    offset: int = 0  # index of the first SNP kept by the stride, 0 <= offset < stride

    def resolve(self, bim: pd.DataFrame, bim_path: Path) -> np.ndarray:
        """Indices (sorted, into the .bim) of the selected SNPs."""
        if int(self.stride) < 1 or not 0 <= int(self.offset) < int(self.stride):
            raise PlinkError(f"bad SNP stride {self.stride} / offset {self.offset}",
                             fix="stride must be >= 1 and 0 <= offset < stride")
        keep = np.ones(len(bim), dtype=bool)
        if self.chromosomes is not None:
            want = {_norm_chrom(c) for c in ([self.chromosomes] if isinstance(self.chromosomes, (str, int))
                                             else self.chromosomes)}
            have = bim["chrom"].map(_norm_chrom)
            absent = sorted(want - set(have))
            if absent:
                present = ", ".join(pd.unique(bim["chrom"])[:30])
                raise PlinkError(f"no SNPs on chromosome(s) {', '.join(absent)} in the .bim", path=bim_path,
                                 fix=f"choose among the chromosomes it has: {present}")
            keep &= have.isin(want).to_numpy()
        if self.ids is not None:
            keep &= self._id_mask(bim, bim_path)
        idx = np.flatnonzero(keep)[int(self.offset)::int(self.stride)]
        if len(idx) == 0:
            raise PlinkError(f"the SNP selection {self} keeps no SNPs", path=bim_path,
                             fix="loosen the selection")
        return idx

    def _id_mask(self, bim: pd.DataFrame, bim_path: Path) -> np.ndarray:
        source = ""
        if isinstance(self.ids, (str, os.PathLike)):
            id_file = Path(os.fspath(self.ids))
            if not id_file.is_file():
                raise PlinkError("SNP id list not found", path=id_file,
                                 fix="give a text file with one SNP id per line, or a list of ids")
            want = [ln.strip() for ln in id_file.read_text().splitlines() if ln.strip()]
            source = f" (from {id_file})"
        else:
            want = [str(s) for s in self.ids]
        want_set = set(want)
        known = set(bim["snp"])
        unknown = [s for s in dict.fromkeys(want) if s not in known]
        if unknown:
            raise PlinkError(
                f"{len(unknown)} requested SNP id(s){source} are not in the .bim: {', '.join(unknown[:10])}"
                + (" ..." if len(unknown) > 10 else ""), path=bim_path,
                fix="check the id list against the .bim's second column (same build and naming)")
        mask = bim["snp"].isin(want_set).to_numpy()
        dup = bim.loc[mask, "snp"].duplicated(keep=False)
        if dup.any():
            raise PlinkError(f"selected SNP id(s) appear more than once in the .bim: "
                             f"{', '.join(pd.unique(bim.loc[mask, 'snp'][dup])[:10])}", path=bim_path,
                             fix="give SNPs unique ids (plink --set-missing-var-ids) or select by chromosome")
        return mask


@dataclass
class Genotypes:
    """Genotype calls of a PLINK fileset: counts of ``counted_allele`` per individual and SNP."""

    fid: np.ndarray  # (N,) family ids, str
    iid: np.ndarray  # (N,) individual ids, str
    snp: np.ndarray  # (M,) SNP ids, str
    chrom: np.ndarray  # (M,) chromosome codes as written in the .bim, str
    pos: np.ndarray  # (M,) base-pair positions, int64
    a1: np.ndarray  # (M,) first .bim allele (PLINK A1), str
    a2: np.ndarray  # (M,) second .bim allele (PLINK A2), str
    counted_allele: str  # "a1" or "a2": which column the values count
    values: np.ndarray  # (N, M) float32 allele counts 0/1/2, NaN = missing call
    source: str = ""  # fileset prefix read

    @property
    def counted(self) -> np.ndarray:
        """(M,) the counted allele of each SNP (letters)."""
        return self.a1 if self.counted_allele == "a1" else self.a2

    @property
    def index(self) -> pd.MultiIndex:
        """(FID, IID) index of the rows, for joining by ID."""
        return pd.MultiIndex.from_arrays([self.fid, self.iid], names=["FID", "IID"])


def _pandas_plink_dask(bed: Path, bim: Path, fam: Path, chunk_size: int):
    """The (N, M) dask array of pandas-plink's default orientation (counts the .bim's 2nd allele)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pandera import notice inside pandas-plink
        from pandas_plink import Chunk, read_plink1_bin
        xr = read_plink1_bin(bed, bim, fam, verbose=False, chunk=Chunk(nsamples=None, nvariants=chunk_size))
    return xr.data  # (N, M)


def _read_with_pandas_plink(bed: Path, bim: Path, fam: Path, n: int, m: int, idx: np.ndarray,
                            counted_allele: str, chunk_size: int) -> np.ndarray:
    """Decode the SNPs ``idx`` through pandas-plink's dask array, ``chunk_size`` variants per chunk.

    Fine for dense selections; for sparse ones every touched chunk is decoded in full.
    """
    data = _pandas_plink_dask(Path(bed).resolve(), Path(bim).resolve(), Path(fam).resolve(), chunk_size)
    if data.shape != (n, m):  # pragma: no cover - both parse the same files
        raise PlinkError(f"pandas-plink sees {data.shape}, medcl sees {(n, m)}", path=bed)
    out = np.empty((n, len(idx)), dtype=np.float32)  # (N, M_selected)
    bounds = np.concatenate([[0], np.cumsum(data.chunks[1])])
    which = np.searchsorted(bounds, idx, side="right") - 1  # chunk of each selected SNP
    for k in np.unique(which):
        cols = np.flatnonzero(which == k)
        lo, hi = int(bounds[k]), int(bounds[k + 1])
        block = data[:, lo:hi].compute(scheduler="synchronous")  # (N, hi - lo), counts of .bim 2nd allele
        out[:, cols] = block[:, idx[cols] - lo]
    if counted_allele == "a1":
        np.subtract(np.float32(2), out, out=out)  # NaN stays NaN
    return out


def read_genotypes(prefix: PathLike, *, counted_allele: str = "a1", snps: SnpSelection | None = None,
                   chunk_size: int = 1024, engine: str = "auto") -> Genotypes:
    """Read a PLINK 1 fileset into a float32 (individuals x SNPs) matrix.

    prefix: path without extension (``data/chr1`` for data/chr1.bed/.bim/.fam); a .bed path works too.
    counted_allele: "a1" counts the .bim's first allele (PLINK standard), "a2" the second.
    snps: which SNPs to read (default all), in .bim order.
    chunk_size: SNPs decoded per block; peak memory is the result plus one (N, chunk_size) block.
    engine: "pandas-plink" decodes whole chunk_size-variant chunks through pandas-plink's dask
        array; "memmap" reads only the selected SNPs' bytes; "auto" (default) uses pandas-plink
        unless the selection is sparse (under a quarter of the SNPs in the chunks it touches,
        e.g. ContIG's every-100th SNP), where decoding whole chunks would waste most of the work.
        Both give the same matrix (tested against bed-reader).
    """
    if counted_allele not in COUNTED_ALLELES:
        raise PlinkError(f"counted_allele must be 'a1' or 'a2', not {counted_allele!r}",
                         fix="'a1' (the .bim's first allele, PLINK default) or 'a2'")
    if engine not in ENGINES:
        raise PlinkError(f"engine must be one of {ENGINES}, not {engine!r}")
    if int(chunk_size) < 1:
        raise PlinkError(f"chunk_size must be >= 1, not {chunk_size}")
    bed, bim_path, fam_path = fileset_paths(prefix)
    fam = read_fam(fam_path)
    bim = read_bim(bim_path)
    n, m = len(fam), len(bim)
    check_bed(bed, fam_path, bim_path, n, m)
    idx = (snps if snps is not None else SnpSelection()).resolve(bim, bim_path)
    check_padding(bed, fam_path, n, idx)
    if engine == "auto":
        touched = len(np.unique(idx // int(chunk_size))) * int(chunk_size)
        engine = "memmap" if len(idx) < 0.25 * min(touched, m) else "pandas-plink"
    if engine == "memmap":
        values = decode_bed(bed, n, m, idx, counted_allele, int(chunk_size))
    else:
        values = _read_with_pandas_plink(bed, bim_path, fam_path, n, m, idx, counted_allele, int(chunk_size))
    check_trailing_hom_a1(values, counted_allele, bed, fam_path)
    sel = bim.iloc[idx]

    def strings(col) -> np.ndarray:
        return np.asarray(col.to_list(), dtype=object)

    return Genotypes(
        fid=strings(fam["fid"]), iid=strings(fam["iid"]), snp=strings(sel["snp"]),
        chrom=strings(sel["chrom"]), pos=sel["pos"].to_numpy(dtype=np.int64),
        a1=strings(sel["a1"]), a2=strings(sel["a2"]), counted_allele=counted_allele,
        values=values, source=str(bed.with_suffix("")))
