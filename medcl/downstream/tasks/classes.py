"""Tasks whose labels are classes, coded 0..K-1 in sorted order: a softmax head trained with
cross-entropy, a logistic-regression probe, accuracy plus one metric of the task's own:
  binary      exactly 2 values; AUC of the second class (the positive one)
  multiclass  class names or whole numbers; macro AUC (one-vs-rest over the classes in the split)
  ordinal     whole numbers (grades); quadratic-weighted kappa, as APTOS is scored
"""
from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from medcl.downstream.tasks.base import defined, whole_numbers


class ClassTask(ABC):
    """The shared part of the class tasks; a subclass names its metrics and defines its own one
    (``metric``, undefined on a split whose labels are all one class) and which columns fit."""

    name: str
    metrics: tuple[str, ...]
    headline: str
    metric: str                       # the task's own metric beside accuracy
    stratified = True
    label_word = "class"
    one_label_why = "every labelled person in the {split} split has the same class"
    constant_note = ("constant: ignores the image (AUC 0.5, kappa 0; accuracy: always answering the most common "
                     "training class, the majority-class rate)")

    @property
    def one_label_undefined(self) -> tuple[str, ...]:
        return (self.metric,)

    @abstractmethod
    def fits(self, values) -> bool:
        """Whether a label column can be this task."""

    @abstractmethod
    def own_metric(self, y, pred, proba, present) -> float:
        """The task's own metric (NaN where ``present``, the classes in ``y``, cannot define it)."""

    # -- labels -----------------------------------------------------------------------------------
    def code(self, values):
        import pandas as pd

        classes = sorted(pd.unique(values.dropna()).tolist())
        code = {c: float(i) for i, c in enumerate(classes)}
        return classes, np.array([np.nan if pd.isna(x) else code[x] for x in values], dtype=np.float64)

    def cast(self, y):
        return np.asarray(y).astype(np.int64)

    # -- scores -----------------------------------------------------------------------------------
    def scores(self, y, pred, proba):
        from sklearn import metrics as M

        y = np.asarray(y)
        out = {"accuracy": float(M.accuracy_score(y, pred))}
        out[self.metric] = self.own_metric(y, pred, proba, np.unique(y))
        return out

    def constant(self, y_train, n, n_classes):
        freq = np.bincount(np.asarray(y_train).astype(np.int64), minlength=n_classes) / len(y_train)
        return np.full(n, int(np.argmax(freq))), np.tile(freq, (n, 1))

    # -- linear probe -----------------------------------------------------------------------------
    def linear_models(self, strengths):
        from sklearn.linear_model import LogisticRegression

        logistic = LogisticRegression(max_iter=2000, warm_start=True)   # each C starts from the previous solution
        for c in strengths:
            yield logistic.set_params(C=c)

    def predict_linear(self, model, x, n_classes):
        """proba has a column per class code 0..n_classes-1 (0 for a class the training draw lacked)."""
        p = model.predict_proba(x)
        proba = np.zeros((len(x), max(n_classes or 0, int(model.classes_.max()) + 1)))
        proba[:, model.classes_.astype(np.int64)] = p
        return model.predict(x), proba

    # -- full fine-tuning -------------------------------------------------------------------------
    def outputs(self, n_classes):
        return int(n_classes)

    def target_stats(self, y):
        return 0.0, 1.0

    def loss(self, out, target, stats):
        from torch.nn import functional as F

        return F.cross_entropy(out, target.long())

    def predict(self, out, stats):
        proba = out.softmax(1).numpy()
        return proba.argmax(1), proba


class Binary(ClassTask):
    name, metric, metrics, headline = "binary", "auc", ("auc", "accuracy"), "auc"

    def fits(self, values):
        import pandas as pd

        return len(pd.unique(values.dropna())) == 2

    def own_metric(self, y, pred, proba, present):
        from sklearn import metrics as M

        return defined(len(present) == 2, lambda: M.roc_auc_score(y, proba[:, 1]))


class Multiclass(ClassTask):
    name, metric, metrics, headline = "multiclass", "macro_auc", ("accuracy", "macro_auc"), "accuracy"

    def fits(self, values):
        v = values.dropna()
        return v.dtype == object or whole_numbers(v.to_numpy(np.float64))

    def own_metric(self, y, pred, proba, present):   # one-vs-rest AUC averaged over the classes present in y
        from sklearn import metrics as M

        return defined(len(present) > 1,
                       lambda: np.mean([M.roc_auc_score(y == c, proba[:, int(c)]) for c in present]))


class Ordinal(ClassTask):
    name, metric, metrics, headline = "ordinal", "qwk", ("accuracy", "qwk"), "qwk"

    def fits(self, values):
        v = values.dropna()
        return v.dtype != object and whole_numbers(v.to_numpy(np.float64))

    def own_metric(self, y, pred, proba, present):
        from sklearn import metrics as M

        return defined(len(present) > 1, lambda: M.cohen_kappa_score(y, pred, weights="quadratic"))
