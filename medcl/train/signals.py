"""Stopping on a signal: SIGTERM / SIGUSR1 (SLURM's warning signals) and SIGINT (Ctrl-C) ask
training to stop after the current step.

The handler only sets a flag; the engine checks it after each micro-batch, agrees with every
rank (one all-reduce), writes a checkpoint at the next optimizer step (or at once at an epoch
boundary) and raises :class:`Preempted`, which the CLI turns into exit code 128 + the signal's
number for SIGINT (130) and 143 for SIGTERM and SIGUSR1, the code schedulers expect for a
requeue. A second SIGINT while the first is being honoured aborts at once (KeyboardInterrupt,
no checkpoint), as Ctrl-C always does.
"""
from __future__ import annotations

import logging
import os
import signal

EXIT_CODE = 143

log = logging.getLogger("medcl")


class Preempted(Exception):
    """Training stopped on a signal after checkpointing."""

    def __init__(self, checkpoint, signum: int):
        self.checkpoint, self.signum = checkpoint, signum
        self.exit_code = 128 + signal.SIGINT if signum == signal.SIGINT else EXIT_CODE
        name = signal.Signals(signum).name
        if checkpoint is None:  # a training without a run folder (fine-tuning): nothing to resume from
            super().__init__(f"stopped on signal {name}; this training keeps no checkpoint, so nothing was saved")
        else:
            super().__init__(f"stopped on signal {name} after saving {checkpoint}; resume with --resume auto")


class StopFlag:
    """Installs handlers for SIGTERM, SIGUSR1 and SIGINT while in a ``with`` block."""

    SIGNALS = (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT)

    def __init__(self):
        self.signum: int | None = None
        self._old = {}
        self._pid = os.getpid()

    def _handle(self, signum, frame):
        if os.getpid() != self._pid:
            # A forked child (a DataLoader worker) inherited this handler. Ctrl-C reaches the whole
            # process group: the main process alone decides, and shuts its workers down. Any other
            # signal does to the child what it does by default.
            if signum != signal.SIGINT:
                signal.signal(signum, signal.SIG_DFL)
                os.kill(os.getpid(), signum)
            return
        if signum == signal.SIGINT:
            if self.signum == signal.SIGINT:  # the second Ctrl-C: stop now, without a checkpoint
                raise KeyboardInterrupt
            log.warning("interrupted: saving a checkpoint after this step (resume with --resume auto); "
                        "press Ctrl-C again to stop at once without one")
        if self.signum is None or signum == signal.SIGINT:
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
