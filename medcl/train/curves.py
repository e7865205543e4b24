"""RUN/curves.png: the training loss (per logged step and per epoch), the validation loss and
the validation metrics per epoch (retrieval top-k with its chance level dashed).

Drawn with matplotlib's object API on the Agg canvas (no pyplot, no display), from the rows of
metrics.csv (:class:`medcl.train.metrics.MetricsWriter` keeps them), at each epoch's end;
written atomically so a viewer never reads half a file.
"""
from __future__ import annotations

import logging
import math
from pathlib import Path

from medcl.files import atomic_write
from medcl.train.summary import retrieval

log = logging.getLogger("medcl")
_warned = False


def _floats(row: dict) -> dict[str, float]:
    out = {}
    for k, v in row.items():
        try:
            f = float(v)
        except (TypeError, ValueError):
            continue
        if math.isfinite(f):
            out[k] = f
    return out


def epoch_rows(rows: list[dict]) -> list[dict]:
    """The per-epoch rows of metrics.csv (those with train_* or val_* columns), as numbers (epoch
    and step as integers)."""
    return [{**r, "epoch": int(r["epoch"]), **({"step": int(r["step"])} if "step" in r else {})}
            for r in map(_floats, rows) if "epoch" in r and any(k.startswith(("train_", "val_")) for k in r)]


def read_metrics(path) -> list[dict]:
    """RUN/metrics.csv as a list of rows (strings, as written)."""
    import csv

    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def plot_curves(rows: list[dict], title: str = ""):
    """A matplotlib Figure of the run's curves; x is the epoch (fractional for step rows)."""
    from matplotlib.figure import Figure

    epochs = epoch_rows(rows)
    rows = [_floats(r) for r in rows]
    metrics = {name: ks for r in epochs[-1:] for name, ks in retrieval(r).items()}
    others = sorted({k for r in epochs for k in r if k.startswith("val_") and k != "val_loss"
                     and not any(k.startswith(f"val_{n}_") for n in metrics)})
    two = bool(metrics or others)
    fig = Figure(figsize=(11 if two else 6, 4.2), layout="constrained")
    _loss_panel(fig.add_subplot(1, 2 if two else 1, 1), rows, epochs)
    if two:
        _validation_panel(fig.add_subplot(1, 2, 2), epochs, metrics, others)
    fig.suptitle(f"medcl pretrain: {title}" if title else "medcl pretrain")
    return fig


def _loss_panel(ax, rows: list[dict], epochs: list[dict]) -> None:
    """Training loss (logged steps and epoch means) and validation loss against the epoch."""
    from matplotlib.ticker import MaxNLocator

    steps = [r for r in rows if "loss" in r and "step" in r]
    ends = [(r["epoch"], r["step"]) for r in epochs if r["epoch"] > 0]
    per_epoch = ends[-1][1] / ends[-1][0] if ends and ends[-1][1] > 0 else None
    if steps:
        x = [r["step"] / per_epoch if per_epoch else r["epoch"] - 0.5 for r in steps]
        ax.plot(x, [r["loss"] for r in steps], color="tab:blue", alpha=0.35, lw=1, label="training (logged steps)")
    train = [(r["epoch"] - 0.5, r["train_loss"]) for r in epochs if "train_loss" in r]
    if train:
        ax.plot(*zip(*train), "o-", color="tab:blue", label="training (epoch mean)")
    val = [(r["epoch"], r["val_loss"]) for r in epochs if "val_loss" in r]
    if val:
        ax.plot(*zip(*val), "s-", color="tab:orange", label="validation")
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("loss")
    ax.set_title("loss")
    ax.grid(alpha=0.3)
    if ax.lines:
        ax.legend(fontsize="small")


def _validation_panel(ax2, epochs: list[dict], metrics: dict, others: list[str]) -> None:
    """Retrieval top-k beside its chance level, and the other validation metrics."""
    from matplotlib.ticker import MaxNLocator

    colors = iter(["tab:green", "tab:red", "tab:purple", "tab:brown", "tab:pink", "tab:olive", "tab:cyan"] * 4)
    for name, ks in metrics.items():
        label = "view 1 → view 2" if name == "view" else f"image → {name}"
        for k, _, _ in ks:
            c = next(colors)
            pts = [(r["epoch"], r[f"val_{name}_top{k}"]) for r in epochs if f"val_{name}_top{k}" in r]
            chance = [(r["epoch"], r[f"val_{name}_chance_top{k}"]) for r in epochs
                      if f"val_{name}_chance_top{k}" in r]
            ax2.plot(*zip(*pts), "o-", color=c, label=f"{label} top-{k}")
            ax2.plot(*zip(*chance), "--", color=c, alpha=0.8, label=f"chance top-{k}")
    for key in others:
        pts = [(r["epoch"], r[key]) for r in epochs if key in r]
        ax2.plot(*zip(*pts), "o-", color=next(colors), label=key[len("val_"):].replace("_", " "))
    ax2.set_xlabel("epoch")
    ax2.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax2.set_ylabel("validation accuracy" if metrics else "validation metric")
    ax2.set_title("validation retrieval" if metrics else "validation")
    ax2.set_ylim(bottom=0)
    ax2.grid(alpha=0.3)
    ax2.legend(fontsize="small")


def write_curves(path: Path, rows: list[dict], title: str = "") -> Path | None:
    """Writes the figure to ``path`` (PNG); None, with one info line per process, without matplotlib."""
    global _warned
    try:
        fig = plot_curves(rows, title)
    except ImportError:
        if not _warned:
            log.info("curves.png not drawn: matplotlib is not installed (pip install matplotlib)")
            _warned = True
        return None
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    FigureCanvasAgg(fig)
    return atomic_write(Path(path), lambda tmp: fig.savefig(tmp, format="png", dpi=100))
