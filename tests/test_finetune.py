"""medcl.finetune: metrics per task, label subsampling, table formatting."""
from __future__ import annotations

import numpy as np
import pytest

from medcl.finetune import format_table, scores, subsample_people, summarize


def test_scores_per_task():
    y = np.array([0, 1, 1, 0, 1])
    proba = np.array([[0.9, 0.1], [0.2, 0.8], [0.4, 0.6], [0.3, 0.7], [0.1, 0.9]])
    s = scores("binary", y, proba.argmax(1), proba)
    assert s["accuracy"] == pytest.approx(0.8) and s["auc"] == pytest.approx(5 / 6)
    y3 = np.array([0, 1, 2, 2, 1, 0])
    p3 = np.eye(3)[[0, 1, 2, 1, 1, 0]] * 0.8 + 0.2 / 3
    s = scores("multiclass", y3, p3.argmax(1), p3)
    assert s["accuracy"] == pytest.approx(5 / 6) and 0.5 < s["macro_auc"] <= 1
    s = scores("ordinal", y3, np.array([0, 1, 2, 1, 1, 0]), p3)
    assert s["accuracy"] == pytest.approx(5 / 6) and 0 < s["qwk"] < 1
    assert scores("ordinal", y3, y3, p3)["qwk"] == pytest.approx(1.0)
    s = scores("regression", np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 4.0]), None)
    assert s["mse"] == pytest.approx(1 / 3) and s["r2"] == pytest.approx(0.5)


def test_subsample_keeps_every_class_and_is_seeded():
    people = np.arange(100)
    y = (people % 10 == 0).astype(float)          # 10 positives
    a = subsample_people(people, y, 0.05, "binary", seed=1)
    assert len(a) == 5 and set(y[a]) == {0.0, 1.0}
    assert (a == subsample_people(people, y, 0.05, "binary", seed=1)).all()
    assert not (a == subsample_people(people, y, 0.05, "binary", seed=2)).all()
    assert len(subsample_people(people, y, 1.0, "regression", seed=0)) == 100


def test_summary_and_table():
    s = summarize([{"auc": 0.6}, {"auc": 0.8}])
    assert s["auc"]["mean"] == pytest.approx(0.7) and s["auc"]["sd"] == pytest.approx(0.1)
    text = format_table({"target": "t", "task": "binary", "metrics": ["auc"],
                         "summary": [{"encoder": "pretrained", "fraction": 0.1, **s}]})
    assert "0.7000 ± 0.1000" in text
