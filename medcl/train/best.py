"""Model selection by a validation metric: the weights of the epoch where it was highest.

The first epoch's weights are always kept; a later epoch replaces them when its value is finite
and higher (a metric the validation split cannot define, NaN, never selects an epoch).
"""
from __future__ import annotations

import math

from torch import nn


class BestState:
    def __init__(self, metric: str):
        self.metric = metric      # the key of the validation row to maximise, e.g. "val_auc"
        self.epoch: int | None = None
        self.score = -math.inf
        self.state: dict | None = None  # a CPU copy of the method's state_dict

    def offer(self, epoch: int, row: dict, method: nn.Module) -> bool:
        """Keeps ``method``'s weights when ``row`` (an epoch's validation) is the best so far."""
        value = float(row.get(self.metric, math.nan))
        if self.state is not None and not (math.isfinite(value) and value > self.score):
            return False
        self.epoch, self.score = epoch, value if math.isfinite(value) else -math.inf
        self.state = {k: v.detach().to("cpu", copy=True) for k, v in method.state_dict().items()}
        return True

    def load_into(self, method: nn.Module) -> None:
        """Puts the kept weights back into ``method`` (nothing when no epoch was offered)."""
        if self.state is not None:
            method.load_state_dict(self.state)

    def state_dict(self) -> dict:
        return {"metric": self.metric, "epoch": self.epoch, "score": self.score, "state": self.state}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.score, self.state = state["epoch"], state["score"], state["state"]
