"""medcl.io.plink against bed-reader (an independent reader/writer), and bad filesets."""
from __future__ import annotations

import json
import os
import tracemalloc
from pathlib import Path

import bed_reader
import numpy as np
import pytest

from medcl.errors import PlinkError
from medcl.io.plink import GenotypeStats, SnpSelection, read_genotypes, write_plink

ENGINES = ["memmap", "pandas-plink"]


@pytest.fixture
def rng():
    seed = int.from_bytes(os.urandom(4), "little")
    print(f"numpy seed {seed}")  # shown when a test fails
    return np.random.default_rng(seed)


def random_calls(rng, n, m, missing=0.15):
    g = rng.integers(0, 3, size=(n, m)).astype(np.float32)  # (N, M) A1 counts
    g[rng.random((n, m)) < missing] = np.nan
    return g


def meta(n, m):
    return dict(fid=[f"F{i // 2}" for i in range(n)], iid=[f"0{i}" for i in range(n)],
                snp_ids=[f"rs{j}" for j in range(m)], chrom=[str(1 + j % 3) for j in range(m)],
                pos=[100 + 7 * j for j in range(m)], a1=["A"] * m, a2=["G"] * m)


def write_with_bed_reader(prefix, g):
    """An independently written fileset (bed-reader's to_bed, counting the .bim's first allele)."""
    n, m = g.shape
    md = meta(n, m)
    props = {"fid": md["fid"], "iid": md["iid"], "sid": md["snp_ids"], "chromosome": md["chrom"],
             "bp_position": md["pos"], "allele_1": md["a1"], "allele_2": md["a2"]}
    bed_reader.to_bed(f"{prefix}.bed", g, properties=props, count_A1=True)
    return md


def oracle(prefix, counted_allele):
    with bed_reader.open_bed(f"{prefix}.bed", count_A1=(counted_allele == "a1")) as b:
        return b.read(dtype="float32"), b


def write_ours(prefix, rng, n, m):
    g = random_calls(rng, n, m)
    write_plink(prefix, genotypes=g, **meta(n, m))
    return g


# ---------------------------------------------------------------- reader vs bed-reader

@pytest.mark.parametrize("n", [16, 17, 18, 19])
@pytest.mark.parametrize("counted_allele", ["a1", "a2"])
@pytest.mark.parametrize("engine", ENGINES)
def test_reader_matches_bed_reader(tmp_path, rng, n, counted_allele, engine):
    m = 11
    g = random_calls(rng, n, m)
    md = write_with_bed_reader(tmp_path / "x", g)
    expect, _ = oracle(tmp_path / "x", counted_allele)
    got = read_genotypes(tmp_path / "x", counted_allele=counted_allele, engine=engine)
    assert np.isnan(got.values).any()
    np.testing.assert_array_equal(got.values, expect)
    assert got.values.dtype == np.float32 and got.values.shape == (n, m)
    assert got.counted_allele == counted_allele
    assert list(got.counted) == (md["a1"] if counted_allele == "a1" else md["a2"])
    assert list(got.iid) == md["iid"] and list(got.fid) == md["fid"]  # strings, leading zeros kept
    assert list(got.snp) == md["snp_ids"] and list(got.pos) == md["pos"]
    if counted_allele == "a1":
        np.testing.assert_array_equal(got.values, g)


def test_orientations_sum_to_two(tmp_path, rng):
    write_ours(tmp_path / "x", rng, 13, 9)
    a1 = read_genotypes(tmp_path / "x", counted_allele="a1").values
    a2 = read_genotypes(tmp_path / "x", counted_allele="a2").values
    np.testing.assert_array_equal(a1 + a2, np.where(np.isnan(a1), np.nan, 2.0))


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("selection, expect_index", [
    (SnpSelection(chromosomes=["2"]), lambda m: [j for j in range(m) if j % 3 == 1]),
    (SnpSelection(chromosomes=[1, "chr3"]), lambda m: [j for j in range(m) if j % 3 != 1]),
    (SnpSelection(stride=4), lambda m: list(range(0, m, 4))),
    (SnpSelection(stride=5, offset=2), lambda m: list(range(2, m, 5))),
    (SnpSelection(chromosomes=["1"], stride=2), lambda m: list(range(0, m, 3))[::2]),
    (SnpSelection(ids=["rs20", "rs3", "rs7"]), lambda m: [3, 7, 20]),
])
def test_snp_selection(tmp_path, rng, engine, selection, expect_index):
    m = 31
    write_ours(tmp_path / "x", rng, 10, m)
    idx = expect_index(m)
    expect, b = oracle(tmp_path / "x", "a1")
    got = read_genotypes(tmp_path / "x", snps=selection, engine=engine, chunk_size=2)
    np.testing.assert_array_equal(got.values, expect[:, idx])
    assert list(got.snp) == [b.sid[j] for j in idx]


def test_snp_selection_from_id_file(tmp_path, rng):
    write_ours(tmp_path / "x", rng, 9, 20)
    (tmp_path / "keep.txt").write_text("rs5\n\nrs17 \nrs2\n")
    got = read_genotypes(tmp_path / "x", snps=SnpSelection(ids=tmp_path / "keep.txt"))
    expect, _ = oracle(tmp_path / "x", "a1")
    assert list(got.snp) == ["rs2", "rs5", "rs17"]  # .bim order
    np.testing.assert_array_equal(got.values, expect[:, [2, 5, 17]])


@pytest.mark.parametrize("selection, words", [
    (SnpSelection(ids=["rs1", "rs_missing", "rs_gone"]), ["2 requested", "rs_missing", ".bim"]),
    (SnpSelection(chromosomes=["7"]), ["chromosome(s) 7", ".bim"]),
    (SnpSelection(stride=0), ["stride"]),
])
def test_bad_selection(tmp_path, rng, selection, words):
    write_ours(tmp_path / "x", rng, 8, 6)
    with pytest.raises(PlinkError) as err:
        read_genotypes(tmp_path / "x", snps=selection)
    for w in words:
        assert w in str(err.value)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("n", [12, 15])
def test_chunked_equals_unchunked(tmp_path, rng, engine, n):
    write_ours(tmp_path / "x", rng, n, 40)
    sel = SnpSelection(ids=[f"rs{j}" for j in (0, 1, 2, 9, 10, 25, 39)])
    for snps in (None, sel):
        whole = read_genotypes(tmp_path / "x", chunk_size=10_000, snps=snps, engine=engine).values
        for cs in (1, 3, 7):
            part = read_genotypes(tmp_path / "x", chunk_size=cs, snps=snps, engine=engine).values
            np.testing.assert_array_equal(part, whole)


def test_sparse_selection_never_decodes_the_full_matrix(tmp_path):
    n, m = 1000, 4000
    g = np.random.default_rng(0).integers(0, 3, size=(n, m)).astype(np.float32)
    write_plink(tmp_path / "x", genotypes=g, **meta(n, m))
    tracemalloc.start()
    try:
        got = read_genotypes(tmp_path / "x", snps=SnpSelection(stride=100), chunk_size=8)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    np.testing.assert_array_equal(got.values, g[:, ::100])
    assert peak < g.nbytes / 4, f"peak {peak} bytes vs full matrix {g.nbytes}"


def test_prefix_may_name_the_bed(tmp_path, rng):
    write_ours(tmp_path / "x", rng, 5, 3)
    a = read_genotypes(tmp_path / "x.bed").values
    np.testing.assert_array_equal(a, read_genotypes(str(tmp_path / "x")).values)


# ---------------------------------------------------------------- writer

@pytest.mark.parametrize("n", [8, 9, 10, 11])
def test_write_plink_round_trip_with_bed_reader(tmp_path, rng, n):
    m = 7
    g = random_calls(rng, n, m)
    g[0, 0] = -1  # -1 also means missing
    sex = rng.integers(0, 3, n)
    pheno = rng.normal(size=n).round(3)
    cm = rng.random(m).round(4)
    md = meta(n, m)
    write_plink(tmp_path / "out" / "x", genotypes=g, sex=sex, phenotype=pheno, cm=cm, **md)
    with bed_reader.open_bed(tmp_path / "out" / "x.bed") as b:
        np.testing.assert_array_equal(b.read(dtype="float32"), np.where(g == -1, np.nan, g))
        assert list(b.fid) == md["fid"] and list(b.iid) == md["iid"] and list(b.sid) == md["snp_ids"]
        assert list(b.chromosome) == md["chrom"] and list(b.bp_position) == md["pos"]
        assert list(b.allele_1) == md["a1"] and list(b.allele_2) == md["a2"]
        np.testing.assert_array_equal(b.sex, sex)
        np.testing.assert_allclose(b.pheno.astype(float), pheno)
        np.testing.assert_allclose(b.cm_position, cm)
    assert "\t" in (tmp_path / "out" / "x.bim").read_text().splitlines()[0]
    assert (tmp_path / "out" / "x.fam").read_text().splitlines()[0].count(" ") == 5
    first = (tmp_path / "out" / "x.bed").read_bytes()
    write_plink(tmp_path / "out" / "x", genotypes=g, sex=sex, phenotype=pheno, cm=cm, **md)
    assert (tmp_path / "out" / "x.bed").read_bytes() == first  # deterministic


def test_write_plink_rejects_bad_calls_and_ids(tmp_path):
    md = meta(2, 2)
    with pytest.raises(PlinkError, match="0, 1, 2"):
        write_plink(tmp_path / "x", genotypes=np.array([[0, 3], [1, 2]]), **md)
    md["iid"] = ["a b", "c"]
    with pytest.raises(PlinkError, match="whitespace"):
        write_plink(tmp_path / "x", genotypes=np.zeros((2, 2)), **md)


# ---------------------------------------------------------------- bad filesets

def _patch(path, offset, data):
    with open(path, "r+b") as fh:
        fh.seek(offset)
        fh.write(data)


def _expect_error(prefix, *words):
    with pytest.raises(PlinkError) as err:
        read_genotypes(prefix)
    for w in words:
        assert w in str(err.value), str(err.value)
    return str(err.value)


def test_wrong_magic(tmp_path, rng):
    write_ours(tmp_path / "x", rng, 8, 4)
    _patch(tmp_path / "x.bed", 0, b"\x00\x00")
    _expect_error(tmp_path / "x", str(tmp_path / "x.bed"), "6c1b")


def test_individual_major_mode(tmp_path, rng):
    write_ours(tmp_path / "x", rng, 8, 4)
    _patch(tmp_path / "x.bed", 2, b"\x00")
    _expect_error(tmp_path / "x", str(tmp_path / "x.bed"), "individual-major")


@pytest.mark.parametrize("change", ["truncate", "extend"])
def test_bed_size(tmp_path, rng, change):
    write_ours(tmp_path / "x", rng, 10, 4)
    data = (tmp_path / "x.bed").read_bytes()
    (tmp_path / "x.bed").write_bytes(data[:-1] if change == "truncate" else data + b"\x00")
    size = len(data) + (-1 if change == "truncate" else 1)
    _expect_error(tmp_path / "x", str(tmp_path / "x.bed"), f"{size} bytes")


def test_bim_line_missing(tmp_path, rng):
    write_ours(tmp_path / "x", rng, 10, 4)
    lines = (tmp_path / "x.bim").read_text().splitlines(keepends=True)
    (tmp_path / "x.bim").write_text("".join(lines[:-1]))
    _expect_error(tmp_path / "x", str(tmp_path / "x.bed"), "3 SNPs", "fits 4 SNPs")


def _drop_last_fam_line(prefix):
    lines = (prefix.parent / (prefix.name + ".fam")).read_text().splitlines(keepends=True)
    (prefix.parent / (prefix.name + ".fam")).write_text("".join(lines[:-1]))


@pytest.mark.parametrize("n", [8, 9, 10, 11])
def test_fam_one_line_short(tmp_path, rng, n):
    """n - 1 a multiple of 4: the .bed size shows it. Otherwise the padding bits do, as long as
    the dropped individual has any call other than homozygous A1 (here: all homozygous A2)."""
    g = random_calls(rng, n, 5)
    g[-1] = 0  # last individual: hom A2 everywhere (code 11)
    write_plink(tmp_path / "x", genotypes=g, **meta(n, 5))
    _drop_last_fam_line(tmp_path / "x")
    msg = _expect_error(tmp_path / "x", str(tmp_path / "x.bed"))
    if (n - 1) % 4 == 0:
        b = (n + 3) // 4
        assert f"fits {4 * b - 3}-{4 * b} individuals" in msg
    else:
        assert "padding" in msg and "one line short" in msg


def test_fam_one_line_short_invisible_when_dropped_person_is_all_hom_a1(tmp_path, rng):
    """The documented limit: with n - 1 not a multiple of 4 and the dropped individual
    homozygous A1 at every SNP, the fileset is indistinguishable from a valid one."""
    g = random_calls(rng, 10, 5)
    g[-1] = 2
    write_plink(tmp_path / "x", genotypes=g, **meta(10, 5))
    _drop_last_fam_line(tmp_path / "x")
    np.testing.assert_array_equal(read_genotypes(tmp_path / "x").values, g[:-1])


@pytest.fixture(scope="module")
def demo_plink(tmp_path_factory):
    """The demo cohort's fileset (120 people, 400 common SNPs, A1 the minor allele), fresh seed."""
    from medcl.demo.cohort import PLINK_PREFIX, DemoConfig, _write_plink, make_plan

    seed = int.from_bytes(os.urandom(3), "little")
    print(f"demo seed {seed}")
    root = tmp_path_factory.mktemp("demo")
    _write_plink(root, make_plan(120, 400, seed, DemoConfig()))
    return root / PLINK_PREFIX


def _subset(prefix, g, n, extra=0, genotypes=None):
    """The first n people of Genotypes g as a fileset, plus ``extra`` .fam lines the .bed lacks."""
    write_plink(prefix, g.fid[:n], g.iid[:n], g.snp, g.chrom, g.pos, g.a1, g.a2,
                g.values[:n] if genotypes is None else genotypes)
    with open(f"{prefix}.fam", "a") as fh:
        fh.writelines(f"EXTRA X{i} 0 0 0 -9\n" for i in range(extra))


def test_real_filesets_are_accepted(demo_plink):
    paths = [demo_plink]
    try:  # pandas-plink's example filesets, where its wheel ships them
        from pandas_plink import get_data_folder
        paths += sorted(p.with_suffix("") for p in Path(get_data_folder()).glob("*.bed"))
    except ImportError:
        pass
    for prefix in paths:
        for engine in ENGINES:
            for allele in ("a1", "a2"):
                for snps in (None, SnpSelection(stride=3, offset=1)):
                    g = read_genotypes(prefix, counted_allele=allele, engine=engine, snps=snps, chunk_size=64)
                    assert g.values.shape[0] == len(g.iid)


@pytest.mark.parametrize("extra", [1, 2])
@pytest.mark.parametrize("engine", ENGINES)
def test_fam_extra_line_reading_the_padding(tmp_path, demo_plink, extra, engine):
    """37 people in the .bed, 37 + extra in the .fam: ceil(n / 4) and so the .bed size are
    unchanged, and the extra people read the zero padding as homozygous A1 at every SNP."""
    g = read_genotypes(demo_plink)
    _subset(tmp_path / "x", g, 37, extra)
    for allele in ("a1", "a2"):
        for chunk_size in (64, 10_000):
            for snps in (None, SnpSelection(stride=2), SnpSelection(chromosomes=[g.chrom[0]])):
                with pytest.raises(PlinkError) as err:
                    read_genotypes(tmp_path / "x", counted_allele=allele, engine=engine, chunk_size=chunk_size,
                                   snps=snps)
                msg = str(err.value)
                assert str(tmp_path / "x.fam") in msg and "x.bed" in msg, msg
                assert f"has {extra} line(s) more" in msg and "homozygous A1" in msg and "remove" in msg, msg
    _subset(tmp_path / "y", g, 37)  # the same people without the extra line(s) are read
    np.testing.assert_array_equal(read_genotypes(tmp_path / "y", engine=engine).values, g.values[:37])


def test_fam_extra_line_needs_evidence(tmp_path, demo_plink, rng):
    """Homozygous A1 everywhere is refused only where a real person would hardly be: not over a
    few SNPs, nor where the others carry no other allele."""
    g = read_genotypes(demo_plink)
    _subset(tmp_path / "x", g, 37, 1)
    few = SnpSelection(ids=list(g.snp[:5]))
    assert np.all(read_genotypes(tmp_path / "x", snps=few).values[-1] == 2)
    fixed = np.full((37, len(g.snp)), 2.0, dtype=np.float32)         # A1 fixed in everyone
    fixed[rng.random(fixed.shape) < 0.1] = np.nan
    _subset(tmp_path / "z", g, 37, 1, genotypes=fixed)
    assert np.all(read_genotypes(tmp_path / "z").values[-1] == 2)
    tiny = write_ours(tmp_path / "t", rng, 5, 12)                     # 5 people, 12 SNPs
    tiny[-1] = 2
    write_plink(tmp_path / "t", genotypes=tiny, **meta(5, 12))
    np.testing.assert_array_equal(read_genotypes(tmp_path / "t").values, tiny)


def test_duplicate_fid_iid(tmp_path, rng):
    md = meta(6, 3)
    md["fid"], md["iid"] = ["A", "A", "B", "B", "C", "C"], ["1", "2", "1", "1", "2", "3"]
    write_plink(tmp_path / "x", genotypes=random_calls(rng, 6, 3), **md)
    _expect_error(tmp_path / "x", str(tmp_path / "x.fam"), "B/1")


def test_same_iid_in_two_families_is_allowed(tmp_path, rng):
    md = meta(4, 3)
    md["fid"], md["iid"] = ["A", "B", "C", "D"], ["1", "1", "2", "3"]
    write_plink(tmp_path / "x", genotypes=random_calls(rng, 4, 3), **md)
    assert list(read_genotypes(tmp_path / "x").iid) == ["1", "1", "2", "3"]


@pytest.mark.parametrize("ext", ["bim", "fam", "bed"])
def test_missing_file(tmp_path, rng, ext):
    write_ours(tmp_path / "x", rng, 4, 3)
    (tmp_path / f"x.{ext}").unlink()
    _expect_error(tmp_path / "x", str(tmp_path / f"x.{ext}"), "not found")


def test_malformed_fam_line(tmp_path, rng):
    write_ours(tmp_path / "x", rng, 4, 3)
    text = (tmp_path / "x.fam").read_text().splitlines()
    text[2] = " ".join(text[2].split()[:5])
    (tmp_path / "x.fam").write_text("\n".join(text) + "\n")
    _expect_error(tmp_path / "x", str(tmp_path / "x.fam"), "6 fields")


# ---------------------------------------------------------------- training-split statistics

def test_stats_use_train_rows_only(tmp_path, rng):
    n, m = 30, 12
    write_ours(tmp_path / "x", rng, n, m)
    g = read_genotypes(tmp_path / "x")
    train = np.arange(n) < 20
    stats = GenotypeStats.fit(g, rows=train)
    tr = g.values[train].astype(np.float64)
    np.testing.assert_allclose(stats.mean, np.nanmean(tr, axis=0))
    np.testing.assert_allclose(stats.std, np.nanstd(tr, axis=0))
    g.values[25] = 2.0  # a test row changes: the statistics must not
    again = GenotypeStats.fit(g, rows=np.flatnonzero(train))
    np.testing.assert_array_equal(again.mean, stats.mean)
    np.testing.assert_array_equal(again.std, stats.std)
    g.values[3] = 0.0  # a training row changes: they must
    assert not np.array_equal(GenotypeStats.fit(g, rows=train).mean, stats.mean)


def test_stats_transform_imputes_and_standardises(rng):
    x = np.array([[0, 2, 1, np.nan], [2, 2, np.nan, np.nan], [1, 2, 1, np.nan], [np.nan, 0, 0, 1]],
                 dtype=np.float32)
    stats = GenotypeStats.fit(x, rows=[0, 1, 2], snp_ids=["a", "b", "c", "d"], counted_allele="a1")
    z = stats.transform(x)
    np.testing.assert_allclose(stats.mean, [1, 2, 1, 0])
    np.testing.assert_allclose(z[:, 0], [-1.224745, 1.224745, 0, 0], rtol=1e-5)  # NaN -> mean -> 0
    np.testing.assert_array_equal(z[:, 1], 0)  # no variance in training rows
    np.testing.assert_array_equal(z[:, 3], 0)  # no training calls at all
    assert np.isfinite(z).all() and z.dtype == np.float32


def test_stats_dict_round_trip_and_mismatch(tmp_path, rng):
    write_ours(tmp_path / "x", rng, 14, 9)
    g = read_genotypes(tmp_path / "x")
    stats = GenotypeStats.fit(g, rows=np.arange(10))
    d = json.loads(json.dumps(stats.to_dict()))
    back = GenotypeStats.from_dict(d)
    assert back.counted_allele == "a1" and back.snp_ids == list(g.snp) and back.alleles == list(g.a1)
    np.testing.assert_array_equal(back.transform(g), stats.transform(g))
    stats.save(tmp_path / "stats.json")
    np.testing.assert_array_equal(GenotypeStats.load(tmp_path / "stats.json").mean, stats.mean)
    with pytest.raises(PlinkError, match="counted_allele='a1'"):
        back.transform(read_genotypes(tmp_path / "x", counted_allele="a2"))
    with pytest.raises(PlinkError, match="SNP selection"):
        back.transform(read_genotypes(tmp_path / "x", snps=SnpSelection(stride=2)))
    with pytest.raises(PlinkError, match="not a medcl"):
        GenotypeStats.from_dict({"mean": []})
    with pytest.raises(PlinkError, match="missing std"):
        GenotypeStats.from_dict({k: v for k, v in d.items() if k != "std"})
