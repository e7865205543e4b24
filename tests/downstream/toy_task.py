"""A toy downstream task, as a new task's file would be: a numeric target scored by how well the
prediction ranks people (Spearman's correlation, the headline) and by mean absolute error.
It reuses regression's label reader, probe and head; only its metrics are its own."""
from __future__ import annotations

import numpy as np

from medcl.downstream.tasks.base import defined
from medcl.downstream.tasks.regression import Regression


class Rank(Regression):
    name = "rank"
    metrics = ("spearman", "mae")
    headline = "spearman"
    one_label_undefined = ("spearman",)
    one_label_why = "every labelled person in the {split} split has the same value (no order to recover)"
    constant_note = "constant: always predicts the training mean (no order: Spearman undefined)"

    def scores(self, y, pred, proba):
        y, pred = np.asarray(y, np.float64), np.asarray(pred, np.float64)

        def spearman():
            ry, rp = (np.argsort(np.argsort(v)).astype(np.float64) for v in (y, pred))
            return np.corrcoef(ry, rp)[0, 1]

        ok = len(np.unique(y)) > 1 and len(np.unique(pred)) > 1
        return {"spearman": defined(ok, spearman), "mae": float(np.mean(np.abs(y - pred)))}
