"""Bad samples: skipped, written to RUN/bad_samples.csv, counted; too many stop the run.

A dataset that cannot decode an image returns a :class:`Skipped` marker instead of an item
(it pickles, so it crosses from DataLoader workers to the main process); ``collate`` drops
the markers and hands them, with the number of items seen, to a :class:`BadSampleLog` living in
the main process, which appends one CSV row per failure (path, reason, epoch) and raises a
:class:`~medcl.errors.MedclError` once more than ``max_bad_fraction`` of the samples seen were
bad. Reasons hold the error type and medcl's own message (which never quotes DICOM header
values); the text of foreign exceptions is not recorded.
"""
from __future__ import annotations

import csv
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from medcl.errors import MedclError

log = logging.getLogger("medcl")

COLUMNS = ("path", "reason", "epoch")
FILENAME = "bad_samples.csv"


@dataclass
class Skipped:
    """Returned by a dataset in place of an item that could not be loaded."""

    index: int  # image row
    path: str  # image path, relative to the manifest's folder when it lies below it
    reason: str  # "ErrorType: message", no header values
    epoch: int = 0


def display_path(path, root) -> str:
    """``path`` relative to ``root`` when it lies below it, else as given."""
    path = os.fspath(path)
    if root is not None:
        try:
            rel = os.path.relpath(path, os.fspath(root))
        except ValueError:  # another drive (Windows)
            return path
        if not rel.startswith(os.pardir):
            return rel
    return path


def reason_of(exc: BaseException) -> str:
    """``"DicomError: not a readable DICOM file (...)"`` for medcl errors (without the path they
    prepend); only the type (and strerror for OS errors) for anything else."""
    name = type(exc).__name__
    if isinstance(exc, MedclError):
        text = str(exc)
        if exc.path and text.startswith(f"{exc.path}: "):
            text = text[len(exc.path) + 2:]
        return f"{name}: {text}"
    if isinstance(exc, OSError) and exc.strerror:
        return f"{name}: {exc.strerror}"
    return name


class BadSampleLog:
    """Appends skipped samples to ``run_dir/bad_samples.csv`` and enforces ``max_bad_fraction``.

    run_dir: None keeps the counts without writing a file.
    max_bad_fraction: stop (MedclError) once bad / seen exceeds it ...
    min_seen: ... and at least this many samples were seen, so one bad image in the first
        batch does not end a run over a million images. 0 checks from the first sample.
    rank: rank > 0 writes ``bad_samples.rank<r>.csv`` so that processes never share a file.
    """

    def __init__(self, run_dir=None, *, max_bad_fraction: float = 0.01, min_seen: int = 100, rank: int = 0):
        if not 0.0 <= max_bad_fraction <= 1.0:
            raise MedclError(f"max_bad_fraction={max_bad_fraction} is not a fraction",
                             fix="use a number between 0 and 1, e.g. 0.01")
        self.path = None
        if run_dir is not None:
            name = FILENAME if rank == 0 else f"bad_samples.rank{rank}.csv"
            self.path = Path(os.fspath(run_dir)) / name
        self.max_bad_fraction = float(max_bad_fraction)
        self.min_seen = int(min_seen)
        self.bad = 0
        self.seen = 0

    def state_dict(self) -> dict:
        """Counts, for a checkpoint (a resumed run keeps counting where it stopped)."""
        return {"bad": self.bad, "seen": self.seen}

    def load_state_dict(self, state: dict) -> None:
        self.bad, self.seen = int(state["bad"]), int(state["seen"])

    def _write(self, rows: list) -> None:
        if self.path is None or not rows:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        new = not self.path.exists() or self.path.stat().st_size == 0
        with open(self.path, "a", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            if new:
                writer.writerow(COLUMNS)
            writer.writerows([(s.path, s.reason, s.epoch) for s in rows])
            fh.flush()

    def record(self, skipped: list, seen: int) -> None:
        """Count ``seen`` samples of which ``skipped`` (Skipped markers) failed; write and check."""
        self.seen += int(seen)
        self.bad += len(skipped)
        if skipped:
            self._write(skipped)
            kinds = sorted({s.reason.split(":")[0] for s in skipped})
            where = f"; see {self.path}" if self.path is not None else ""
            log.warning(f"skipped {len(skipped)} bad sample(s) ({', '.join(kinds)}); "
                        f"{self.bad} of {self.seen} so far{where}")
        self.check()

    def check(self, bad: int | None = None, seen: int | None = None) -> None:
        """Raise MedclError when the bad fraction exceeds the limit. ``bad``/``seen`` override the
        local counts, e.g. with totals summed over ranks so that every rank stops together."""
        bad = self.bad if bad is None else int(bad)
        seen = self.seen if seen is None else int(seen)
        if seen and seen >= self.min_seen and bad / seen > self.max_bad_fraction:
            where = f" (listed in {self.path})" if self.path is not None else ""
            raise MedclError(f"{bad} of {seen} samples could not be read{where}, more than the "
                             f"{self.max_bad_fraction:g} allowed",
                             fix="fix or drop those files in the manifest, or raise --max-bad-fraction")
