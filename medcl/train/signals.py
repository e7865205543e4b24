"""Preemption: SIGTERM / SIGUSR1 (SLURM's warning signals) ask training to stop after the step.

The handler only sets a flag; the engine checks it after each optimizer step, agrees with
every rank (one all-reduce), writes a checkpoint and raises :class:`Preempted`, which the CLI
turns into exit code 143 (128 + SIGTERM), the code schedulers expect for a requeue.
"""
from __future__ import annotations

import signal

EXIT_CODE = 143


class Preempted(Exception):
    """Training stopped on a signal after checkpointing."""

    exit_code = EXIT_CODE

    def __init__(self, checkpoint, signum: int):
        self.checkpoint, self.signum = checkpoint, signum
        super().__init__(f"stopped on signal {signal.Signals(signum).name} after saving {checkpoint}; "
                         "resume with --resume auto")


class StopFlag:
    """Installs handlers for SIGTERM and SIGUSR1 while in a ``with`` block."""

    SIGNALS = (signal.SIGTERM, signal.SIGUSR1)

    def __init__(self):
        self.signum: int | None = None
        self._old = {}

    def _handle(self, signum, frame):
        self.signum = signum

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def __enter__(self):
        for s in self.SIGNALS:
            try:
                self._old[s] = signal.signal(s, self._handle)
            except ValueError:  # not the main thread: leave the default handlers
                pass
        return self

    def __exit__(self, *exc):
        for s, old in self._old.items():
            signal.signal(s, old)
        self._old.clear()
