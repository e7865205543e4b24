"""Regression: a numeric target, a ridge probe, a one-output head trained with MSE on the
standardised target; R² (the headline) and MSE."""
from __future__ import annotations

import numpy as np

from medcl.downstream.tasks.base import defined


class Regression:
    name = "regression"
    metrics = ("r2", "mse")
    headline = "r2"
    stratified = False
    label_word = "value"
    one_label_undefined = ("r2",)
    one_label_why = "every labelled person in the {split} split has the same value (R² divides by its variance)"
    constant_note = "constant: always predicts the training mean (what R² and MSE are worth without the image)"

    def fits(self, values) -> bool:
        return values.dropna().dtype != object

    def code(self, values):
        return None, values.to_numpy(np.float64, na_value=np.nan)

    def cast(self, y):
        return y

    def scores(self, y, pred, proba):
        from sklearn import metrics as M

        y = np.asarray(y)
        return {"r2": defined(len(np.unique(y)) > 1, lambda: M.r2_score(y, pred)),
                "mse": float(M.mean_squared_error(y, pred))}

    def constant(self, y_train, n, n_classes):
        return np.full(n, float(np.mean(y_train))), None

    def linear_models(self, strengths):
        from sklearn.linear_model import Ridge

        for c in strengths:
            yield Ridge(alpha=1.0 / c)

    def predict_linear(self, model, x, n_classes):
        return model.predict(x), None

    def outputs(self, n_classes):
        return 1

    def target_stats(self, y):
        return float(np.mean(y)), float(np.std(y) or 1.0)

    def loss(self, out, target, stats):
        from torch.nn import functional as F

        mean, std = stats
        return F.mse_loss(out.squeeze(1), (target.float() - mean) / std)

    def predict(self, out, stats):
        mean, std = stats
        return out.squeeze(1).numpy() * std + mean, None
