"""medcl embed and medcl finetune as a new user meets them: bad input refused up front (exit 2,
nothing written), outputs never overwritten silently, the task inferred, baselines and a picture."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from medcl.cli import main


@pytest.fixture(scope="module")
def weights(cohort, tmp_path_factory):
    run = tmp_path_factory.mktemp("run") / "r"
    assert main(["pretrain", "--method", "simclr", "--data", str(cohort / "manifest.csv"), "--out", str(run),
                 "--epochs", "1", "--arch", "resnet18", "--width", "0.125", "--image-size", "32", "--batch-size", "8",
                 "--workers", "0", "--head-hidden", "16", "--proj-dim", "8"]) == 0
    return str(run / "encoder.safetensors")


def _embed(weights, cohort, out, *extra):
    return main(["embed", weights, "--data", str(cohort / "manifest.csv"), "--out", str(out), "--workers", "0",
                 *extra])


def test_embed_pca_out_of_range_is_refused_before_any_image(weights, cohort, tmp_path, monkeypatch, capsys):
    import medcl.embed

    def no_embedding(*a, **k):
        raise AssertionError("images were embedded before --pca was checked")
    monkeypatch.setattr(medcl.embed, "compute_features", no_embedding)
    for k in ("1000", "0"):
        assert _embed(weights, cohort, tmp_path / "e.pheno", "--format", "pheno", "--pca", k) == 2
        err = capsys.readouterr().err
        assert f"--pca {k} is out of range" in err and "people" in err and "Traceback" not in err
    assert not (tmp_path / "e.pheno").exists()


def test_embed_refuses_to_overwrite_without_overwrite(weights, cohort, tmp_path, capsys):
    out = tmp_path / "emb.csv"
    out.write_text("mine\n")
    assert _embed(weights, cohort, out, "--format", "csv") == 2
    assert "already exists" in capsys.readouterr().err and out.read_text() == "mine\n"
    assert _embed(weights, cohort, out, "--format", "csv", "--overwrite") == 0
    assert list(pd.read_csv(out).columns[:2]) == ["FID", "IID"]


def _finetune(weights, cohort, out, *extra, labels=None, data=None):
    return main(["finetune", weights, "--data", str(data or cohort / "manifest.csv"),
                 "--labels", str(labels or cohort / "labels.csv"), "--out", str(out), "--workers", "0",
                 "--fractions", "0.5,1", "--repeats", "2", *extra])


def test_finetune_infers_the_task_and_shows_baselines_and_a_picture(weights, cohort, tmp_path, capsys):
    out = tmp_path / "ft"
    assert _finetune(weights, cohort, out, "--target", "bone_density") == 0
    printed = capsys.readouterr()
    report = json.loads((out / "metrics.json").read_text())
    assert report["task"] == "regression" and "task: regression (inferred" in printed.err
    assert [r["encoder"] for r in report["summary"]] == ["pretrained"] * 2 + ["random"] * 2 + ["pixels"] * 2
    assert report["constant"]["r2"] <= 0.0                              # the training mean on the test split
    assert "constant" in printed.out and "pixels 16²" in printed.out and "pretrained vs raw pixels" in printed.out
    assert (out / "label_efficiency.png").read_bytes()[:4] == b"\x89PNG"
    assert _finetune(weights, cohort, out, "--target", "bone_density") == 2      # not empty: refused
    assert "--overwrite" in capsys.readouterr().err


@pytest.mark.parametrize("case", ["task", "ids"])
def test_finetune_bad_input_is_exit_2_and_leaves_nothing(weights, cohort, tmp_path, capsys, case):
    out = tmp_path / "ft"
    if case == "task":                                  # a continuous column asked to be binary
        rc = _finetune(weights, cohort, out, "--target", "bone_density", "--task", "binary")
        says = ["--task binary does not fit column 'bone_density'", "regression", "labels.csv"]
    else:                                               # IDs spelt differently in the labels
        labels = pd.read_csv(cohort / "labels.csv", dtype=str)
        labels["IID"] = labels["IID"].str.lower()
        labels.to_csv(tmp_path / "lab.csv", index=False)
        rc = _finetune(weights, cohort, out, "--target", "cardiomegaly", labels=tmp_path / "lab.csv")
        says = ["lab.csv", "none of the 60 labelled IDs", "FID,IID"]
    err = capsys.readouterr().err
    assert rc == 2 and all(s in err for s in says), err
    assert not out.exists()


def test_finetune_one_test_person_reports_undefined(weights, cohort, tmp_path, capsys):
    manifest = pd.read_csv(cohort / "manifest.csv", dtype=str)
    first = manifest["IID"].iloc[0]
    manifest["split"] = ["test" if i == first else "train" for i in manifest["IID"]]
    manifest.loc[manifest["IID"] == manifest["IID"].iloc[-1], "split"] = "val"
    manifest.to_csv(cohort / "one_test.csv", index=False)            # beside the images: paths stay valid
    out = tmp_path / "ft"
    assert _finetune(weights, cohort, out, "--target", "cardiomegaly", "--baseline", "none",
                     data=cohort / "one_test.csv") == 0
    printed = capsys.readouterr()
    assert "test auc and accuracy undefined: the test split has 1 labelled person" in printed.err
    report = json.loads((out / "metrics.json").read_text())
    assert set(report["undefined"]) == {"auc", "accuracy"}
    assert "undefined" in printed.out and "0.000" not in printed.out
