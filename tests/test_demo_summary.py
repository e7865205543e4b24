"""make demo's closing summary: it restates what the run and the finetune reports found."""
from __future__ import annotations

import json

import yaml

from medcl.demo_summary import main, summarize


def _run(folder, top1):
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(yaml.safe_dump({"method": "contig", "arch": "resnet18", "width": 0.25,
                                                        "image_size": 96}))
    rows = ["step,epoch,loss,train_loss,val_loss,val_snp_top1,val_snp_chance_top1",
            "10,1,3.9,,,,",
            f"20,1,,3.8,3.5,{top1},0.01",
            f"40,2,,3.6,3.4,{top1},0.01"]
    (folder / "metrics.csv").write_text("\n".join(rows) + "\n")
    (folder / "curves.png").write_bytes(b"png")


def _finetune(folder, verdict):
    folder.mkdir(parents=True)
    stat = {"mean": 0.7, "sd": 0.01}
    (folder / "metrics.json").write_text(json.dumps({
        "target": "cardiomegaly", "task": "binary", "headline": "auc", "constant": {"auc": 0.5},
        "summary": [{"encoder": "pretrained", "fraction": 1.0, "auc": stat},
                    {"encoder": "pixels", "fraction": 1.0, "auc": {"mean": 0.9, "sd": 0.0}},
                    {"encoder": "pretrained", "fraction": 0.1, "auc": stat}],
        "verdict": verdict}))


def test_summary_names_pictures_and_restates_the_findings(tmp_path, capsys):
    _run(tmp_path / "run", top1=0.01)                       # retrieval at chance
    _finetune(tmp_path / "finetune-cardiomegaly", ["pretraining did not help here: …"])
    (tmp_path / "finetune-cardiomegaly" / "label_efficiency.png").write_bytes(b"png")
    assert main([str(tmp_path)]) == 0
    text = capsys.readouterr().out
    assert (tmp_path / "SUMMARY.md").read_text().strip() == text.strip()
    assert "2 epochs" in text and "no better than chance" in text
    assert "pretrained 0.700 ± 0.010, raw pixels 0.900 ± 0.000, constant predictor 0.500" in text
    assert "pretraining did not help here" in text
    assert str(tmp_path / "run" / "curves.png") in text
    assert str(tmp_path / "finetune-cardiomegaly" / "label_efficiency.png") in text


def test_sound_run_is_called_sound(tmp_path):
    _run(tmp_path / "run", top1=0.5)
    text = summarize(tmp_path)
    assert "look sound" in text and "no better than chance" not in text


def test_usage_error_without_a_folder(tmp_path, capsys):
    assert main([str(tmp_path / "nothere")]) == 2
    assert "usage" in capsys.readouterr().err
