"""Progress reporting: a tqdm bar when stderr is a terminal, else one log line now and then.

    with Progress("images", total=1300) as p:
        for ...: p.update(done)

Long jobs in scripts and batch queues get plain, greppable lines (``medcl: images 400/1300
(31%) 12.5/s ETA 0:01:12``) instead of carriage-return bars in their log files. While a bar is
shown, the "medcl" logger's console lines go through ``tqdm.write`` (tqdm's own
``logging_redirect_tqdm``), so a log line prints above the bar instead of glued onto it.
"""
from __future__ import annotations

import logging
import sys
import time

log = logging.getLogger("medcl")


def _eta(seconds: float) -> str:
    s = int(max(seconds, 0))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


class Progress:
    """Reports ``done`` out of ``total`` for one stage.

    bar: None → a tqdm bar iff stderr is a terminal and tqdm is installed.
    every_s: the least time between two log lines when there is no bar.
    every_n: when set, a log line every ``every_n`` units of progress instead (training steps).
    """

    def __init__(self, stage: str, total: int, *, bar: bool | None = None, every_s: float = 10.0,
                 every_n: int | None = None, start: int = 0):
        self.stage, self.total, self.every_s, self.every_n = stage, max(int(total), 0), every_s, every_n
        self.done = self._start = self._last_n = int(start)
        self._t0 = self._last = time.monotonic()
        self._bar = self._redirect = None
        if bar is None:
            bar = sys.stderr.isatty()
        if bar:
            try:
                from tqdm import tqdm
                from tqdm.contrib.logging import logging_redirect_tqdm
            except ImportError:
                return
            self._bar = tqdm(total=self.total, initial=self.done, desc=stage, unit="it", leave=False,
                             dynamic_ncols=True)
            if any(isinstance(h, logging.StreamHandler) and h.stream in (sys.stdout, sys.stderr)
                   for h in log.handlers):  # the CLI's console handler (not a library caller's root logging)
                self._redirect = logging_redirect_tqdm(loggers=[log])
                self._redirect.__enter__()

    def update(self, done: int, total: int | None = None, postfix: str = "") -> None:
        """Progress is now ``done``; ``postfix`` (e.g. "loss 0.31 lr 1e-3") goes on the bar or line."""
        if total is not None and total != self.total:
            self.total = int(total)
            if self._bar is not None:
                self._bar.total = self.total
        if self._bar is not None:
            self._bar.update(done - self.done)
            if postfix:
                self._bar.set_postfix_str(postfix, refresh=False)
            self.done = done
            return
        self.done = done
        now = time.monotonic()
        if self.every_n is not None:
            due = done - self._last_n >= self.every_n or done == self.total
        else:
            due = now - self._last >= self.every_s and 0 < done < self.total
        if due and done > self._start:
            self._last, self._last_n = now, done
            rate = (done - self._start) / max(now - self._t0, 1e-9)
            log.info("%s %d/%d (%d%%)%s %.2f/s ETA %s", self.stage, done, self.total,
                     100 * done // max(self.total, 1), f" {postfix}" if postfix else "", rate,
                     _eta((self.total - done) / max(rate, 1e-9)))

    def close(self) -> float:
        """Ends the stage; returns its seconds."""
        if self._redirect is not None:
            self._redirect.__exit__(None, None, None)
            self._redirect = None
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        return time.monotonic() - self._t0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class StagedProgress:
    """A ``callback(done, total, stage)`` that keeps one :class:`Progress` per stage."""

    def __init__(self, **kwargs):
        self._kwargs = kwargs
        self._current: Progress | None = None

    def __call__(self, done: int, total: int, stage: str) -> None:
        if self._current is None or self._current.stage != stage:
            self.close()
            self._current = Progress(stage, total, **self._kwargs)
        self._current.update(done, total)

    def close(self) -> None:
        if self._current is not None:
            self._current.close()
            self._current = None
