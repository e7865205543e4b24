"""generate_cohort: output folder handling, determinism, and the validity of every file."""
from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import numpy as np
import pydicom
import pytest
from bed_reader import open_bed
from pydicom.uid import ExplicitVRLittleEndian, RLELossless

from medcl.demo import generate_cohort
from medcl.errors import MedclError


CR_STORAGE = "1.2.840.10008.5.1.4.1.1.1"


def _hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


# ---------------------------------------------------------------- output folder


def test_refuses_non_empty_out(tmp_path):
    out = tmp_path / "demo"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    with pytest.raises(MedclError, match="demo"):
        generate_cohort(out, n=20, snps=100, size=64, seed=0)
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]


def test_refuses_out_that_is_a_file(tmp_path):
    out = tmp_path / "demo"
    out.write_text("x")
    with pytest.raises(MedclError, match="demo"):
        generate_cohort(out, n=20, snps=100, size=64, seed=0)


@pytest.mark.parametrize("kwargs", [dict(n=5), dict(size=8), dict(snps=3), dict(seed=-1)])
def test_rejects_bad_parameters(tmp_path, kwargs):
    args = dict(n=20, snps=100, size=64, seed=0) | kwargs
    with pytest.raises(MedclError):
        generate_cohort(tmp_path / "demo", **args)
    assert not (tmp_path / "demo").exists()


def test_empty_out_is_filled(tmp_path):
    out = tmp_path / "demo"
    out.mkdir()
    s = generate_cohort(out, n=20, snps=100, size=64, seed=0)
    assert (out / "manifest.csv").is_file() and s.out == out
    assert [p.name for p in tmp_path.iterdir()] == ["demo"]  # no temporary folder left


def test_interrupted_run_leaves_nothing(tmp_path):
    def stop(done, total, stage):
        if stage == "images" and done > 0:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        generate_cohort(tmp_path / "demo", n=40, snps=100, size=64, seed=0, progress=stop, workers=1)
    assert list(tmp_path.iterdir()) == []


def test_progress_reports_every_stage(tmp_path):
    seen = []
    generate_cohort(tmp_path / "demo", n=20, snps=100, size=64, seed=0,
                    progress=lambda d, t, s: seen.append((d, t, s)))
    stages = [s for _, _, s in seen]
    assert {"genetics", "images", "tables"} <= set(stages)
    done = [(d, t) for d, t, s in seen if s == "images"]
    assert done[-1][0] == done[-1][1] > 0 and all(a[0] <= b[0] for a, b in zip(done, done[1:]))


# ---------------------------------------------------------------- determinism


def test_same_seed_same_bytes_whatever_the_workers(tmp_path):
    a = generate_cohort(tmp_path / "a", n=40, snps=150, size=64, seed=11, workers=1)
    b = generate_cohort(tmp_path / "b", n=40, snps=150, size=64, seed=11, workers=2)
    ha, hb = _hashes(a.out), _hashes(b.out)
    assert len(ha) > 100 and ha == hb


def test_different_seed_different_bytes(tmp_path):
    a = generate_cohort(tmp_path / "a", n=40, snps=150, size=64, seed=11)
    c = generate_cohort(tmp_path / "c", n=40, snps=150, size=64, seed=12)
    ha, hc = _hashes(a.out), _hashes(c.out)
    common = set(ha) & set(hc)
    assert common and all(ha[k] != hc[k] for k in common if k.endswith((".dcm", ".bed", ".csv")))


# ---------------------------------------------------------------- files of the shared cohort


def test_summary_matches_files(cohort):
    s = cohort
    seed = s.seed
    man = _rows(s.paths["manifest"])
    assert s.n_images == len(man), seed
    assert s.n_followups == sum(r["visit"] == "2" for r in man)
    assert s.n_imaged == len({r["IID"] for r in man})
    dcm = sorted(s.out.rglob("*.dcm"))
    assert len(dcm) == 2 * s.n_images
    fam = Path(str(s.paths["plink_prefix"]) + ".fam").read_text().splitlines()
    assert s.n_genotyped == len(fam)
    assert s.paths["readme"].is_file() and s.elapsed_s > 0
    assert all(p.parent.name.isdigit() for p in dcm)  # images/NNN/ folders


def test_manifest_and_labels(cohort):
    s = cohort
    seed = s.seed
    man = _rows(s.paths["manifest"])
    assert list(man[0]) == ["FID", "IID", "path", "view", "split", "visit", "bone_path"]
    labels = {r["IID"]: r for r in _rows(s.paths["labels"])}
    assert len(labels) == s.n_individuals
    split_of = {}
    for r in man:
        assert (s.out / r["path"]).is_file() and (s.out / r["bone_path"]).is_file()
        assert r["view"] == "PA" and r["visit"] in ("1", "2")
        assert split_of.setdefault(r["IID"], r["split"]) == r["split"]  # one split per individual
        assert labels[r["IID"]]["split"] == r["split"] and labels[r["IID"]]["FID"] == r["FID"]
    frac = {k: np.mean([r["split"] == k for r in labels.values()]) for k in ("train", "val", "test")}
    assert abs(frac["train"] - 0.70) < 0.02 and abs(frac["val"] - 0.15) < 0.02, (seed, frac)
    followup = s.n_followups / s.n_imaged
    assert 0.25 < followup < 0.35, (seed, followup)
    ctr = np.array([float(r["ctr"]) for r in labels.values()])
    cm = np.array([int(r["cardiomegaly"]) for r in labels.values()])
    assert set(cm) == {0, 1} and 0.10 < cm.mean() < 0.32, (seed, cm.mean())
    assert ((ctr > 0.49) == cm.astype(bool)).all()
    assert abs(ctr.mean() - 0.45) < 0.015 and 0.035 < ctr.std() < 0.065, (seed, ctr.mean(), ctr.std())


def test_dicom_headers(cohort):
    s = cohort
    seed = s.seed
    man = _rows(s.paths["manifest"])
    syntaxes, photometric = [], []
    for r in man:
        for rel, bone in ((r["path"], False), (r["bone_path"], True)):
            path = s.out / rel
            assert path.read_bytes()[128:132] == b"DICM"
            ds = pydicom.dcmread(path)
            meta = ds.file_meta
            assert meta.MediaStorageSOPClassUID == CR_STORAGE == ds.SOPClassUID
            assert meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
            assert meta.TransferSyntaxUID in (ExplicitVRLittleEndian, RLELossless)
            syntaxes.append(meta.TransferSyntaxUID)
            photometric.append(ds.PhotometricInterpretation)
            assert ds.Modality == "CR" and ds.ViewPosition == "PA"
            assert (ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation) == (16, 12, 11, 0)
            assert ds.SamplesPerPixel == 1 and ds.Rows == ds.Columns == s.size
            assert ds.PatientID == r["IID"] and str(ds.PatientName) == f"DEMO^{r['IID']}"
            assert ds.PatientBirthDate == "" and ds.StudyDate == "" and "InstitutionName" not in ds
            assert float(ds.RescaleSlope) > 0 and "RescaleIntercept" in ds
            assert float(ds.WindowWidth) > 0 and "WindowCenter" in ds
            assert ("DERIVED" in ds.ImageType) == bone
            px = ds.pixel_array
            assert px.dtype == np.uint16 and px.shape == (s.size, s.size) and px.max() <= 4095
            assert px.std() > 50  # an image, not a blank
    rle = np.mean([t == RLELossless for t in syntaxes])
    mono1 = np.mean([p == "MONOCHROME1" for p in photometric])
    assert abs(rle - 0.25) < 0.01 and abs(s.n_rle_files / len(syntaxes) - rle) < 1e-9, (seed, rle)
    assert set(photometric) == {"MONOCHROME1", "MONOCHROME2"} and 0.3 < mono1 < 0.5, (seed, mono1)


def test_rle_files_decode_with_pydicoms_own_decoder(cohort):
    s = cohort
    from pydicom.pixels import pixel_array
    n = 0
    for p in sorted(s.out.rglob("*.dcm"))[:80]:
        ds = pydicom.dcmread(p)
        if ds.file_meta.TransferSyntaxUID == RLELossless:
            a = pixel_array(ds, decoding_plugin="pydicom")
            assert a.shape == (s.size, s.size) and a.max() <= 4095
            n += 1
    assert n > 5


def test_plink_files(cohort):
    s = cohort
    seed = s.seed
    prefix = str(s.paths["plink_prefix"])
    with open_bed(prefix + ".bed", count_A1=True) as bed:
        g = bed.read(dtype="float32")  # (N, M) A1 counts, NaN missing
        iid, chrom, pos, a1, a2 = bed.iid, bed.chromosome, bed.bp_position, bed.allele_1, bed.allele_2
        sid = bed.sid
    assert g.shape == (s.n_genotyped, s.n_snps)
    missing = np.isnan(g).mean()
    assert 0.007 < missing < 0.013, (seed, missing)
    labels = {r["IID"] for r in _rows(s.paths["labels"])}
    imaged = {r["IID"] for r in _rows(s.paths["manifest"])}
    assert set(iid) <= labels and list(iid) == sorted(iid)
    no_geno = len(imaged - set(iid)) / len(imaged)
    assert abs(no_geno - 0.10) < 0.01 and s.n_imaged_without_genotype == len(imaged - set(iid)), seed
    assert 1 <= len(set(iid) - imaged) == s.n_genotyped_without_image <= 0.04 * s.n_individuals
    assert len(set(chrom)) >= 2 and len(set(sid)) == s.n_snps and all(x.startswith("rs") for x in sid)
    for c in set(chrom):
        assert (np.diff(pos[chrom == c]) > 0).all()
    assert all(x in "ACGT" and y in "ACGT" and x != y for x, y in zip(a1, a2))
    # A1 frequency = MAF by construction, drawn in [0.05, 0.5]; with ~180 people a SNP's sample
    # frequency has sd ≈ 0.012 near 0.05, so the smallest of 400 reaches 0.014 in some seeds.
    freq = np.nanmean(g, axis=0) / 2
    assert 0.005 < freq.min() and freq.max() < 0.58 and abs(freq.mean() - 0.275) < 0.03, seed


def test_plink_has_ld_blocks(cohort):
    s = cohort
    seed = s.seed
    with open_bed(str(s.paths["plink_prefix"]) + ".bed") as bed:
        g = bed.read(dtype="float64")
    g = np.where(np.isnan(g), np.nanmean(g, axis=0), g)
    z = (g - g.mean(0)) / g.std(0)
    r_adjacent = np.mean((z[:, 1:] * z[:, :-1]).mean(0) ** 2)
    r_far = np.mean((z[:, 100:] * z[:, :-100]).mean(0) ** 2)
    assert r_adjacent > 0.1 and r_far < 0.03 and r_adjacent > 5 * r_far, (seed, r_adjacent, r_far)


def test_prs_and_burden_tables(cohort):
    s = cohort
    seed = s.seed
    prs = _rows(s.paths["prs"])
    burden = _rows(s.paths["burden"])
    with open_bed(str(s.paths["plink_prefix"]) + ".bed") as bed:
        genotyped = list(bed.iid)
    assert [r["IID"] for r in prs] == genotyped == [r["IID"] for r in burden]
    assert list(prs[0]) == ["FID", "IID", "prs"] and list(burden[0])[:2] == ["FID", "IID"]
    empty = np.mean([r["prs"] == "" for r in prs])
    assert abs(empty - 0.10) < 0.01, (seed, empty)
    genes = list(burden[0])[2:]
    assert len(genes) >= 3
    counts = np.array([[int(r[g]) for g in genes] for r in burden])
    assert counts.min() >= 0 and counts.sum() > 0


def test_readme_documents_the_model(cohort):
    s = cohort
    seed = s.seed
    text = s.paths["readme"].read_text()
    assert "SYNTHETIC" in text and f"seed={seed}" in text
    for needle in ("h2 = 0.5", "RLE Lossless", "MONOCHROME1", "burden", "missing", "cardiomegaly"):
        assert needle in text, needle
