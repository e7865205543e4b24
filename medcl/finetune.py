"""Downstream evaluation: label-efficiency curves of a pretrained encoder against random init.

For each label fraction and repeat, a subset of the training individuals is drawn; the model is
fit on their images, selected on the validation split and scored on the test split:
  binary      AUC, accuracy          multiclass  accuracy, macro AUC (one-vs-rest)
  ordinal     accuracy, quadratic-weighted kappa (as APTOS is scored)
  regression  R², MSE
``mode="linear"``: frozen encoder features, a standardised linear model from scikit-learn with
its regularisation chosen on validation. ``mode="full"``: encoder + linear head trained end to
end (AdamW), the epoch chosen on validation. ``baseline="random"`` runs the same with a randomly
initialised encoder of the same architecture, side by side.
"""
from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from medcl.device import resolve_device
from medcl.errors import ConfigError

log = logging.getLogger("medcl")

TASKS = ("binary", "multiclass", "ordinal", "regression")
METRICS = {"binary": ("auc", "accuracy"), "multiclass": ("accuracy", "macro_auc"),
           "ordinal": ("accuracy", "qwk"), "regression": ("r2", "mse")}


@dataclass
class FinetuneConfig:
    weights: str                        # encoder.safetensors or a checkpoint
    labels: str                         # table with FID, IID and the target column
    target: str                         # column to predict
    out: str                            # output folder (metrics.json)
    data: str | None = None             # manifest (default: the demo cohort)
    task: str = "binary"                # binary | multiclass | ordinal | regression
    mode: str = "linear"                # linear (frozen features) | full (end to end)
    fractions: tuple = (0.01, 0.1, 1.0)  # fractions of training individuals with labels
    repeats: int = 3                    # draws per fraction (seeds 0..repeats-1)
    baseline: str | None = "random"     # "random": the same with a random-init encoder; None: none
    batch_size: int = 64                # images per batch (feature extraction / full fine-tuning)
    epochs: int = 10                    # full mode: training epochs
    lr: float = 1e-4                    # full mode: learning rate
    workers: int = 2                    # DataLoader workers
    device: str = "auto"                # cpu | cuda | auto
    seed: int = 0                       # base seed
    fit: str | None = None              # non-square images: pad | crop | squash (None: the pretraining run's)


def scores(task: str, y: np.ndarray, pred: np.ndarray, proba: np.ndarray | None) -> dict[str, float]:
    from sklearn import metrics as M

    if task == "regression":
        return {"r2": float(M.r2_score(y, pred)), "mse": float(M.mean_squared_error(y, pred))}
    out = {"accuracy": float(M.accuracy_score(y, pred))}
    if task == "binary":
        out["auc"] = float(M.roc_auc_score(y, proba[:, 1])) if len(np.unique(y)) == 2 else float("nan")
    elif task == "multiclass":
        try:
            out["macro_auc"] = float(M.roc_auc_score(y, proba, multi_class="ovr", average="macro"))
        except ValueError:
            out["macro_auc"] = float("nan")
    else:
        out["qwk"] = float(M.cohen_kappa_score(y, pred, weights="quadratic"))
    return out


def _selection_score(task: str, s: dict) -> float:
    return {"binary": s.get("auc"), "multiclass": s.get("accuracy"), "ordinal": s.get("qwk"),
            "regression": s.get("r2")}[task]


def fit_linear(task: str, xtr, ytr, xva, yva):
    """A standardised linear model, regularisation chosen on validation. Returns the fitted model."""
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    best, best_score = None, -np.inf
    for c in (0.001, 0.01, 0.1, 1.0, 10.0):
        est = Ridge(alpha=1.0 / c) if task == "regression" else LogisticRegression(C=c, max_iter=2000)
        model = make_pipeline(StandardScaler(), est).fit(xtr, ytr)
        s = _selection_score(task, scores(task, yva, *_predict(task, model, xva)))
        if best is None or (np.isfinite(s) and s > best_score):
            best, best_score = model, s
    return best


def _predict(task, model, x):
    if task == "regression":
        return model.predict(x), None
    return model.predict(x), model.predict_proba(x)


def subsample_people(people: np.ndarray, y_person: np.ndarray, fraction: float, task: str, seed: int) -> np.ndarray:
    """A seeded subset of training individuals; classification keeps ≥ 1 of each class (≥ 2 people)."""
    rng = np.random.default_rng(seed)
    k = max(2, int(round(fraction * len(people))))
    if k >= len(people):
        return people
    if task == "regression":
        return np.sort(rng.choice(people, size=k, replace=False))
    chosen = [rng.choice(people[y_person == c]) for c in np.unique(y_person)]  # one per class first
    rest = np.setdiff1d(people, chosen)
    extra = rng.choice(rest, size=max(k - len(chosen), 0), replace=False)
    return np.sort(np.concatenate([chosen, extra]))


def summarize(values: list[dict]) -> dict:
    keys = values[0].keys()
    return {k: {"mean": float(np.nanmean([v[k] for v in values])), "sd": float(np.nanstd([v[k] for v in values])),
                "values": [v[k] for v in values]} for k in keys}


def run_finetune(cfg: FinetuneConfig) -> dict:
    from medcl.data import ImageDataset, load_cohort
    from medcl.data.fit import run_fit
    from medcl.embed import compute_features, image_encoder_from
    from medcl.train.export import load_weights
    from medcl.io.tables import join_on_ids, read_table

    if cfg.task not in TASKS:
        raise ConfigError(f"unknown task {cfg.task!r}", fix=f"use one of {', '.join(TASKS)}")
    if cfg.mode not in ("linear", "full"):
        raise ConfigError(f"unknown mode {cfg.mode!r}", fix="use linear or full")
    if any(not 0 < f <= 1 for f in cfg.fractions):
        raise ConfigError("--fractions must lie in (0, 1]")
    data = cfg.data
    if data is None:
        from medcl.demo.cache import demo_cohort
        data = str(demo_cohort() / "manifest.csv")
    device = resolve_device(cfg.device)
    cohort = load_cohort(data, modalities=("image",), split_seed=cfg.seed)
    labels = read_table(cfg.labels, kind="labels")
    if cfg.target not in labels.columns:
        raise ConfigError(f"no column {cfg.target!r} in the labels", path=cfg.labels,
                          fix=f"columns: {', '.join(c for c in labels.columns if c not in ('FID', 'IID'))}")
    people = join_on_ids(cohort.people.reset_index().rename(columns={"index": "person"}),
                         labels[["FID", "IID", cfg.target]], how="left")
    y_person = people.set_index("person")[cfg.target].reindex(range(len(cohort.people))).to_numpy()
    state, meta = load_weights(Path(cfg.weights))            # read once; encoders are built from it
    size = int(meta["preprocessing"]["image_size"])
    cfg = replace(cfg, fit=cfg.fit or run_fit(meta, cfg.weights)[0])
    encoders = [("pretrained", False)] + ([("random", True)] if cfg.baseline == "random" else [])
    if cfg.mode == "full":
        from medcl.finetune_full import finetune_full
    results, out = [], Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, random_init in encoders:
        for rep in range(cfg.repeats):
            fresh = rep == 0 or random_init or cfg.mode == "full"  # pretrained linear features: once
            if fresh:
                encoder = image_encoder_from(meta, None if random_init else state, seed=cfg.seed + rep)
            if cfg.mode == "linear" and fresh:
                feats, rows = {}, {}
                for split in ("train", "val", "test"):
                    ds = ImageDataset(cohort, size, split=split, fit=cfg.fit)
                    feats[split], rows[split] = compute_features(encoder, ds, batch_size=cfg.batch_size,
                                                                 device=device, workers=cfg.workers,
                                                                 stage=f"features {name} {split}")
            for frac in cfg.fractions:
                seed = cfg.seed + rep
                if cfg.mode == "linear":
                    res = _linear_once(cfg, cohort, y_person, feats, rows, frac, seed)
                else:
                    res = finetune_full(cfg, cohort, y_person, encoder, size, frac, seed, device)
                results.append({"encoder": name, "fraction": frac, "repeat": rep, **res})
                log.info("%s fraction %.3g repeat %d: %s", name, frac, rep,
                         ", ".join(f"{k} {v:.4f}" for k, v in res.items()))
    table = []
    for name, _ in encoders:
        for frac in cfg.fractions:
            runs = [{k: r[k] for k in METRICS[cfg.task]} for r in results
                    if r["encoder"] == name and r["fraction"] == frac]
            table.append({"encoder": name, "fraction": frac, **summarize(runs)})
    report = {"config": asdict(cfg), "task": cfg.task, "target": cfg.target, "metrics": list(METRICS[cfg.task]),
              "summary": table, "runs": results}
    (out / "metrics.json").write_text(json.dumps(report, indent=2, default=float) + "\n")
    return report


def _labelled(rows: np.ndarray, cohort, y_person: np.ndarray):
    person = cohort.images["person"].to_numpy()[rows]
    y = y_person[person]
    ok = ~np.isnan(y)
    return ok, person, y


def _linear_once(cfg, cohort, y_person, feats, rows, frac, seed) -> dict:
    ok_tr, person_tr, y_tr = _labelled(rows["train"], cohort, y_person)
    train_people = np.unique(person_tr[ok_tr])
    chosen = subsample_people(train_people, y_person[train_people], frac, cfg.task, seed)
    keep = ok_tr & np.isin(person_tr, chosen)
    ok_va, _, y_va = _labelled(rows["val"], cohort, y_person)
    ok_te, _, y_te = _labelled(rows["test"], cohort, y_person)
    cast = (lambda v: v) if cfg.task == "regression" else (lambda v: v.astype(np.int64))
    model = fit_linear(cfg.task, feats["train"][keep], cast(y_tr[keep]), feats["val"][ok_va], cast(y_va[ok_va]))
    return scores(cfg.task, cast(y_te[ok_te]), *_predict(cfg.task, model, feats["test"][ok_te]))


def format_table(report: dict) -> str:
    metrics = report["metrics"]
    lines = [f"{report['target']} ({report['task']}), mean ± sd over repeats, test split",
             f"{'encoder':<11} {'fraction':>8}  " + "  ".join(f"{m:>15}" for m in metrics)]
    for row in report["summary"]:
        cells = "  ".join(f"{row[m]['mean']:>7.4f} ± {row[m]['sd']:<6.4f}" for m in metrics)
        lines.append(f"{row['encoder']:<11} {row['fraction']:>8.3g}  {cells}")
    return "\n".join(lines)
