"""RUN/metrics.csv (always) and RUN/tb/ TensorBoard events (when tensorboard is installed; one
info line says so when it is not).

metrics.csv has one row per logged step; its columns grow when a new metric appears (the file
is rewritten with the wider header). On resume, rows after the checkpoint's step are dropped
so the file reads as if the run had never stopped.
"""
from __future__ import annotations

import csv
import logging
import math
from pathlib import Path

log = logging.getLogger("medcl")

FIRST = ["step", "epoch"]


def _fmt(v) -> str:
    if isinstance(v, float):
        return repr(v) if math.isfinite(v) else str(v)
    return str(v)


class MetricsWriter:
    def __init__(self, run_dir: Path | None, *, enabled: bool = True, resume_step: int | None = None,
                 tensorboard: bool = True):
        """run_dir None (or ``enabled`` False): nothing is written (a rank other than 0, a fine-tuning)."""
        self.path = None if run_dir is None else Path(run_dir) / "metrics.csv"
        self.enabled = enabled and run_dir is not None
        self.columns: list[str] = list(FIRST)
        self.rows: list[dict] = []
        self._tb = None
        if not enabled:
            return
        if resume_step is not None and self.path.is_file():
            with open(self.path, newline="") as fh:
                reader = csv.DictReader(fh)
                self.columns = list(reader.fieldnames or FIRST)
                self.rows = [r for r in reader if int(r["step"]) <= resume_step]
            self._rewrite()
        elif self.path.exists():
            self.path.unlink()
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
                self._tb = SummaryWriter(log_dir=str(Path(run_dir) / "tb"), purge_step=resume_step)
            except ImportError:
                self._tb = None
                log.info("no TensorBoard events in %s: tensorboard is not installed (pip install tensorboard); "
                         "metrics.csv and curves.png hold the same numbers", Path(run_dir) / "tb")

    def _rewrite(self) -> None:
        with open(self.path, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=self.columns, restval="")
            w.writeheader()
            w.writerows(self.rows)

    def log(self, step: int, epoch: int, values: dict[str, float]) -> None:
        if not self.enabled:
            return
        row = {"step": str(step), "epoch": str(epoch), **{k: _fmt(v) for k, v in values.items()}}
        self.rows.append(row)
        new = [k for k in row if k not in self.columns]
        if new:
            self.columns += new
            self._rewrite()
        else:
            with open(self.path, "a", newline="") as fh:
                csv.DictWriter(fh, fieldnames=self.columns, restval="").writerow(row)
        if self._tb is not None:
            for k, v in values.items():
                if isinstance(v, (int, float)):
                    self._tb.add_scalar(k, v, step)

    def close(self) -> None:
        if self._tb is not None:
            self._tb.flush()
            self._tb.close()
            self._tb = None
