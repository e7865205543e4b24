"""Reading a run: the epoch line, the end-of-run comments and curves.png."""
from __future__ import annotations

import re

import pytest

from medcl.train.curves import plot_curves, write_curves
from medcl.train.summary import comments, epoch_line, fmt

ROW = {"train_loss": 4.123456789, "train_loss_snp": 4.0001234, "val_loss": 3.33212345,
       "val_snp_top1": 0.0270270, "val_snp_chance_top1": 1 / 26, "val_snp_top5": 0.189189,
       "val_snp_chance_top5": 5 / 26}


def _history(top1, losses):
    return [{"epoch": e, "step": 10 * e, "train_loss": 5.0 - e, "val_loss": v, "val_snp_top1": top1,
             "val_snp_chance_top1": 1 / 26, "val_snp_top5": min(5 * top1, 1.0), "val_snp_chance_top5": 5 / 26}
            for e, v in enumerate(losses, start=1)]


def test_epoch_line_is_short_and_rounded():
    line = epoch_line(ROW, lr=0.00098765, samples_per_s=480.123)
    assert line == ("train loss 4.12 (snp 4), lr 0.00099, 480 samples/s; validation loss 3.33, "
                    "image → snp top-1 2.7% (chance 3.85%), top-5 18.9% (chance 19.2%)")
    for number in re.findall(r"\d+(?:\.\d+)?", line):                # 3 significant digits at most
        assert len(number.replace(".", "").lstrip("0")) <= 3, number
    assert fmt(12345.678) == "12346" and fmt(float("nan")) == "nan"


def test_retrieval_at_chance_is_said():
    [said] = comments(_history(0.04, [3.3, 3.2]))
    assert "no better than chance" in said and "image → snp" in said and "26 candidates" in said
    assert comments(_history(0.6, [3.3, 3.2])) == []          # far above chance, loss falling: nothing to say


def test_rising_validation_loss_is_said():
    [said] = comments(_history(0.6, [3.3, 3.0, 4.1]))
    assert "validation loss rose from 3 (epoch 2, its lowest) to 4.1 (epoch 3)" in said
    assert "overfitting" in said and "--lr" in said
    assert comments(_history(0.6, [3.3, 3.0, 3.2])) == []     # within 10% of the best


def test_curves_show_losses_and_chance(tmp_path):
    rows = [{"step": str(s), "epoch": str((s - 1) // 5 + 1), "loss": str(5 - 0.1 * s), "lr": "0.001"}
            for s in range(1, 16)]
    rows += [{"step": str(5 * e), "epoch": str(e), **{k: str(v) for k, v in h.items() if k not in ("epoch", "step")}}
             for e, h in enumerate(_history(0.1, [3.3, 3.2, 3.1]), start=1)]
    fig = plot_curves(rows, "contig")
    loss_ax, val_ax = fig.axes
    assert [ln.get_label() for ln in loss_ax.lines] == ["training (logged steps)", "training (epoch mean)", "validation"]
    assert list(loss_ax.lines[0].get_xdata()) == pytest.approx([s / 5 for s in range(1, 16)])
    chance = [ln for ln in val_ax.lines if ln.get_label().startswith("chance")]
    assert len(chance) == 2 and all(ln.get_linestyle() == "--" for ln in chance)
    assert list(chance[0].get_ydata()) == pytest.approx([1 / 26] * 3)
    assert loss_ax.get_xlabel() == "epoch" and "contig" in fig._suptitle.get_text()
    out = write_curves(tmp_path / "curves.png", rows, "contig")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
