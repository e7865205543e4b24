"""Scores of a downstream task (through its registered :class:`~medcl.downstream.tasks.base.Task`),
the constant predictor beside the encoders, and the summary over repeats."""
from __future__ import annotations

import warnings

import numpy as np

from medcl.downstream.tasks import get_task


def scores(task: str, y: np.ndarray, pred: np.ndarray, proba: np.ndarray | None) -> dict[str, float]:
    """The task's metrics on (y, pred, proba); NaN where the labels cannot define one (a single
    class for AUC and kappa, a constant target or a single sample for R²)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")                     # sklearn's own warnings on undefined metrics
        return get_task(task).scores(y, pred, proba)


def constant_scores(task: str, y_train: np.ndarray, y_test: np.ndarray, n_classes: int | None) -> dict[str, float]:
    """Scores of a predictor that ignores the image: the training mean (regression), else the
    training class frequencies as probabilities and the most common training class as prediction."""
    t = get_task(task)
    return scores(task, t.cast(y_test), *t.constant(y_train, len(y_test), n_classes))


def selection_score(task: str, s: dict) -> float:
    """The task's headline metric in ``s``: higher is better; it selects models and decides verdicts."""
    return s.get(get_task(task).headline)


def summarize(values: list[dict]) -> dict:
    """{metric: mean, sd, min, max over the finite values (NaN when none), values}."""
    out = {}
    for k in values[0]:
        vals = [float(v[k]) for v in values]
        ok = [v for v in vals if np.isfinite(v)]
        stat = (float(np.mean(ok)), float(np.std(ok)), float(min(ok)), float(max(ok))) if ok else (float("nan"),) * 4
        out[k] = dict(zip(("mean", "sd", "min", "max"), stat), values=vals)
    return out
