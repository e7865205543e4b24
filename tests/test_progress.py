"""Progress bars and log lines share a terminal without gluing into each other."""
from __future__ import annotations

import io
import re
import logging
import sys

from medcl.progress import Progress


def test_log_lines_print_above_the_bar(monkeypatch):
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    log = logging.getLogger("medcl")
    handler = logging.StreamHandler(sys.stderr)                 # what the CLI installs
    handler.setFormatter(logging.Formatter("medcl: %(message)s"))
    monkeypatch.setattr(log, "handlers", [handler])
    monkeypatch.setattr(log, "propagate", False)
    monkeypatch.setattr(log, "level", logging.INFO)
    p = Progress("train", 10, bar=True)
    p.update(3, postfix="loss 1.5")
    log.info("epoch 1/2: validation loss 3.3")
    p.update(6)
    p.close()
    assert log.handlers == [handler]                            # restored when the bar closes
    text = err.getvalue()
    [line] = [seg for seg in re.split(r"[\r\n]", text) if "validation loss" in seg]
    assert line == "medcl: epoch 1/2: validation loss 3.3"      # alone on its line, not after the bar
    assert "train" in text                                      # the bar was drawn
