"""Seeds mixed from integers: the one source of every data generator's seed (batch order,
views, puzzles), so a resumed run draws exactly what an uninterrupted one would."""
from __future__ import annotations

import numpy as np


def mix_seed(*values: int) -> int:
    """A well-mixed 63-bit seed from non-negative integers (e.g. seed, epoch, index)."""
    state = np.random.SeedSequence([int(v) for v in values]).generate_state(2, dtype=np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1])) & ((1 << 63) - 1)
