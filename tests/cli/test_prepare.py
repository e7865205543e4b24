"""``medcl prepare``: exit codes, one-line errors, reruns, config file."""
from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest

from medcl.cli import main


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """Six demo DICOMs in nested folders and one file that is not DICOM."""
    from medcl.demo import generate_cohort

    cohort = tmp_path_factory.mktemp("cohort") / "c"
    generate_cohort(cohort, n=20, snps=100, size=64, seed=2)
    root = tmp_path_factory.mktemp("tree") / "dicoms"
    files = sorted((cohort / "images").rglob("*.dcm"))[:6]
    for i, f in enumerate(files):
        (root / f"d{i % 3}").mkdir(parents=True, exist_ok=True)
        shutil.copy(f, root / f"d{i % 3}" / f.name)
    (root / "README").write_text("not an image\n")
    return root


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def test_missing_source_is_one_line_exit_2(tmp_path, capsys):
    assert main(["prepare", str(tmp_path / "nowhere"), "--out", str(tmp_path / "D")]) == 2
    err = _lines(capsys.readouterr().err)
    assert len(err) == 1 and err[0].startswith("medcl: error: ") and "nowhere: no such file or folder" in err[0]
    assert not (tmp_path / "D").exists()


def test_usage_errors_exit_2(tree, tmp_path, capsys):
    assert main(["prepare", str(tree)]) == 2                                     # no --out
    assert main(["prepare", str(tree), "--out", str(tmp_path / "D"), "--chunk-files", "0"]) == 2
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    capsys.readouterr()
    assert main(["prepare", str(tree), "--out", str(tmp_path / "busy")]) == 2
    err = _lines(capsys.readouterr().err)
    assert len(err) == 1 and "not empty and not a medcl dataset" in err[0] and "Traceback" not in err[0]


def test_prepare_then_rerun_then_other_source(tree, tmp_path, capsys):
    out = tmp_path / "D"
    assert main(["prepare", str(tree), "--out", str(out), "--workers", "1", "--chunk-files", "2"]) == 0
    io = capsys.readouterr()
    assert io.out.strip() == str(out)
    assert "prepared" in io.err and "files/s" in io.err and "skipped 1 of 7 files" in io.err
    assert list(pd.read_csv(out / "bad_files.csv")["path"]) == ["README"]
    meta = json.loads((out / "medcl-dataset.json").read_text())
    assert meta["counts"]["files"] == 7 and meta["counts"]["records"] == 6 and meta["chunks"] == 4

    assert main(["prepare", str(tree), "--out", str(out)]) == 0                   # finished: says so
    io = capsys.readouterr()
    assert "already prepared" in io.err and io.out.strip() == str(out)

    other = tmp_path / "other"
    shutil.copytree(tree, other)
    assert main(["prepare", str(other), "--out", str(out)]) == 2                  # another source: refused
    err = _lines(capsys.readouterr().err)
    assert len(err) == 1 and "is a prepared dataset of" in err[0] and "new --out" in err[0]


def test_config_file_and_manifest_source(tree, tmp_path, capsys):
    rows = [{"FID": f"F{i}", "IID": f"I{i}", "path": str(p.relative_to(tree.parent))}
            for i, p in enumerate(sorted(tree.rglob("*.dcm")))]
    pd.DataFrame(rows).to_csv(tree.parent / "m.csv", index=False)
    (tmp_path / "c.yaml").write_text("prepare:\n  workers: 1\n  chunk-files: 4\n")
    out = tmp_path / "M"
    assert main(["prepare", str(tree.parent / "m.csv"), "--out", str(out), "--config", str(tmp_path / "c.yaml")]) == 0
    meta = json.loads((out / "medcl-dataset.json").read_text())
    assert meta["chunk_files"] == 4 and meta["source"]["kind"] == "manifest"
    assert meta["counts"] == {**meta["counts"], "files": 6, "bad_files": 0, "records": 6}
    assert (out / "manifest.csv").read_text() == (tree.parent / "m.csv").read_text()
    pd.DataFrame(rows).to_csv(tmp_path / "wrong_base.csv", index=False)  # paths from the wrong folder
    capsys.readouterr()
    assert main(["prepare", str(tmp_path / "wrong_base.csv"), "--out", str(tmp_path / "W")]) == 2
    err = _lines(capsys.readouterr().err)
    assert len(err) == 1 and "none of the 6 files" in err[0] and not (tmp_path / "W").exists()
