"""What a downstream task is (:class:`Task`), and helpers its implementations share.

A task says everything ``medcl finetune`` needs to know about one kind of target:
  label reader   ``fits`` (can a label column be this task?) and ``code`` (the column → numbers)
  metrics        ``metrics`` (table order), ``headline`` (higher is better: selects the model and
                 decides the verdict), ``scores`` and the constant predictor beside the encoders
  linear probe   ``linear_models`` (the scikit-learn estimators tried, weakest penalty last) and
                 ``predict_linear``
  full mode      ``outputs`` (width of the linear head), ``target_stats``, ``loss`` and ``predict``
A new task is a class with these members in its own file under ``medcl/downstream/tasks/`` and
one ``register(...)`` line in ``medcl/downstream/tasks/__init__.py``.
"""
from __future__ import annotations

from typing import Iterator, Protocol

import numpy as np


class Task(Protocol):
    name: str                    # what --task calls it
    metrics: tuple[str, ...]     # reported, in table order
    headline: str                # higher is better: chooses the probe's penalty and the epoch; the verdict's metric
    stratified: bool             # a label subsample keeps at least one person of every class
    label_word: str              # what one label is, in messages: "class", "value"
    one_label_undefined: tuple[str, ...]  # metrics a split cannot define when all its labels are equal
    one_label_why: str           # why, with {split}
    constant_note: str           # what the constant predictor is, for the table

    def fits(self, values) -> bool:
        """Whether a label column (pandas Series, missing values included) can be this task."""

    def code(self, values) -> tuple[list | None, np.ndarray]:
        """(classes in code order or None, (N,) float64 label per row, NaN where missing)."""

    def cast(self, y: np.ndarray) -> np.ndarray:
        """Coded labels as the estimators and metrics take them (class codes as int64)."""

    def scores(self, y: np.ndarray, pred: np.ndarray, proba: np.ndarray | None) -> dict[str, float]:
        """Every metric on (y, pred, proba); NaN where the labels cannot define one."""

    def constant(self, y_train: np.ndarray, n: int, n_classes: int | None) -> tuple[np.ndarray, np.ndarray | None]:
        """(pred, proba) for ``n`` people of a predictor that ignores the image."""

    def linear_models(self, strengths) -> Iterator:
        """A scikit-learn estimator per regularisation strength C (larger: weaker penalty)."""

    def predict_linear(self, model, x: np.ndarray, n_classes: int | None) -> tuple[np.ndarray, np.ndarray | None]:
        """(pred, proba) of a fitted probe."""

    def outputs(self, n_classes: int | None) -> int:
        """Width of the linear head in full fine-tuning."""

    def target_stats(self, y: np.ndarray) -> tuple[float, float]:
        """(shift, scale) the training targets are standardised with in full fine-tuning."""

    def loss(self, out, target, stats: tuple[float, float]):
        """The training loss of the head's output (B, outputs) against the batch's targets (B,)."""

    def predict(self, out, stats: tuple[float, float]) -> tuple[np.ndarray, np.ndarray | None]:
        """(pred, proba) from the head's output (B, outputs) in float32."""


def whole_numbers(values: np.ndarray) -> bool:
    """Every value finite and whole (a class code or a grade)."""
    return bool(np.all(np.isfinite(values)) and np.all(values == np.round(values)))


def defined(ok: bool, metric) -> float:
    """``metric()`` as a float where the labels define it (``ok``), else NaN."""
    return float(metric()) if ok else float("nan")
