"""Fixtures for the data-layer tests: one small demo cohort per session."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.append(str(Path(__file__).parent))  # the tests here import oracles.py (eager references)

from medcl.demo import generate_cohort

N, SNPS, SIZE = 60, 300, 64


@pytest.fixture(scope="session")
def demo(tmp_path_factory):
    """CohortSummary of a small demo cohort drawn with a fresh seed (reported as demo.seed)."""
    seed = int.from_bytes(os.urandom(3), "little")
    out = tmp_path_factory.mktemp("data") / "cohort"
    return generate_cohort(out, n=N, snps=SNPS, size=SIZE, seed=seed)


@pytest.fixture(scope="session")
def paths(demo):
    """Shortcut: {"manifest", "prs", "burden", "plink"} as strings."""
    p = demo.paths
    return {"manifest": str(p["manifest"]), "prs": str(p["prs"]), "burden": str(p["burden"]),
            "plink": str(p["plink_prefix"])}
