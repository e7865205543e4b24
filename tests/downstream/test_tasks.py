"""The task registry: the built-in tasks dispatch their metrics, and a new task is its file plus
one register line (a toy task, run end to end through the CLI in both modes)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from medcl.cli import main
from medcl.downstream.tasks import TASKS, get_task, register


def test_the_builtin_tasks_are_registered_with_their_metrics():
    assert list(TASKS)[:4] == ["binary", "multiclass", "ordinal", "regression"]
    assert {n: (TASKS[n].metrics, TASKS[n].headline) for n in ("binary", "ordinal", "regression")} == {
        "binary": (("auc", "accuracy"), "auc"), "ordinal": (("accuracy", "qwk"), "qwk"),
        "regression": (("r2", "mse"), "r2")}
    assert get_task("multiclass").headline == "accuracy"


def test_an_unknown_task_or_a_second_one_of_a_name_is_refused():
    from medcl.errors import ConfigError
    with pytest.raises(ConfigError, match="unknown task 'segmentation'") as err:
        get_task("segmentation")
    assert "binary, multiclass, ordinal, regression" in str(err.value)
    with pytest.raises(ValueError, match="already registered"):
        register(TASKS["binary"])


def test_the_heads_losses_and_predictions_follow_the_task():
    import torch
    out = torch.tensor([[2.0, 0.0], [0.0, 1.0], [0.5, 0.5]])
    binary = get_task("binary")
    pred, proba = binary.predict(out, binary.target_stats(np.array([0, 1])))
    assert pred.tolist() == [0, 1, 0] and np.allclose(proba.sum(1), 1.0) and binary.outputs(2) == 2
    assert float(binary.loss(out, torch.tensor([0, 1, 1]), (0.0, 1.0))) > 0
    reg = get_task("regression")
    stats = reg.target_stats(np.array([1.0, 3.0]))                     # mean 2, sd 1
    assert stats == (2.0, 1.0) and reg.outputs(None) == 1
    pred, proba = reg.predict(torch.tensor([[0.5], [-1.0]]), stats)
    assert pred.tolist() == [2.5, 1.0] and proba is None
    assert float(reg.loss(torch.tensor([[0.0], [0.0]]), torch.tensor([2.0, 4.0]), stats)) == pytest.approx(2.0)  # (0² + 2²) / 2


@pytest.fixture
def rank_task():
    import importlib.util
    from pathlib import Path
    spec = importlib.util.spec_from_file_location("toy_task", Path(__file__).with_name("toy_task.py"))
    toy_task = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(toy_task)
    register(toy_task.Rank())                   # the one registry line a new task needs
    yield TASKS["rank"]
    TASKS.pop("rank")


def test_a_toy_task_scores_through_the_registry(rank_task):
    from medcl.downstream.labels import undefined_metrics
    from medcl.downstream.metrics import constant_scores, scores
    s = scores("rank", np.array([1.0, 2.0, 3.0, 4.0]), np.array([0.1, 0.3, 0.2, 0.9]), None)
    assert s["spearman"] == pytest.approx(0.8) and s["mae"] == pytest.approx(np.mean([0.9, 1.7, 2.8, 3.1]))
    assert np.isnan(constant_scores("rank", np.array([1.0, 3.0]), np.array([1.0, 2.0]), None)["spearman"])
    assert set(undefined_metrics("rank", rank_task.metrics, "test", 5, 1)) == {"spearman"}


@pytest.mark.parametrize("mode", ["linear", "full"])
def test_a_toy_task_runs_end_to_end(rank_task, cohort, weights, tmp_path, capsys, mode):
    out = tmp_path / "ft"
    assert main(["finetune", weights, "--data", str(cohort / "manifest.csv"), "--labels", str(cohort / "labels.csv"),
                 "--target", "bone_density", "--task", "rank", "--mode", mode, "--epochs", "2", "--fractions", "1",
                 "--repeats", "1", "--baseline", "pixels", "--batch-size", "8", "--workers", "0",
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    report = json.loads((out / "metrics.json").read_text())
    assert report["task"] == "rank" and report["metrics"] == ["spearman", "mae"] and report["headline"] == "spearman"
    assert [r["encoder"] for r in report["summary"]] == ["pretrained", "pixels"]
    assert all(np.isfinite(r["mae"]["mean"]) and -1 <= r["spearman"]["mean"] <= 1 for r in report["summary"])
    assert "no order: Spearman undefined" in printed and "spearman, pretrained vs raw pixels" in printed
