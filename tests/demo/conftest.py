"""Fixtures for the demo-cohort tests: one cohort shared by the file and biology tests."""
from __future__ import annotations

import os

import pytest

from medcl.demo import generate_cohort

N, SNPS, SIZE = 200, 400, 128  # large enough for stable correlations, small enough to be quick


@pytest.fixture(scope="session")
def cohort(tmp_path_factory):
    """CohortSummary of a cohort drawn with a fresh seed; assertion messages report summary.seed."""
    seed = int.from_bytes(os.urandom(3), "little")
    out = tmp_path_factory.mktemp("demo") / "cohort"
    return generate_cohort(out, n=N, snps=SNPS, size=SIZE, seed=seed)
