"""Unreadable images: skipped, written to bad_samples.csv, counted; too many stop the run."""
from __future__ import annotations

import csv
import os
import shutil

import pytest

from medcl.data import BadSampleLog, ContigDataset, ImageDataset, Skipped, load_cohort, make_loader
from medcl.data.bad_samples import reason_of
from medcl.errors import DicomError, MedclError


@pytest.fixture(scope="module")
def broken(demo, tmp_path_factory):
    """A copy of the demo cohort whose first training image holds random bytes: (cohort, row)."""
    root = tmp_path_factory.mktemp("broken") / "cohort"
    shutil.copytree(demo.out, root)
    cohort = load_cohort(root / "manifest.csv", genotypes=root / "genotypes" / "demo")
    row = int(cohort.images_in("train")[0])
    with open(cohort.images.path[row], "wb") as fh:
        fh.write(os.urandom(3000))
    return cohort, row


def _rows(run_dir):
    with open(run_dir / "bad_samples.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def test_bad_image_is_skipped_and_logged(broken, tmp_path):
    cohort, row = broken
    ds = ContigDataset(cohort, "train", image_size=32)
    k = int(list(ds.rows).index(row))
    item = ds[k]
    assert isinstance(item, Skipped) and item.index == row and item.reason.startswith("DicomError: ")
    for workers in (0, 2):
        run = tmp_path / f"w{workers}"
        log = BadSampleLog(run, max_bad_fraction=0.5, min_seen=0)
        batches = list(make_loader(ds, 8, shuffle=True, seed=0, epoch=2, num_workers=workers, bad_log=log))
        kept = [int(i) for b in batches for i in b["index"]]
        assert len(kept) == len(ds) - 1 and row not in kept
        assert sum(b["n"] for b in batches) == len(ds) - 1
        assert (log.bad, log.seen) == (1, len(ds))
        rows = _rows(run)
        assert len(rows) == 1 and set(rows[0]) == {"path", "reason", "epoch"}
        rel = os.path.relpath(cohort.images.path[row], cohort.root)
        assert rows[0]["path"] == rel and not os.path.isabs(rows[0]["path"])
        assert rows[0]["reason"].startswith("DicomError: ") and str(cohort.root) not in rows[0]["reason"]
        assert rows[0]["epoch"] == "2"
    image_ds = ImageDataset(cohort, 32)
    assert isinstance(image_ds[row], Skipped)


def test_too_many_bad_samples_stop_the_run(broken, tmp_path):
    cohort, _ = broken
    ds = ContigDataset(cohort, "train", image_size=32)
    log = BadSampleLog(tmp_path, max_bad_fraction=0.001, min_seen=0)
    with pytest.raises(MedclError, match="could not be read"):
        for _ in make_loader(ds, 4, shuffle=False, seed=0, epoch=0, bad_log=log):
            pass
    assert log.bad == 1 and len(_rows(tmp_path)) == 1
    # under min_seen nothing stops; the check can use counts summed over ranks
    lenient = BadSampleLog(None, max_bad_fraction=0.001, min_seen=10_000)
    for _ in make_loader(ds, 4, shuffle=False, seed=0, epoch=0, bad_log=lenient):
        pass
    assert lenient.bad == 1
    with pytest.raises(MedclError):
        lenient.check(bad=lenient.bad * 100, seen=10_000)
    state = lenient.state_dict()
    again = BadSampleLog(None)
    again.load_state_dict(state)
    assert (again.bad, again.seen) == (lenient.bad, lenient.seen)
    with pytest.raises(MedclError):
        BadSampleLog(tmp_path, max_bad_fraction=2.0)


def test_reasons_carry_no_foreign_text():
    assert reason_of(ValueError("PatientName=Doe^John")) == "ValueError"
    assert reason_of(PermissionError(13, "Permission denied", "/x/y.dcm")) == "PermissionError: Permission denied"
    r = reason_of(DicomError("not a readable DICOM file (KeyError)", path="/data/a.dcm", fix="remove it"))
    assert r == "DicomError: not a readable DICOM file (KeyError) (remove it)"
    log = BadSampleLog(None, rank=1)
    assert log.path is None
    assert BadSampleLog("/tmp/r", rank=1).path.name == "bad_samples.rank1.csv"
