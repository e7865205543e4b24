"""Downstream evaluation: label-efficiency curves of a pretrained encoder against baselines.

For each label fraction and repeat, a subset of the training individuals is drawn; the model is
fit on their images, selected on the validation split and scored on the test split:
  binary      AUC, accuracy          multiclass  accuracy, macro AUC (one-vs-rest, classes in the test split)
  ordinal     accuracy, quadratic-weighted kappa (as APTOS is scored)
  regression  R², MSE
The task is inferred from the label column unless given (medcl.finetune_labels).
``mode="linear"``: frozen encoder features, a standardised linear model from scikit-learn with
its regularisation chosen on validation. ``mode="full"``: encoder + linear head trained end to
end (AdamW), the epoch chosen on validation. Baselines, side by side: ``random`` (the same with
a randomly initialised encoder of the same architecture) and ``pixels`` (the linear probe on the
raw pixels, rendered at a quarter of the encoder's input size, 16 to 48 pixels a side, and
flattened). Beside them, a constant predictor that ignores the image (AUC 0.5, the majority
class's accuracy, the training mean's R²). A metric a split cannot define (one test person, one
class) is reported as undefined with a warning. Writes OUT/metrics.json and
OUT/label_efficiency.png.
"""
from __future__ import annotations

import json
import logging
import warnings
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from medcl.device import resolve_device
from medcl.errors import ConfigError
from medcl.finetune_labels import TASKS

log = logging.getLogger("medcl")

METRICS = {"binary": ("auc", "accuracy"), "multiclass": ("accuracy", "macro_auc"),
           "ordinal": ("accuracy", "qwk"), "regression": ("r2", "mse")}
SELECTION = {"binary": "auc", "multiclass": "accuracy", "ordinal": "qwk", "regression": "r2"}  # also the headline
BASELINES = ("random", "pixels")


@dataclass
class FinetuneConfig:
    weights: str                        # encoder.safetensors or a checkpoint
    labels: str                         # table with FID, IID and the target column
    target: str                         # column to predict
    out: str                            # output folder (metrics.json, label_efficiency.png)
    data: str | None = None             # manifest (default: the demo cohort)
    task: str | None = None             # binary | multiclass | ordinal | regression; None: inferred from the column
    mode: str = "linear"                # linear (frozen features) | full (end to end)
    fractions: tuple = (0.01, 0.1, 1.0)  # fractions of training individuals with labels
    repeats: int = 3                    # draws per fraction (seeds 0..repeats-1)
    baseline: tuple = BASELINES         # beside the pretrained encoder: random (init), pixels (linear probe)
    batch_size: int = 64                # images per batch (feature extraction / full fine-tuning)
    epochs: int = 10                    # full mode: training epochs
    lr: float = 1e-4                    # full mode: learning rate
    workers: int = 2                    # DataLoader workers
    device: str = "auto"                # cpu | cuda | auto
    seed: int = 0                       # base seed
    overwrite: bool = False             # write into an --out folder that is not empty
    fit: str | None = None              # non-square images: pad | crop | squash (None: the pretraining run's)


def parse_baselines(value) -> tuple:
    """'random,pixels' / ['random'] / 'none' / None → a tuple of baseline names (checked)."""
    if value is None:
        return ()
    names = [v.strip() for v in (value.split(",") if isinstance(value, str) else value) if v and v.strip()]
    if names == ["none"]:
        return ()
    bad = [n for n in names if n not in BASELINES]
    if bad:
        raise ConfigError(f"unknown baseline {', '.join(bad)}", fix="use a comma list of random, pixels, or none")
    return tuple(dict.fromkeys(names))


def pixel_side(image_size: int) -> int:
    """Side of the raw-pixel baseline's grid: a quarter of the encoder's input, 16 to 48 pixels."""
    return int(min(48, max(16, image_size // 4)))


def check_out(out: Path, overwrite: bool) -> None:
    """An existing non-empty ``out`` needs ``overwrite`` (ConfigError, before any work)."""
    out = Path(out)
    if not out.exists() or overwrite:
        if out.exists() and not out.is_dir():
            raise ConfigError("exists and is not a folder", path=out, fix="choose another --out")
        return
    if not out.is_dir() or any(out.iterdir()):
        raise ConfigError("already exists and is not empty", path=out,
                          fix="choose another --out, or add --overwrite to replace what medcl wrote there")


def scores(task: str, y: np.ndarray, pred: np.ndarray, proba: np.ndarray | None) -> dict[str, float]:
    """The task's metrics on (y, pred, proba); NaN where the labels cannot define one (a single
    class for AUC and kappa, a constant target or a single sample for R²)."""
    from sklearn import metrics as M

    y = np.asarray(y)
    present = np.unique(y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")                     # sklearn's own warnings on undefined metrics
        if task == "regression":
            r2 = float(M.r2_score(y, pred)) if len(present) > 1 else float("nan")
            return {"r2": r2, "mse": float(M.mean_squared_error(y, pred))}
        out = {"accuracy": float(M.accuracy_score(y, pred))}
        if task == "binary":
            out["auc"] = float(M.roc_auc_score(y, proba[:, 1])) if len(present) == 2 else float("nan")
        elif task == "multiclass":   # one-vs-rest AUC averaged over the classes present in y
            out["macro_auc"] = float(np.mean([M.roc_auc_score(y == c, proba[:, int(c)]) for c in present])) \
                if len(present) > 1 else float("nan")
        else:
            out["qwk"] = float(M.cohen_kappa_score(y, pred, weights="quadratic")) if len(present) > 1 else float("nan")
    return out


def constant_scores(task: str, y_train: np.ndarray, y_test: np.ndarray, n_classes: int | None) -> dict[str, float]:
    """Scores of a predictor that ignores the image: the training mean (regression), else the
    training class frequencies as probabilities and the most common training class as prediction."""
    n = len(y_test)
    if task == "regression":
        return scores(task, y_test, np.full(n, float(np.mean(y_train))), None)
    freq = np.bincount(y_train.astype(np.int64), minlength=n_classes) / len(y_train)
    return scores(task, y_test.astype(np.int64), np.full(n, int(np.argmax(freq))), np.tile(freq, (n, 1)))


def _selection_score(task: str, s: dict) -> float:
    return s.get(SELECTION[task])


def fit_linear(task: str, xtr, ytr, xva, yva, *, select: bool = True, n_classes: int | None = None):
    """A standardised linear model, regularisation chosen on validation (``select=False``, when
    the validation split cannot score: the middle strength, C = 1). Returns the fitted model."""
    import copy

    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(xtr)
    xs = scaler.transform(xtr)
    logistic = LogisticRegression(max_iter=2000, warm_start=True)   # each C starts from the previous solution
    best, best_score = None, -np.inf
    for c in (0.001, 0.01, 0.1, 1.0, 10.0) if select else (1.0,):
        est = Ridge(alpha=1.0 / c) if task == "regression" else logistic.set_params(C=c)
        with warnings.catch_warnings():
            # Weak ridge penalties on many standardised features (raw pixels) leave X'X + αI
            # ill-conditioned: scipy warns once per fit, the solution is still the least-squares
            # one, and validation (not the warning) decides whether that strength is any good.
            warnings.filterwarnings("ignore", message="Ill-conditioned matrix")
            warnings.filterwarnings("ignore", message="An ill-conditioned matrix")
            model = make_pipeline(scaler, copy.deepcopy(est.fit(xs, ytr)))
        if not select:
            return model
        s = _selection_score(task, scores(task, yva, *_predict(task, model, xva, n_classes)))
        if best is None or (np.isfinite(s) and s > best_score):
            best, best_score = model, s
    return best


def _predict(task, model, x, n_classes: int | None = None):
    """(pred, proba): proba has a column per class code 0..n_classes-1 (0 for a class the
    training draw lacked)."""
    if task == "regression":
        return model.predict(x), None
    p = model.predict_proba(x)
    proba = np.zeros((len(x), max(n_classes or 0, int(model.classes_.max()) + 1)))
    proba[:, model.classes_.astype(np.int64)] = p
    return model.predict(x), proba


def subsample_size(n: int, fraction: float) -> int:
    """How many of ``n`` training individuals keep their labels at ``fraction`` (at least 2)."""
    return min(n, max(2, int(round(fraction * n))))


def subsample_people(people: np.ndarray, y_person: np.ndarray, fraction: float, task: str, seed: int) -> np.ndarray:
    """A seeded subset of training individuals; classification keeps ≥ 1 of each class (≥ 2 people)."""
    rng = np.random.default_rng(seed)
    k = subsample_size(len(people), fraction)
    if k >= len(people):
        return people
    if task == "regression":
        return np.sort(rng.choice(people, size=k, replace=False))
    chosen = [rng.choice(people[y_person == c]) for c in np.unique(y_person)]  # one per class first
    rest = np.setdiff1d(people, chosen)
    extra = rng.choice(rest, size=max(k - len(chosen), 0), replace=False)
    return np.sort(np.concatenate([chosen, extra]))


def summarize(values: list[dict]) -> dict:
    """{metric: mean, sd, min, max over the finite values (NaN when none), values}."""
    out = {}
    for k in values[0]:
        vals = [float(v[k]) for v in values]
        ok = [v for v in vals if np.isfinite(v)]
        stat = (float(np.mean(ok)), float(np.std(ok)), float(min(ok)), float(max(ok))) if ok else (float("nan"),) * 4
        out[k] = dict(zip(("mean", "sd", "min", "max"), stat), values=vals)
    return out


def run_finetune(cfg: FinetuneConfig) -> dict:
    from torch import nn

    from medcl.data import ImageDataset, load_cohort
    from medcl.data.fit import run_fit
    from medcl.embed import compute_features, image_encoder_from
    from medcl.finetune_labels import match_labels, resolve_target, split_people, undefined_metrics
    from medcl.finetune_report import plot_label_efficiency, verdict
    from medcl.train.export import load_weights
    from medcl.io.tables import read_table

    if cfg.task is not None and cfg.task not in TASKS:
        raise ConfigError(f"unknown task {cfg.task!r}", fix=f"use one of {', '.join(TASKS)}")
    if cfg.mode not in ("linear", "full"):
        raise ConfigError(f"unknown mode {cfg.mode!r}", fix="use linear or full")
    if not cfg.fractions or any(not 0 < f <= 1 for f in cfg.fractions):
        raise ConfigError("--fractions must lie in (0, 1]")
    if cfg.repeats < 1:
        raise ConfigError(f"--repeats {cfg.repeats} must be at least 1")
    if cfg.mode == "full" and cfg.epochs < 1:
        raise ConfigError(f"--epochs {cfg.epochs} must be at least 1 in full mode")
    baselines = parse_baselines(cfg.baseline)
    out = Path(cfg.out)
    check_out(out, cfg.overwrite)
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
    target = resolve_target(labels, cfg.target, cfg.task, cfg.labels)
    task, metrics = target.task, METRICS[target.task]
    cfg = replace(cfg, task=task, baseline=baselines)
    y_person = match_labels(cohort.people, labels, cfg.target, target.y_person, cfg.labels)   # (N_people,)
    counts = split_people(cohort, y_person, task, cfg.labels)
    undefined = undefined_metrics(task, metrics, "test", **counts["test"])
    for why in dict.fromkeys(undefined.values()):
        log.warning("test %s undefined: %s; reported as undefined",
                    " and ".join(m for m, w in undefined.items() if w == why), why)
    val_problem = undefined_metrics(task, [SELECTION[task]], "val", **counts["val"])
    select = not val_problem
    if not select:
        log.warning("validation %s is undefined (%s), so the %s", SELECTION[task], next(iter(val_problem.values())),
                    "regularisation is not chosen on it (the middle strength is used)" if cfg.mode == "linear"
                    else "epoch is not chosen on it (the last one is kept)")
    n_classes = None if target.classes is None else len(target.classes)
    y_split = {s: _labelled(cohort.images_in(s), cohort, y_person)[2] for s in ("train", "test")}
    y_split = {s: y[~np.isnan(y)] for s, y in y_split.items()}
    constant = constant_scores(task, y_split["train"], y_split["test"], n_classes)
    constant.update({m: float("nan") for m in undefined})
    state, meta = load_weights(Path(cfg.weights))            # read once; encoders are built from it
    size = int(meta["preprocessing"]["image_size"])
    cfg = replace(cfg, fit=cfg.fit or run_fit(meta, cfg.weights)[0])
    if cfg.mode == "full":
        from medcl.finetune_full import finetune_full
    results = []
    for name in ("pretrained", *baselines):
        linear = cfg.mode == "linear" or name == "pixels"    # pixels: the linear probe in either mode
        for rep in range(cfg.repeats):
            fresh = rep == 0 or name == "random" or not linear  # fixed features are computed once
            if fresh and name != "pixels":
                encoder = image_encoder_from(meta, None if name == "random" else state, seed=cfg.seed + rep)
            if linear and fresh:
                net, side = (nn.Flatten(), pixel_side(size)) if name == "pixels" else (encoder, size)
                feats, rows = {}, {}
                for split in ("train", "val", "test"):
                    ds = ImageDataset(cohort, side, split=split, fit=cfg.fit)
                    feats[split], rows[split] = compute_features(net, ds, batch_size=cfg.batch_size,
                                                                 device=device, workers=cfg.workers,
                                                                 stage=f"features {name} {split}")
            for frac in cfg.fractions:
                seed = cfg.seed + rep
                if linear:
                    res = _linear_once(cfg, cohort, y_person, feats, rows, frac, seed, select, n_classes)
                else:
                    res = finetune_full(cfg, cohort, y_person, encoder, size, frac, seed, device, select=select)
                res.update({m: float("nan") for m in undefined})
                results.append({"encoder": name, "fraction": frac, "repeat": rep, **res})
                log.debug("%s fraction %.3g repeat %d: %s", name, frac, rep,
                          ", ".join(f"{k} {v:.3f}" for k, v in res.items()))
    table = []
    for name in ("pretrained", *baselines):
        for frac in cfg.fractions:
            runs = [{k: r[k] for k in metrics} for r in results if r["encoder"] == name and r["fraction"] == frac]
            table.append({"encoder": name, "fraction": frac,
                          "train_people": subsample_size(counts["train"]["people"], frac), **summarize(runs)})
    report = {"config": asdict(cfg), "task": task, "task_inferred": target.inferred,
              "classes": target.classes, "target": cfg.target, "metrics": list(metrics),
              "headline": SELECTION[task], "people": counts, "pixel_side": pixel_side(size),
              "image_size": size, "constant": constant, "undefined": undefined, "summary": table, "runs": results}
    report["verdict"] = verdict(report)
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(report, indent=2, default=float) + "\n")
    plot_label_efficiency(report, out / "label_efficiency.png")
    report["picture"] = str(out / "label_efficiency.png")
    return report


def _labelled(rows: np.ndarray, cohort, y_person: np.ndarray):
    person = cohort.images["person"].to_numpy()[rows]
    y = y_person[person]
    ok = ~np.isnan(y)
    return ok, person, y


def _linear_once(cfg, cohort, y_person, feats, rows, frac, seed, select=True, n_classes=None) -> dict:
    ok_tr, person_tr, y_tr = _labelled(rows["train"], cohort, y_person)
    train_people = np.unique(person_tr[ok_tr])
    chosen = subsample_people(train_people, y_person[train_people], frac, cfg.task, seed)
    keep = ok_tr & np.isin(person_tr, chosen)
    ok_va, _, y_va = _labelled(rows["val"], cohort, y_person)
    ok_te, _, y_te = _labelled(rows["test"], cohort, y_person)
    cast = (lambda v: v) if cfg.task == "regression" else (lambda v: v.astype(np.int64))
    model = fit_linear(cfg.task, feats["train"][keep], cast(y_tr[keep]), feats["val"][ok_va], cast(y_va[ok_va]),
                       select=select, n_classes=n_classes)
    return scores(cfg.task, cast(y_te[ok_te]), *_predict(cfg.task, model, feats["test"][ok_te], n_classes))
