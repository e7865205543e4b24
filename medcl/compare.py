"""Every pretraining method on one cohort, side by side: ``make compare`` / ``python -m medcl.compare``.

For each entry of ``RUNS`` (contig; simclr and swav with ``--pairs views`` and ``patient``;
puzzle) it pretrains with the shared small settings below, then fits linear probes on the
frozen features (medcl.downstream, linear mode, the demo's labels: cardiomegaly AUC and bone
density R² on the test split, 10% and 100% of the training labels, mean of ``repeats`` draws)
next to a randomly initialised encoder of the same architecture and input size and the same probe
on raw pixels (a quarter of that size, medcl.downstream.config.pixel_side), and prints one
table (also written to OUT/compare.md and OUT/compare.json). Runs already finished in OUT are
reused, so an interrupted comparison continues where it stopped.

The settings are sized for 2 CPU cores (about half an hour in all, see docs); they show how the
methods rank on the synthetic demo cohort, not what they reach on real data.
"""
from __future__ import annotations

import argparse
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from medcl.downstream.config import BASELINES, pixel_side

log = logging.getLogger("medcl")

# Shared by every method: the demo's CPU-sized encoder and schedule.
COMMON = dict(arch="resnet18", width=0.25, image_size=96, batch_size=64, lr=2e-3, head_hidden=512,
              workers=1, log_every=20)


@dataclass
class Run:
    name: str                      # row label (also the run folder's name)
    method: str                    # pretrain --method
    options: dict = field(default_factory=dict)  # pretrain options (by option name) besides COMMON
    epochs: int = 20               # pretraining epochs (before --epochs-scale)


RUNS = [
    Run("contig", "contig", {"modalities": ("image", "snp"), "genetics_hidden": 512}, epochs=40),
    Run("simclr-views", "simclr", {"pairs": "views"}),
    Run("simclr-patient", "simclr", {"pairs": "patient"}),
    Run("swav-views", "swav", {"pairs": "views", "queue_length": 512, "freeze_prototypes_iters": 50}, epochs=10),
    Run("swav-patient", "swav", {"pairs": "patient", "queue_length": 512, "freeze_prototypes_iters": 50}, epochs=10),
    Run("puzzle", "puzzle", {"image_size": 192}, epochs=10),
]
TARGETS = [("cardiomegaly", "binary", "auc"), ("bone_density", "regression", "r2")]
FRACTIONS = (0.1, 1.0)


def _cohort(out: Path) -> Path:
    """The comparison's demo cohort (500 SNPs, as `make demo`), generated once into OUT/cohort."""
    from medcl.demo import generate_cohort

    root = out / "cohort"
    if not (root / "manifest.csv").is_file():
        generate_cohort(root, n=1000, snps=500, seed=0)
    return root


def _pretrain(run: Run, root: Path, out: Path, epochs_scale: float, device: str) -> dict:
    from medcl.pretrain import PretrainConfig, run_pretrain

    folder = out / run.name
    weights = folder / "encoder.safetensors"
    done = folder / "pretrain.json"
    if weights.is_file() and done.is_file():
        log.info("compare: %s already pretrained in %s", run.name, folder)
        return json.loads(done.read_text())
    epochs = max(1, round(run.epochs * epochs_scale))
    opts = {**COMMON, **run.options, "method": run.method, "epochs": epochs, "out": str(folder),
            "data": str(root / "manifest.csv"), "genotypes": str(root / "genotypes" / "demo"), "device": device,
            "resume": "auto" if folder.exists() else None}
    log.info("compare: pretraining %s (%d epochs)", run.name, epochs)
    t0 = time.monotonic()
    result = run_pretrain(PretrainConfig.from_options(**opts))
    info = {"epochs": epochs, "pretrain_s": time.monotonic() - t0, "image_size": opts["image_size"],
            "last_validation": result.history[-1] if result.history else {}}
    done.write_text(json.dumps(info, indent=2, default=float) + "\n")
    return info


def _probe(weights: Path, root: Path, out: Path, target: str, task: str, repeats: int, baseline: bool,
           device: str) -> dict:
    from medcl.downstream.run import FinetuneConfig, run_finetune

    path = out / "metrics.json"
    wanted = list(BASELINES) if baseline else []
    if path.is_file():
        report = json.loads(path.read_text())
        if list(report["config"]["baseline"] or []) == wanted:
            return report
    cfg = FinetuneConfig(weights=str(weights), labels=str(root / "labels.csv"), target=target, out=str(out),
                         data=str(root / "manifest.csv"), task=task, mode="linear", fractions=FRACTIONS,
                         repeats=repeats, baseline=tuple(wanted), workers=1, device=device, overwrite=True)
    return run_finetune(cfg)


def _cells(report: dict, encoder: str, metric: str) -> list:
    return [next(r[metric]["mean"] for r in report["summary"] if r["encoder"] == encoder and r["fraction"] == f)
            for f in FRACTIONS]


def format_table(rows: list[dict]) -> str:
    head = ["encoder", "px"] + [f"{t} {m} @{int(f * 100)}%" for t, _, m in TARGETS for f in FRACTIONS] + \
        ["pretrain", "pretraining check"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["name"], str(r["image_size"])] + [f"{v:.3f}" for v in r["probe"]] + \
            [f"{r['pretrain_s'] / 60:.1f} min" if r.get("pretrain_s") else "–", r.get("check", "")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _check(run: Run, val: dict) -> str:
    """The method's own validation figure at the last epoch (what it was trained to do)."""
    if run.method == "puzzle" and "val_tile_accuracy" in val:
        return f"tile acc {val['val_tile_accuracy']:.2f}, solved {val.get('val_solved', float('nan')):.2f}"
    if "val_view_top1" in val:
        return f"view top-1 {val['val_view_top1']:.2f} (chance {val['val_view_chance_top1']:.3f})"
    snp = {k: v for k, v in val.items() if k.endswith("_top1") and "chance" not in k}
    return ", ".join(f"{k[4:]} {v:.2f}" for k, v in snp.items())


def run_compare(out: Path, *, repeats: int = 3, epochs_scale: float = 1.0, only=None, device: str = "auto") -> list:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    root = _cohort(out)
    rows, random_rows = [], {}                                   # {size: [random-init row, raw-pixel row]}
    for run in RUNS:
        if only and run.name not in only:
            continue
        info = _pretrain(run, root, out, epochs_scale, device)
        size = info["image_size"]
        baseline = size not in random_rows                       # baseline rows once per input size
        probe, rand, pixels = [], [], []
        for target, task, metric in TARGETS:
            rep = _probe(out / run.name / "encoder.safetensors", root, out / run.name / f"probe-{target}",
                         target, task, repeats, baseline, device)
            probe += _cells(rep, "pretrained", metric)
            if baseline:
                rand += _cells(rep, "random", metric)
                pixels += _cells(rep, "pixels", metric)
        if baseline:
            side = pixel_side(size)
            random_rows[size] = [{"name": f"random init ({size} px)", "image_size": size, "probe": rand},
                                 {"name": f"raw pixels ({side}² of {size} px)", "image_size": size, "probe": pixels}]
        rows.append({"name": run.name, "image_size": size, "probe": probe, "pretrain_s": info["pretrain_s"],
                     "epochs": info["epochs"], "check": _check(run, info["last_validation"])})
    table = [row for pair in random_rows.values() for row in pair] + rows
    text = format_table(table)
    (out / "compare.md").write_text(text + "\n")
    (out / "compare.json").write_text(json.dumps({"common": COMMON, "fractions": FRACTIONS, "repeats": repeats,
                                                  "targets": TARGETS, "rows": table}, indent=2, default=float) + "\n")
    print(text)
    return table


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m medcl.compare", description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="compare-out", help="folder for the cohort, runs and table (reused if there)")
    ap.add_argument("--repeats", type=int, default=3, help="label draws per fraction")
    ap.add_argument("--epochs-scale", type=float, default=1.0, help="multiply every method's epochs (0.1: smoke run)")
    ap.add_argument("--only", help="comma-separated run names (default: all)")
    ap.add_argument("--device", default="auto")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="medcl: %(message)s")
    only = [s.strip() for s in args.only.split(",")] if args.only else None
    run_compare(Path(args.out), repeats=args.repeats, epochs_scale=args.epochs_scale, only=only, device=args.device)


if __name__ == "__main__":
    main()
