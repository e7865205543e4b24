"""Words for the numbers of a run: the one log line per epoch and the comments at its end.

``epoch_line`` turns an epoch's row (``train_*`` means over its micro-batches, ``val_*`` from the
method's ``evaluate``) into a short line with 3 significant digits and retrieval as percentages
beside their chance level. ``comments`` reads the per-epoch history and says plainly when the
validation numbers mean little: retrieval no better than chance, or a validation loss that rose.
"""
from __future__ import annotations

import math
import re

_RETRIEVAL = re.compile(r"^val_(.+)_top(\d+)$")


def fmt(v: float) -> str:
    """3 significant digits (integers past 1000 in full)."""
    if not isinstance(v, (int, float)) or not math.isfinite(v):
        return str(v)
    return f"{v:.0f}" if abs(v) >= 1000 else f"{v:.3g}"


def pct(v: float) -> str:
    return f"{100 * v:.3g}%"


def retrieval(row: dict) -> dict[str, list[tuple[int, float, float]]]:
    """{name: [(k, top-k, chance of top-k), …]} for every val_<name>_top<k> that has its chance."""
    out: dict[str, list] = {}
    for key, v in row.items():
        m = _RETRIEVAL.match(key)
        chance = row.get(f"val_{m.group(1)}_chance_top{m.group(2)}") if m else None
        if m and chance is not None:
            out.setdefault(m.group(1), []).append((int(m.group(2)), float(v), float(chance)))
    return {name: sorted(ks) for name, ks in out.items()}


def _label(name: str) -> str:
    return "view-1 → view-2" if name == "view" else f"image → {name}"


def epoch_line(row: dict, *, lr: float | None = None, samples_per_s: float | None = None) -> str:
    """e.g. 'train loss 4.07 (snp 4.07), lr 0.0005, 480 samples/s; validation loss 3.42,
    image → snp top-1 2.7% (chance 3.8%), top-5 21.6% (chance 19.2%)'."""
    parts = []
    if "train_loss" in row:
        terms = [f"{k[len('train_loss_'):]} {fmt(v)}" for k, v in row.items() if k.startswith("train_loss_")]
        parts.append(f"train loss {fmt(row['train_loss'])}" + (f" ({', '.join(terms)})" if terms else ""))
    parts += [f"{k[len('train_'):]} {fmt(v)}" for k, v in row.items()
              if k.startswith("train_") and k != "train_loss" and not k.startswith("train_loss_")]
    if lr is not None:
        parts.append(f"lr {lr:.2g}")
    if samples_per_s:
        parts.append(f"{samples_per_s:.3g} samples/s")
    line = ", ".join(parts)
    ret = retrieval(row)
    shown = {f"val_{n}_top{k}" for n, ks in ret.items() for k, _, _ in ks} | \
            {f"val_{n}_chance_top{k}" for n, ks in ret.items() for k, _, _ in ks}
    val = [f"loss {fmt(row['val_loss'])}"] if "val_loss" in row else []
    for name, ks in ret.items():
        val.append(f"{_label(name)} " + ", ".join(f"top-{k} {pct(v)} (chance {pct(c)})" for k, v, c in ks))
    val += [f"{k[len('val_'):]} {fmt(v)}" for k, v in row.items()
            if k.startswith("val_") and k != "val_loss" and k not in shown]
    if val:
        line += ("; " if line else "") + "validation " + ", ".join(val)
    return line or "no metrics"


def at_chance(ks: list[tuple[int, float, float]]) -> bool:
    """True when no top-k beats its chance level by 2 standard errors. The chance of top-1 is
    1/K for K candidates; there are at least K queries, so K stands in for their number (the
    noise it implies is, if anything, too large)."""
    candidates = max(round(1 / ks[0][2]), 1) if ks[0][2] > 0 else 1
    return all(v <= c + 2 * math.sqrt(c * (1 - c) / candidates) for _, v, c in ks)


def comments(history: list[dict], *, rise: float = 0.1) -> list[str]:
    """Plain warnings about the validation numbers of a finished run (none when they look sound)."""
    out = []
    if not history:
        return out
    last = history[-1]
    for name, ks in retrieval(last).items():
        if at_chance(ks):
            scores = ", ".join(f"top-{k} {pct(v)} (chance {pct(c)})" for k, v, c in ks)
            what = "two views of the same image" if name == "view" else f"an image and its own person's {name} data"
            out.append(f"validation {_label(name)} retrieval after epoch {last['epoch']} is no better than chance "
                       f"({scores}, {round(1 / ks[0][2])} candidates): the embeddings do not yet pair {what}")
    losses = [(h["epoch"], h["val_loss"]) for h in history if isinstance(h.get("val_loss"), (int, float))]
    if len(losses) >= 2:
        best_epoch, best = min(losses, key=lambda t: t[1])
        final_epoch, final = losses[-1]
        if final > best + rise * abs(best):
            trained = [(h["epoch"], h["train_loss"]) for h in history if "train_loss" in h]
            train = (f" while the training loss went from {fmt(trained[0][1])} to {fmt(trained[-1][1])}"
                     if len(trained) >= 2 else "")
            out.append(f"validation loss rose from {fmt(best)} (epoch {best_epoch}, its lowest) to {fmt(final)} "
                       f"(epoch {final_epoch}){train}: the model fits the training people better than new ones "
                       "(overfitting) or the learning rate is too high; fewer --epochs, a lower --lr or more data "
                       "may help. encoder.safetensors holds the final weights, not those of the best epoch")
    return out
