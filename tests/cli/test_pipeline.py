"""medcl pretrain → embed → finetune on a tiny demo cohort, through the CLI."""
from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from medcl.cli import main

TINY = ["--arch", "resnet18", "--width", "0.125", "--image-size", "32", "--batch-size", "8", "--workers", "0",
        "--genetics-hidden", "16", "--head-hidden", "16", "--proj-dim", "8", "--log-every", "1"]


@pytest.fixture(scope="module")
def run(cohort, tmp_path_factory):
    run = tmp_path_factory.mktemp("run") / "r"
    rc = main(["pretrain", "--data", str(cohort / "manifest.csv"), "--genotypes", str(cohort / "genotypes/demo"),
               "--prs", str(cohort / "prs.csv"), "--modalities", "image,snp,prs", "--out", str(run),
               "--epochs", "1", *TINY])
    assert rc == 0
    return run


def test_pretrain_writes_the_run_folder(run):
    for name in ("config.yaml", "metrics.csv", "checkpoints/last.pt", "encoder.safetensors"):
        assert (run / name).is_file(), name
    metrics = pd.read_csv(run / "metrics.csv")
    assert {"loss", "loss_snp", "loss_prs", "lr", "samples_per_s"} <= set(metrics.columns)
    assert "val_snp_top5" in metrics.columns and "val_snp_chance_top5" in metrics.columns
    from medcl.train.export import load_weights
    state, meta = load_weights(run / "encoder.safetensors")
    assert meta["counted_allele"] == "a1" and meta["config"]["modalities"] == ["snp", "prs"]
    assert "snp" in meta["genetics_stats"] and meta["preprocessing"]["image_size"] == 32
    assert any(k.startswith("image_encoder.") for k in state)


def test_resume_continues_and_refuses_to_overwrite(run, cohort, capsys):
    args = ["pretrain", "--data", str(cohort / "manifest.csv"), "--genotypes", str(cohort / "genotypes/demo"),
            "--prs", str(cohort / "prs.csv"), "--modalities", "image,snp,prs", "--out", str(run), *TINY]
    assert main([*args, "--epochs", "2"]) == 2                       # exists, no --resume
    assert "already exists" in capsys.readouterr().err
    steps_before = len(pd.read_csv(run / "metrics.csv").dropna(subset=["loss"]))
    assert main([*args, "--epochs", "2", "--resume", "auto"]) == 0
    assert len(pd.read_csv(run / "metrics.csv").dropna(subset=["loss"])) == 2 * steps_before
    assert "epochs: 2\n" in (run / "config.yaml").read_text()          # the longer run is recorded
    assert main(["pretrain", "--out", str(run), "--resume", "auto"]) == 0  # the run's own settings: nothing left
    assert len(pd.read_csv(run / "metrics.csv").dropna(subset=["loss"])) == 2 * steps_before


def test_resume_refuses_changed_settings_and_writes_nothing(run, cohort, tmp_path, capsys):
    before = {p: p.read_bytes() for p in [run / "config.yaml", *sorted((run / "checkpoints").iterdir())]}
    for args, says in [(["--lr", "0.01", "--width", "0.25"], "--width 0.25 (the run has 0.125), --lr 0.01 (the run has 0.001)"),
                       (["--method", "simclr"], "--method simclr (the run has contig)"),
                       (["--batch-size", "4"], "global batch of 8 images (--batch-size × processes), this run has 4")]:
        assert main(["pretrain", "--out", str(run), "--resume", "auto", *args]) == 2
        err = capsys.readouterr().err
        assert says in err and "Traceback" not in err, err
        assert "--init-from" in err and "--out NEW_RUN" in err
    elsewhere = tmp_path / "ck.pt"                                      # no config.yaml beside it
    elsewhere.write_bytes((run / "checkpoints" / "last.pt").read_bytes())
    assert main(["pretrain", "--method", "simclr", "--data", str(cohort / "manifest.csv"), "--resume", str(elsewhere),
                 "--out", str(tmp_path / "new"), *TINY]) == 2
    assert "checkpoint is of a contig run, not simclr" in capsys.readouterr().err
    assert not (tmp_path / "new").exists()
    assert {p: p.read_bytes() for p in before} == before and sorted((run / "checkpoints").iterdir()) == sorted(
        p for p in before if p.parent.name == "checkpoints")


def test_refused_start_leaves_nothing_behind(cohort, tmp_path, capsys):
    """A start refused after the data were read (exit 2) writes nothing, so the corrected
    command is not refused as 'already exists'."""
    args = ["pretrain", "--data", str(cohort / "manifest.csv"), "--genotypes", str(cohort / "genotypes/demo"), *TINY]
    assert main([*args, "--out", str(tmp_path / "run"), "--batch-size", "500"]) == 2
    assert "training split has fewer than 500 images" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
    (tmp_path / "empty").mkdir()
    assert main([*args, "--out", str(tmp_path / "empty"), "--batch-size", "500"]) == 2
    assert list((tmp_path / "empty").iterdir()) == []


def test_pretrain_log_is_short_and_curves_are_drawn(cohort, tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["pretrain", "--method", "simclr", "--data", str(cohort / "manifest.csv"), "--out", str(out),
                 "--epochs", "2", *TINY]) == 0
    lines = capsys.readouterr().err.strip().splitlines()
    epochs = [ln for ln in lines if ln.startswith("medcl: epoch ")]
    assert [ln.split(":")[1] for ln in epochs] == [" epoch 1/2 (step 7)", " epoch 2/2 (step 14)"], lines  # 56 // 8
    assert all("view-1 → view-2 top-1" in ln and "(chance " in ln for ln in epochs)
    for number in re.findall(r"\d+(?:\.\d+)?", " ".join(epochs)):     # 3 significant digits at most
        assert len(number.replace(".", "").lstrip("0")) <= 3, number
    assert len(lines) <= 8 and not any("epoch 0" in ln for ln in lines), lines
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    m = pd.read_csv(out / "metrics.csv")
    assert sorted(set(m.loc[m["loss"].notna(), "epoch"])) == [1, 2]
    assert list(m.loc[m["val_loss"].notna(), "epoch"]) == [1, 2]


def test_ctrl_c_checkpoints_and_resume_auto_finishes(cohort, tmp_path):
    import signal
    import subprocess
    import sys
    import time

    run = tmp_path / "r"
    args = ["pretrain", "--data", str(cohort / "manifest.csv"), "--genotypes", str(cohort / "genotypes/demo"),
            "--epochs", "3", "--checkpoint-every", "0", *TINY, "--out", str(run)]
    p = subprocess.Popen([sys.executable, "-m", "medcl.cli", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    deadline = time.time() + 120
    while time.time() < deadline and p.poll() is None:
        if (run / "metrics.csv").is_file() and len((run / "metrics.csv").read_text().splitlines()) >= 3:
            break
        time.sleep(0.01)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 130, err
    assert "stopped on signal SIGINT after saving" in err and "resume with --resume auto" in err
    stopped = pd.read_csv(run / "metrics.csv").dropna(subset=["loss"])["step"].max()
    assert (run / "checkpoints" / f"step-{stopped}.pt").is_file()        # no step lost
    assert main(["pretrain", "--out", str(run), "--resume", "auto"]) == 0
    steps = pd.read_csv(run / "metrics.csv").dropna(subset=["loss"])["step"].tolist()
    assert steps == list(range(1, len(steps) + 1)) and len(steps) % 3 == 0


def test_embed_pheno_reads_like_plink2(run, cohort, tmp_path):
    out = tmp_path / "emb.pheno"
    assert main(["embed", str(run / "encoder.safetensors"), "--data", str(cohort / "manifest.csv"),
                 "--out", str(out), "--format", "pheno", "--pca", "3", "--workers", "0"]) == 0
    table = pd.read_csv(out, sep=r"\s+")
    assert list(table.columns) == ["FID", "IID", "PC_0", "PC_1", "PC_2"]
    assert table[["FID", "IID"]].duplicated().sum() == 0
    manifest = pd.read_csv(cohort / "manifest.csv", dtype=str)
    assert len(table) == manifest[["FID", "IID"]].drop_duplicates().shape[0]
    assert open(out).readline().split() == ["FID", "IID", "PC_0", "PC_1", "PC_2"]
    emb = tmp_path / "emb.csv"
    assert main(["embed", str(run / "checkpoints" / "last.pt"), "--data", str(cohort / "manifest.csv"),
                 "--out", str(emb), "--format", "csv", "--workers", "0"]) == 0
    rows = pd.read_csv(emb)
    assert len(rows) == len(manifest) and list(rows.columns[:3]) == ["FID", "IID", "path"]


@pytest.mark.parametrize("target,task,metric", [("cardiomegaly", "binary", "auc"),
                                                ("bone_density", "regression", "r2")])
def test_finetune_reports_both_encoders(run, cohort, tmp_path, capsys, target, task, metric):
    out = tmp_path / "ft"
    assert main(["finetune", str(run / "encoder.safetensors"), "--data", str(cohort / "manifest.csv"),
                 "--labels", str(cohort / "labels.csv"), "--target", target, "--task", task,
                 "--fractions", "0.5,1", "--repeats", "2", "--out", str(out), "--workers", "0"]) == 0
    report = json.loads((out / "metrics.json").read_text())
    assert [(r["encoder"], r["fraction"]) for r in report["summary"]] == [
        ("pretrained", 0.5), ("pretrained", 1.0), ("random", 0.5), ("random", 1.0), ("pixels", 0.5), ("pixels", 1.0)]
    assert len(report["summary"][0][metric]["values"]) == 2
    assert {"auc": "AUC", "r2": "R²"}[metric] in capsys.readouterr().out


def test_finetune_unknown_target_is_exit_2(run, cohort, tmp_path, capsys):
    assert main(["finetune", str(run / "encoder.safetensors"), "--data", str(cohort / "manifest.csv"),
                 "--labels", str(cohort / "labels.csv"), "--target", "nope", "--out", str(tmp_path)]) == 2
    assert "no column 'nope'" in capsys.readouterr().err


def test_sigterm_then_resume_matches_an_uninterrupted_run(cohort, tmp_path):
    """The real pipeline (loader, augmentation, ContIG) resumes bitwise on CPU after SIGTERM."""
    import signal
    import subprocess
    import sys
    import time

    args = ["pretrain", "--data", str(cohort / "manifest.csv"), "--genotypes", str(cohort / "genotypes/demo"),
            "--epochs", "4", "--checkpoint-every", "1", *TINY]
    straight = tmp_path / "straight"
    assert main([*args, "--out", str(straight)]) == 0
    run = tmp_path / "stopped"
    p = subprocess.Popen([sys.executable, "-m", "medcl.cli", *args, "--out", str(run)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (run / "checkpoints" / "step-2.pt").exists() and time.time() < deadline and p.poll() is None:
        time.sleep(0.01)
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 143, err
    assert "resume with --resume auto" in err
    assert main([*args, "--out", str(run), "--resume", "auto"]) == 0

    def losses(d):
        m = pd.read_csv(d / "metrics.csv", dtype=str)
        return m[["step", "loss", "loss_snp"]].dropna().values.tolist()
    assert losses(run) == losses(straight)


@pytest.mark.parametrize("target,task,metric", [("cardiomegaly", "binary", "auc"),
                                                ("bone_density", "regression", "r2")])
def test_finetune_full_mode(run, cohort, tmp_path, target, task, metric):
    out = tmp_path / "ft"
    assert main(["finetune", str(run / "encoder.safetensors"), "--data", str(cohort / "manifest.csv"),
                 "--labels", str(cohort / "labels.csv"), "--target", target, "--task", task, "--mode", "full",
                 "--epochs", "2", "--fractions", "1", "--repeats", "1", "--baseline", "none",
                 "--batch-size", "8", "--out", str(out), "--workers", "0"]) == 0
    report = json.loads((out / "metrics.json").read_text())
    assert [r["encoder"] for r in report["summary"]] == ["pretrained"]
    value = report["summary"][0][metric]["mean"]
    assert np.isfinite(value) and (task == "regression" or 0.0 <= value <= 1.0)


def test_pretrain_reads_a_prepared_dataset_with_the_same_batches(cohort, tmp_path):
    """`medcl prepare` shards feed pretraining (workers read bytes only) and give exactly the
    losses of the same run reading the DICOM files, for two methods."""
    assert main(["prepare", str(cohort / "manifest.csv"), "--out", str(tmp_path / "ds"), "--workers", "1"]) == 0
    for method in ("simclr", "puzzle"):
        losses = []
        for data in (cohort / "manifest.csv", tmp_path / "ds"):
            out = tmp_path / f"{method}-{data.name}"
            extra = ["--image-size", "48"] if method == "puzzle" else []
            assert main(["pretrain", "--method", method, "--data", str(data), "--out", str(out), "--epochs", "1",
                         "--decode", "cpu", *TINY, *extra]) == 0
            losses.append(pd.read_csv(out / "metrics.csv")["loss"].dropna().to_numpy())
        np.testing.assert_allclose(losses[0], losses[1], rtol=1e-5)


def test_decode_gpu_needs_a_gpu(cohort, tmp_path, capsys):
    import torch
    if torch.cuda.is_available():
        pytest.skip("a GPU is visible")
    rc = main(["pretrain", "--method", "simclr", "--data", str(cohort / "manifest.csv"), "--out", str(tmp_path / "r"),
               "--decode", "gpu", "--device", "cpu", *TINY])
    assert rc == 2 and "--decode gpu needs a CUDA device" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()
