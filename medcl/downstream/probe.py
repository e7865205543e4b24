"""The linear probe of ``medcl finetune --mode linear`` (and of the raw-pixel baseline in either
mode): frozen features, standardised, and the task's linear model (logistic regression for
classes, ridge for values) with its regularisation chosen on the validation split."""
from __future__ import annotations

import copy
import warnings

import numpy as np

from medcl.downstream.labels import labelled, training_people
from medcl.downstream.metrics import scores, selection_score
from medcl.downstream.tasks import get_task

STRENGTHS = (0.001, 0.01, 0.1, 1.0, 10.0)   # C, the inverse penalty (ridge: alpha = 1 / C)


def fit_linear(task: str, xtr, ytr, xva, yva, *, select: bool = True, n_classes: int | None = None):
    """A standardised linear model, regularisation chosen on validation (``select=False``, when
    the validation split cannot score: the middle strength, C = 1). Returns the fitted model."""
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(xtr)
    xs = scaler.transform(xtr)
    best, best_score = None, -np.inf
    for est in get_task(task).linear_models(STRENGTHS if select else (1.0,)):
        with warnings.catch_warnings():
            # Weak ridge penalties on many standardised features (raw pixels) leave X'X + αI
            # ill-conditioned: scipy warns once per fit, the solution is still the least-squares
            # one, and validation (not the warning) decides whether that strength is any good.
            warnings.filterwarnings("ignore", message="Ill-conditioned matrix")
            warnings.filterwarnings("ignore", message="An ill-conditioned matrix")
            model = make_pipeline(scaler, copy.deepcopy(est.fit(xs, ytr)))
        if not select:
            return model
        s = selection_score(task, scores(task, yva, *predict(task, model, xva, n_classes)))
        if best is None or (np.isfinite(s) and s > best_score):
            best, best_score = model, s
    return best


def predict(task: str, model, x, n_classes: int | None = None):
    """(pred, proba) of a fitted probe; proba has a column per class code 0..n_classes-1."""
    return get_task(task).predict_linear(model, x, n_classes)


def linear_once(cfg, cohort, y_person, feats, rows, frac, seed, select=True, n_classes=None) -> dict:
    """One probe: fit on the features of a seeded ``frac`` of the labelled training people,
    choose on validation, score on test."""
    t = get_task(cfg.task)
    _, keep = training_people(rows["train"], cohort, y_person, frac, cfg.task, seed)
    _, _, y_tr = labelled(rows["train"], cohort, y_person)
    ok_va, _, y_va = labelled(rows["val"], cohort, y_person)
    ok_te, _, y_te = labelled(rows["test"], cohort, y_person)
    model = fit_linear(cfg.task, feats["train"][keep], t.cast(y_tr[keep]), feats["val"][ok_va], t.cast(y_va[ok_va]),
                       select=select, n_classes=n_classes)
    return scores(cfg.task, t.cast(y_te[ok_te]), *predict(cfg.task, model, feats["test"][ok_te], n_classes))
