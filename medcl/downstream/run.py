"""Downstream evaluation: label-efficiency curves of a pretrained encoder against baselines.

For each label fraction and repeat, a subset of the training individuals is drawn; the model is
fit on their images, selected on the validation split and scored on the test split:
  binary      AUC, accuracy          multiclass  accuracy, macro AUC (one-vs-rest, classes in the test split)
  ordinal     accuracy, quadratic-weighted kappa (as APTOS is scored)
  regression  R², MSE
The task (medcl.downstream.tasks: metrics, probe, head) is inferred from the label column unless
given (medcl.downstream.labels).
``mode="linear"``: frozen encoder features, a standardised linear model from scikit-learn with
its regularisation chosen on validation (medcl.downstream.probe). ``mode="full"``: encoder +
linear head trained end to end by medcl.train.Trainer, the epoch chosen on validation
(medcl.downstream.full). Baselines, side by side: ``random`` (the same with
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
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from medcl.device import resolve_device
from medcl.downstream.config import FinetuneConfig, check_config, check_out, parse_baselines, pixel_side
from medcl.downstream.labels import labelled, subsample_size
from medcl.downstream.metrics import constant_scores, summarize
from medcl.downstream.tasks import get_task
from medcl.errors import ConfigError

log = logging.getLogger("medcl")

SPLITS = ("train", "val", "test")


@dataclass
class Evaluation:
    """What every encoder of one ``medcl finetune`` is evaluated on."""
    cfg: FinetuneConfig       # task, baselines and fit resolved
    cohort: object            # medcl.data.Cohort (images only)
    target: object            # medcl.downstream.labels.Target
    y_person: np.ndarray      # (N_people,) label per person of the cohort, NaN where none
    counts: dict              # labelled people (and distinct labels) per split
    undefined: dict           # {test metric: why the test split cannot define it}
    select: bool              # whether validation can choose (the probe's penalty, the epoch)
    state: dict               # the pretrained weights
    meta: dict                # their metadata
    device: object            # torch.device

    @property
    def size(self) -> int:
        return int(self.meta["preprocessing"]["image_size"])

    @property
    def n_classes(self) -> int | None:
        return None if self.target.classes is None else len(self.target.classes)


def run_finetune(cfg: FinetuneConfig) -> dict:
    """Evaluates the pretrained encoder and the baselines (see the module docstring); returns the
    report also written to OUT/metrics.json."""
    check_config(cfg)
    check_out(Path(cfg.out), cfg.overwrite)
    ev = load_evaluation(cfg)
    results = [row for name in ("pretrained", *ev.cfg.baseline) for row in encoder_runs(ev, name)]
    return write_report(build_report(ev, results), Path(cfg.out))


def load_evaluation(cfg: FinetuneConfig) -> Evaluation:
    """The cohort, the target and who holds a label, which metrics each split can define, the weights."""
    from medcl.data import load_cohort
    from medcl.data.fit import run_fit
    from medcl.downstream.labels import split_people
    from medcl.train.export import load_weights

    from medcl.data.sources import open_source
    from medcl.io.tables import require_table

    cfg = replace(cfg, baseline=parse_baselines(cfg.baseline))
    if cfg.data is not None:                                  # every path named before the cohort is read
        open_source(cfg.data)                                 # (or the demo cohort generated)
    require_table(cfg.labels, "labels")
    state, meta = load_weights(Path(cfg.weights))            # read once; encoders are built from it
    data = cfg.data
    if data is None:
        from medcl.demo.cache import demo_cohort
        data = str(demo_cohort() / "manifest.csv")
    device = resolve_device(cfg.device)
    cohort = load_cohort(data, modalities=("image",), split_seed=cfg.seed)
    target, y_person = read_target(cfg, cohort)
    cfg = replace(cfg, task=target.task)
    counts = split_people(cohort, y_person, target.task, cfg.labels)
    undefined, select = split_checks(cfg, counts)
    cfg = replace(cfg, fit=cfg.fit or run_fit(meta, cfg.weights)[0])
    return Evaluation(cfg, cohort, target, y_person, counts, undefined, select, state, meta, device)


def read_target(cfg: FinetuneConfig, cohort):
    """(Target, (N_people,) labels matched to the cohort) from the labels table."""
    from medcl.downstream.labels import match_labels, resolve_target
    from medcl.io.tables import read_table

    labels = read_table(cfg.labels, kind="labels")
    if cfg.target not in labels.columns:
        raise ConfigError(f"no column {cfg.target!r} in the labels", path=cfg.labels,
                          fix=f"columns: {', '.join(c for c in labels.columns if c not in ('FID', 'IID'))}")
    target = resolve_target(labels, cfg.target, cfg.task, cfg.labels)
    return target, match_labels(cohort.people, labels, cfg.target, target.y_person, cfg.labels)   # (N_people,)


def split_checks(cfg: FinetuneConfig, counts: dict) -> tuple[dict, bool]:
    """({test metric: why undefined}, whether validation can select), each said once in the log."""
    from medcl.downstream.labels import undefined_metrics

    task = get_task(cfg.task)
    undefined = undefined_metrics(cfg.task, task.metrics, "test", **counts["test"])
    for why in dict.fromkeys(undefined.values()):
        log.warning("test %s undefined: %s; reported as undefined",
                    " and ".join(m for m, w in undefined.items() if w == why), why)
    val_problem = undefined_metrics(cfg.task, [task.headline], "val", **counts["val"])
    if val_problem:
        log.warning("validation %s is undefined (%s), so the %s", task.headline, next(iter(val_problem.values())),
                    "regularisation is not chosen on it (the middle strength is used)" if cfg.mode == "linear"
                    else "epoch is not chosen on it (the last one is kept)")
    return undefined, not val_problem


def encoder_runs(ev: Evaluation, name: str) -> list[dict]:
    """Test scores of one encoder ("pretrained", "random", "pixels") per repeat and label fraction."""
    from medcl.downstream.full import finetune_full
    from medcl.downstream.probe import linear_once
    from medcl.embed import image_encoder_from

    cfg = ev.cfg
    linear = cfg.mode == "linear" or name == "pixels"    # pixels: the linear probe in either mode
    runs = []
    for rep in range(cfg.repeats):
        fresh = rep == 0 or name == "random" or not linear  # fixed features are computed once
        if fresh and name != "pixels":
            encoder = image_encoder_from(ev.meta, None if name == "random" else ev.state, seed=cfg.seed + rep)
        if linear and fresh:
            feats, rows = features(ev, name, None if name == "pixels" else encoder)
        for frac in cfg.fractions:
            seed = cfg.seed + rep
            if linear:
                res = linear_once(cfg, ev.cohort, ev.y_person, feats, rows, frac, seed, ev.select, ev.n_classes)
            else:
                res = finetune_full(cfg, ev.cohort, ev.y_person, encoder, ev.size, frac, seed, ev.device,
                                    select=ev.select, n_classes=ev.n_classes)
            res.update({m: float("nan") for m in ev.undefined})
            runs.append({"encoder": name, "fraction": frac, "repeat": rep, **res})
            log.debug("%s fraction %.3g repeat %d: %s", name, frac, rep,
                      ", ".join(f"{k} {v:.3f}" for k, v in res.items()))
    return runs


def features(ev: Evaluation, name: str, encoder) -> tuple[dict, dict]:
    """({split: (N, D) features}, {split: (N,) image rows read}) of ``encoder``, or of the raw
    pixels (``encoder`` None) on a grid of :func:`pixel_side`."""
    from torch import nn

    from medcl.data import ImageDataset
    from medcl.embed import compute_features

    net, side = (nn.Flatten(), pixel_side(ev.size)) if encoder is None else (encoder, ev.size)
    feats, rows = {}, {}
    for split in SPLITS:
        ds = ImageDataset(ev.cohort, side, split=split, fit=ev.cfg.fit)
        feats[split], rows[split] = compute_features(net, ds, batch_size=ev.cfg.batch_size, device=ev.device,
                                                     workers=ev.cfg.workers, stage=f"features {name} {split}")
    return feats, rows


def constant_row(ev: Evaluation) -> dict:
    """The constant predictor's test scores (undefined metrics NaN)."""
    y = {s: labelled(ev.cohort.images_in(s), ev.cohort, ev.y_person)[2] for s in ("train", "test")}
    y = {s: v[~np.isnan(v)] for s, v in y.items()}
    constant = constant_scores(ev.cfg.task, y["train"], y["test"], ev.n_classes)
    constant.update({m: float("nan") for m in ev.undefined})
    return constant


def build_report(ev: Evaluation, results: list[dict]) -> dict:
    """metrics.json: the settings, the task, per encoder and fraction the summary over repeats,
    every run, the constant predictor and the verdict (medcl.downstream.report)."""
    from medcl.downstream.report import verdict

    cfg, task = ev.cfg, get_task(ev.cfg.task)
    table = []
    for name in ("pretrained", *cfg.baseline):
        for frac in cfg.fractions:
            runs = [{k: r[k] for k in task.metrics} for r in results if r["encoder"] == name and r["fraction"] == frac]
            table.append({"encoder": name, "fraction": frac,
                          "train_people": subsample_size(ev.counts["train"]["people"], frac), **summarize(runs)})
    report = {"config": asdict(cfg), "task": cfg.task, "task_inferred": ev.target.inferred,
              "classes": ev.target.classes, "target": cfg.target, "metrics": list(task.metrics),
              "headline": task.headline, "people": ev.counts, "pixel_side": pixel_side(ev.size),
              "image_size": ev.size, "constant": constant_row(ev), "constant_note": task.constant_note,
              "undefined": ev.undefined, "summary": table, "runs": results}
    report["verdict"] = verdict(report)
    return report


def write_report(report: dict, out: Path) -> dict:
    """OUT/metrics.json and OUT/label_efficiency.png; the report with the picture's path."""
    from medcl.downstream.report import plot_label_efficiency

    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(report, indent=2, default=float) + "\n")
    plot_label_efficiency(report, out / "label_efficiency.png")
    report["picture"] = str(out / "label_efficiency.png")
    return report
