"""What ``medcl finetune`` shows: the table, a plain-language verdict and the label-efficiency picture.

All three read the report that medcl.downstream.run writes to metrics.json (``summary`` rows of
{encoder, fraction, train_people, metric: {mean, sd, min, max, values}}, ``constant``,
``undefined``, ``headline``), so they can be redrawn from a saved file.
"""
from __future__ import annotations

import math
from pathlib import Path

NAMES = {"pretrained": "pretrained", "random": "random init", "pixels": "raw pixels"}
COLORS = {"pretrained": "#1f77b4", "random": "#7f7f7f", "pixels": "#d62728"}
LABELS = {"auc": "AUC", "accuracy": "accuracy", "macro_auc": "macro AUC", "qwk": "quadratic-weighted kappa",
          "r2": "R²", "mse": "MSE"}
LOWER_IS_BETTER = {"mse"}
R2_FLOOR = -1.0          # the picture's lowest R² (below: worse than predicting a constant, by far)


def _pct(f: float) -> str:
    return f"{f * 100:.3g}%"


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def num(v: float) -> str:
    return f"{v:.3f}" if math.isfinite(v) else "undefined"


def _encoder_name(report: dict, enc: str) -> str:
    if enc == "pixels":
        return f"pixels {report['pixel_side']}²"
    return NAMES.get(enc, enc)


def _constant_note(report: dict) -> str:
    if report.get("constant_note"):                 # the task's own words (reports written since it was saved)
        return report["constant_note"]
    if report["task"] == "regression":
        return "constant: always predicts the training mean (what R² and MSE are worth without the image)"
    return ("constant: ignores the image (AUC 0.5, kappa 0; accuracy: always answering the most common "
            "training class, the majority-class rate)")


def format_table(report: dict) -> str:
    """The metric table: mean ± sd over repeats per encoder and label fraction, and the constant
    predictor's score beside each metric."""
    metrics, people = report["metrics"], report.get("people", {})
    classes = report.get("classes")
    what = report["task"] + (f", classes {'/'.join(map(str, classes))}" if classes else "")
    if classes and report["task"] == "binary":
        what += f" (positive {classes[1]})"
    test = people.get("test", {}).get("people")
    repeats = report.get("config", {}).get("repeats")
    head = f"{report['target']}: {what}; test split" + (f" {_count(test, 'person', 'people')}" if test is not None
                                                        else "") + \
        (f"; mean ± sd over {_count(repeats, 'repeat', 'repeats')}" if repeats else "")
    width = 15
    lines = [head, f"{'encoder':<13} {'labels':>13}  " + "  ".join(f"{LABELS.get(m, m):>{width}}"[-width:]
                                                                      for m in metrics)]
    for row in report["summary"]:
        cells = []
        for m in metrics:
            mean, sd = row[m]["mean"], row[m]["sd"]
            cells.append(f"{num(mean):>7} ± {sd:<5.3f}" if math.isfinite(mean) else f"{'undefined':>{width}}")
        n = row.get("train_people")
        labels = _pct(row["fraction"]) + (f" ({n})" if n is not None else "")
        lines.append(f"{_encoder_name(report, row['encoder']):<13} {labels:>13}  " + "  ".join(cells))
    if report.get("constant"):
        cells = [f"{num(report['constant'][m]):>{width}}" for m in metrics]
        lines.append(f"{'constant':<13} {'-':>13}  " + "  ".join(cells))
        lines.append(_constant_note(report))
    undefined = report.get("undefined") or {}
    for why in dict.fromkeys(undefined.values()):
        lines.append(f"{' and '.join(LABELS.get(m, m) for m, w in undefined.items() if w == why)} undefined: {why}")
    return "\n".join(lines)


def _rows(report: dict, encoder: str) -> dict:
    return {r["fraction"]: r for r in report["summary"] if r["encoder"] == encoder}


def compare_at(pre: dict, base: dict, metric: str) -> str:
    """'better', 'worse' or 'same': whether the pretrained mean ± sd interval lies wholly above
    (below) the baseline's; 'undefined' when either mean is."""
    a, b = pre[metric], base[metric]
    if not (math.isfinite(a["mean"]) and math.isfinite(b["mean"])):
        return "undefined"
    sign = -1.0 if metric in LOWER_IS_BETTER else 1.0
    gap = sign * (a["mean"] - b["mean"])
    if gap > a["sd"] + b["sd"]:
        return "better"
    if -gap > a["sd"] + b["sd"]:
        return "worse"
    return "same"


def verdict(report: dict) -> list[str]:
    """Plain-language lines: did pretrained beat each baseline at each label fraction, beyond the
    spread (mean ± sd over repeats) of both, on the headline metric."""
    metric = report["headline"]
    baselines = [b for b in ("random", "pixels") if any(r["encoder"] == b for r in report["summary"])]
    if not baselines:
        return []
    pre = _rows(report, "pretrained")
    fractions = list(pre)
    if metric in (report.get("undefined") or {}):
        return [f"{LABELS.get(metric, metric)} is undefined on this test split, so the encoders cannot be compared"]
    lines, beat_all = [], {f: True for f in fractions}
    for b in baselines:
        base = _rows(report, b)
        outcome = {f: compare_at(pre[f], base[f], metric) for f in fractions}
        parts = []
        for word, label in (("better", "better"), ("same", "within the spread"), ("worse", "worse")):
            at = [_pct(f) for f in fractions if outcome[f] == word]
            if at:
                parts.append(f"{label} at {', '.join(at)}")
        lines.append(f"{LABELS.get(metric, metric)}, pretrained vs {NAMES[b]}: {'; '.join(parts)}")
        for f in fractions:
            beat_all[f] &= outcome[f] == "better"
    helped = [_pct(f) for f in fractions if beat_all[f]]
    against = " and ".join(NAMES[b] for b in baselines)
    if not helped:
        lines.append(f"pretraining did not help here: at no label fraction did the pretrained encoder beat {against} "
                     "beyond the spread over repeats")
    elif len(helped) == len(fractions):
        lines.append(f"pretraining helped: the pretrained encoder beat {against} at every label fraction")
    else:
        lines.append(f"pretraining helped at {', '.join(helped)} of the labels only (beating {against}); "
                     "elsewhere it did not")
    if (report.get("config") or {}).get("repeats", 2) < 2:
        lines.append("(one repeat: there is no spread, so any difference counts; use --repeats 3 or more)")
    return lines


def r2_floor(report: dict) -> float:
    """The R² panel's lowest value: R2_FLOOR, or lower where the best encoder's mean or the constant
    predictor lie below it (a tiny test split), so that what matters stays in the picture."""
    means = [r["r2"]["mean"] for r in report["summary"] if math.isfinite(r["r2"]["mean"])]
    const = (report.get("constant") or {}).get("r2", float("nan"))
    shown = ([max(means)] if means else []) + ([const] if math.isfinite(const) else [])
    return min([R2_FLOOR] + [v - 0.1 * abs(v) for v in shown])


def plot_label_efficiency(report: dict, path) -> Path:
    """OUT/label_efficiency.png: one panel per metric, test score against the fraction of labelled
    training people (log scale), mean line with a ± sd band and the repeats as dots, per encoder;
    the constant predictor as a dashed line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = report["metrics"]
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.6 * len(metrics), 3.8), squeeze=False)
    for ax, m in zip(axes[0], metrics):
        _metric_panel(ax, report, m)
    axes[0][0].legend(fontsize=8, loc="best")
    test = (report.get("people") or {}).get("test", {}).get("people")
    fig.suptitle(f"{report['target']} ({report['task']}): test split" +
                 (f", {_count(test, 'person', 'people')}" if test else "") +
                 "; band: ± sd over repeats", fontsize=10)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _metric_panel(ax, report: dict, m: str) -> None:
    """One metric's panel: every encoder's curve, the constant predictor, why it is undefined."""
    for enc in dict.fromkeys(r["encoder"] for r in report["summary"]):
        _encoder_curve(ax, report, enc, m)
    if m == "r2":                                      # a 2-person fit can reach R² -15: keep 0..1 readable
        low, high = ax.get_ylim()
        floor = r2_floor(report)
        ax.set_ylim(max(low, floor), min(high, 1.05))
        if low < floor:
            ax.text(0.98, 0.02, f"R² below {floor:.3g} off the scale", transform=ax.transAxes, fontsize=8,
                    color="0.35", ha="right")
    const = (report.get("constant") or {}).get(m, float("nan"))
    if math.isfinite(const):
        ax.axhline(const, ls="--", color="black", lw=1, label="constant predictor")
    if m in (report.get("undefined") or {}):
        ax.text(0.5, 0.5, f"undefined:\n{report['undefined'][m]}", transform=ax.transAxes, ha="center",
                va="center", wrap=True, fontsize=9)
    ax.set_xscale("log")
    fr = sorted({r["fraction"] for r in report["summary"]})
    ax.set_xticks(fr)
    ax.set_xticklabels([_pct(f) for f in fr])
    ax.minorticks_off()
    ax.set_xlabel("labelled training people")
    ax.set_ylabel(LABELS.get(m, m) + (" (lower is better)" if m in LOWER_IS_BETTER else ""))
    ax.grid(alpha=0.3)


def _encoder_curve(ax, report: dict, enc: str, m: str) -> None:
    """Mean line, ± sd band and the repeats as dots of one encoder."""
    rows = sorted(_rows(report, enc).values(), key=lambda r: r["fraction"])
    x = [r["fraction"] for r in rows]
    mean = [r[m]["mean"] for r in rows]
    sd = [r[m]["sd"] for r in rows]
    color = COLORS.get(enc)
    ax.plot(x, mean, "o-", color=color, label=_encoder_name(report, enc), lw=1.8, ms=4)
    ax.fill_between(x, [a - s for a, s in zip(mean, sd)], [a + s for a, s in zip(mean, sd)],
                    color=color, alpha=0.18, lw=0)
    for r in rows:
        vals = [v for v in r[m]["values"] if math.isfinite(v)]
        ax.scatter([r["fraction"]] * len(vals), vals, s=9, color=color, alpha=0.45, lw=0)
