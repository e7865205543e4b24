"""load_cohort: join by FID/IID, splits by individual, training-only statistics, inner/outer, masks."""
from __future__ import annotations

import json
import logging

import numpy as np
import pandas as pd
import pytest

from medcl.data import hashed_split, load_cohort
from medcl.errors import ConfigError, TableError
from medcl.io.plink import read_genotypes
from medcl.io.tables import read_manifest, read_table

ALL = ("snp", "prs", "burden")


def _load(paths, manifest=None, **kw):
    kw.setdefault("modalities", ALL)
    return load_cohort(paths["manifest"] if manifest is None else manifest,
                       genotypes=kw.pop("genotypes", paths["plink"]), prs=kw.pop("prs", paths["prs"]), burden=kw.pop("burden", paths["burden"]), **kw)


def _by_id(cohort, modality):
    """{(FID, IID): (values row, present)}."""
    t = cohort.genetics[modality]
    return {(f, i): (t.values[k], t.present[k]) for k, (f, i) in enumerate(zip(cohort.people.FID, cohort.people.IID))}


def test_people_images_and_split_follow_the_manifest(paths, demo):
    c = _load(paths)
    m = read_manifest(paths["manifest"])
    assert len(c.images) == len(m) and len(c.people) == m[["FID", "IID"]].drop_duplicates().shape[0]
    assert not c.people.duplicated(["FID", "IID"]).any()
    # every image points at its own person; its split is the manifest's
    p = c.people.iloc[c.images.person.to_numpy()]
    assert (p.FID.to_numpy() == c.images.FID.to_numpy()).all() and (p.IID.to_numpy() == c.images.IID.to_numpy()).all()
    assert (c.images.split.to_numpy() == m.split.to_numpy()).all()
    assert (p.split.to_numpy() == c.images.split.to_numpy()).all()
    assert (c.images.manifest_row.to_numpy() == np.arange(len(m))).all()
    assert c.root is not None and c.counted_allele == "a1"


def test_values_are_the_sources_standardised_by_id(paths):
    c = _load(paths)
    train = c.people.split.to_numpy() == "train"
    g = read_genotypes(paths["plink"])
    row = {(f, i): k for k, (f, i) in enumerate(zip(g.fid, g.iid))}
    snp = c.genetics["snp"]
    mean, std = np.asarray(snp.stats["mean"]), np.asarray(snp.stats["std"])
    for k, (f, i) in enumerate(zip(c.people.FID, c.people.IID)):
        assert snp.present[k] == ((f, i) in row)
        if (f, i) in row:
            raw = g.values[row[(f, i)]].astype(np.float64)
            expect = np.where(std > 0, (np.where(np.isnan(raw), mean, raw) - mean) / np.where(std > 0, std, 1), 0)
            np.testing.assert_allclose(snp.values[k], expect, atol=1e-5)
        else:
            assert not snp.values[k].any()
    # training rows are standardised: mean 0, std 1 for every SNP with variance
    tr = snp.values[train & snp.present]
    var = std > 0
    np.testing.assert_allclose(tr[:, var].mean(0), 0, atol=1e-4)
    prs = read_table(paths["prs"]).set_index(["FID", "IID"])["prs"]
    t = c.genetics["prs"]
    for k, (f, i) in enumerate(zip(c.people.FID, c.people.IID)):
        raw = prs.get((f, i), np.nan)
        assert t.present[k] == (not np.isnan(raw))
        if t.present[k]:
            assert t.values[k, 0] * t.stats["std"][0] + t.stats["mean"][0] == pytest.approx(raw, abs=1e-5)
        else:
            assert t.values[k, 0] == 0
    assert t.stats["columns"] == ["prs"] and c.genetics["burden"].stats["columns"][0] == "GENE01"
    json.dumps(c.stats())  # saved with the run


def test_row_order_does_not_matter(paths, demo):
    c = _load(paths)
    rng = np.random.default_rng(demo.seed)
    m = read_manifest(paths["manifest"])
    shuffled = m.iloc[rng.permutation(len(m))].reset_index(drop=True)
    prs = read_table(paths["prs"], kind="prs")
    prs = prs.iloc[rng.permutation(len(prs))].reset_index(drop=True)
    burden = read_table(paths["burden"], kind="burden")
    burden = burden.iloc[rng.permutation(len(burden))]
    d = _load(paths, manifest=shuffled, prs=prs, burden=burden)
    pd.testing.assert_frame_equal(c.people, d.people)
    for mod in ALL:
        np.testing.assert_array_equal(c.genetics[mod].values, d.genetics[mod].values)
        np.testing.assert_array_equal(c.genetics[mod].present, d.genetics[mod].present)
        assert c.genetics[mod].stats == d.genetics[mod].stats
    # the same image gets the same person either way
    a = c.images.set_index("path")[["FID", "IID", "person", "split"]].sort_index()
    b = d.images.set_index("path")[["FID", "IID", "person", "split"]].sort_index()
    pd.testing.assert_frame_equal(a, b)


def test_statistics_come_from_training_people_only(paths):
    c = _load(paths)
    people = c.people
    g = read_genotypes(paths["plink"])
    ids = list(zip(g.fid, g.iid))
    test_people = [k for k in range(len(people)) if people.split[k] != "train" and c.genetics["snp"].present[k]]
    assert test_people, "the cohort needs a genotyped non-training person"
    k = test_people[0]
    key = (people.FID[k], people.IID[k])
    g.values[ids.index(key)] = np.where(g.values[ids.index(key)] == 2, 0, 2)  # a different genotype
    prs = read_table(paths["prs"], kind="prs")
    others = [j for j in range(len(people)) if people.split[j] != "train"]
    for j in others:
        prs.loc[(prs.FID == people.FID[j]) & (prs.IID == people.IID[j]), "prs"] = 1e3
    d = _load(paths, genotypes=g, prs=prs)
    for mod in ALL:
        s, t = dict(c.genetics[mod].stats), dict(d.genetics[mod].stats)
        s.pop("source", None), t.pop("source", None)
        assert s == t, mod
    train = people.split.to_numpy() == "train"
    np.testing.assert_array_equal(c.genetics["snp"].values[train], d.genetics["snp"].values[train])
    assert not np.array_equal(c.genetics["snp"].values[k], d.genetics["snp"].values[k])
    assert (d.genetics["prs"].values[~train & d.genetics["prs"].present] > 100).all()


def test_saved_statistics_are_applied(paths):
    c = _load(paths)
    d = _load(paths, stats=json.loads(json.dumps(c.stats())))
    for mod in ALL:
        np.testing.assert_array_equal(c.genetics[mod].values, d.genetics[mod].values)
    bad = c.stats()
    bad["prs"] = dict(bad["prs"], columns=["other"])
    with pytest.raises(TableError, match="columns"):
        _load(paths, stats=bad)


def test_inner_keeps_only_people_with_every_modality(paths):
    outer = _load(paths, modalities=("snp", "prs"))
    inner = _load(paths, modalities=("snp", "prs"), aggregate="inner")
    both = outer.genetics["snp"].present & outer.genetics["prs"].present
    assert not both.all(), "the demo cohort has people without genotypes or PRS"
    assert len(inner.people) == both.sum() and inner.dropped_people == (~both).sum()
    pd.testing.assert_frame_equal(inner.people, outer.people[both].reset_index(drop=True))
    for mod in ("snp", "prs"):
        assert inner.genetics[mod].present.all()
    kept = set(zip(inner.people.FID, inner.people.IID))
    assert set(zip(inner.images.FID, inner.images.IID)) == kept
    n_images = outer.images.person.isin(np.flatnonzero(both)).sum()
    assert len(inner.images) == n_images
    s = inner.summary()
    assert s["people"] == len(inner.people) and s["modalities"]["prs"]["present"] == len(inner.people)


def test_masks_for_people_without_a_modality(paths):
    prs = read_table(paths["prs"], kind="prs")
    c0 = _load(paths)
    k = 0
    key = (c0.people.FID[k], c0.people.IID[k])
    prs = prs[(prs.FID != key[0]) | (prs.IID != key[1])]  # person 0 drops out of the PRS table
    burden = read_table(paths["burden"], kind="burden")
    people = set(zip(c0.people.FID, c0.people.IID))     # burden rows include some non-imaged people
    r = next(i for i, key in enumerate(zip(burden.FID, burden.IID)) if key in people)
    burden.loc[r, ["GENE01", "GENE02"]] = np.nan  # a partly missing row is still present
    c = _load(paths, prs=prs, burden=burden)
    assert not c.genetics["prs"].present[k] and not c.genetics["prs"].values[k].any()
    row = _by_id(c, "burden")[(burden.FID[r], burden.IID[r])]
    assert row[1] and row[0][0] == 0 and row[0][1] == 0  # imputed with the training mean -> 0
    g = read_genotypes(paths["plink"])
    fam = set(zip(g.fid, g.iid))
    no_geno = [j for j, key in enumerate(zip(c.people.FID, c.people.IID)) if key not in fam]
    assert no_geno, "the demo cohort has imaged people without genotypes"
    assert not c.genetics["snp"].present[no_geno].any() and not c.genetics["snp"].values[no_geno].any()


def test_split_column_must_be_consistent_per_person(paths):
    m = read_manifest(paths["manifest"])
    twice = m.duplicated(["FID", "IID"], keep=False)
    assert twice.any(), "the demo cohort has follow-up images"
    j = int(np.flatnonzero(twice)[0])
    m.loc[j, "split"] = "val" if m.split[j] != "val" else "test"
    with pytest.raises(TableError, match="more than one split"):
        _load(paths, manifest=m)


def test_hashed_split_is_by_person_and_deterministic(paths, demo):
    m = read_manifest(paths["manifest"]).drop(columns="split")
    a = _load(paths, manifest=m, modalities=("snp",))
    b = _load(paths, manifest=m.iloc[::-1].reset_index(drop=True), modalities=("snp",))
    pd.testing.assert_frame_equal(a.people, b.people)
    assert (a.images.groupby("person").split.nunique() == 1).all()
    c = _load(paths, manifest=m, modalities=("snp",), split_seed=demo.seed + 1)
    assert not (a.people.split == c.people.split).all()
    ids = [("F", f"I{k}") for k in range(4000)]
    s = np.array([hashed_split(f, i, split_seed=3, val_fraction=0.2, test_fraction=0.1) for f, i in ids])
    assert abs((s == "val").mean() - 0.2) < 0.03 and abs((s == "test").mean() - 0.1) < 0.03
    with pytest.raises(ConfigError):
        _load(paths, manifest=m, val_fraction=0.5, test_fraction=0.5)


def test_bad_options(paths):
    with pytest.raises(ConfigError, match="without its data"):
        load_cohort(paths["manifest"], modalities=("snp", "prs"), genotypes=paths["plink"])
    with pytest.raises(ConfigError, match="unknown modality"):
        _load(paths, modalities=("image", "eeg"))
    with pytest.raises(ConfigError):
        _load(paths, aggregate="left")
    assert _load(paths, modalities="image,prs").modalities == ["prs"]


def test_summary_log_has_counts_and_no_identifiers(paths, caplog):
    with caplog.at_level(logging.INFO, logger="medcl"):
        c = _load(paths)
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert f"{len(c.people)} people" in text and "train" in text
    for f, i in zip(c.people.FID, c.people.IID):
        assert f not in text and i not in text
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="medcl"):
        _load(paths, log_summary=False)
    assert not caplog.records
