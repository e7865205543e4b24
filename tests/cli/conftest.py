"""Fixtures of the CLI tests."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    """A tiny demo cohort (60 people, 200 SNPs, 64-pixel radiographs), one per test module."""
    from medcl.demo import generate_cohort
    out = tmp_path_factory.mktemp("tiny") / "cohort"
    generate_cohort(out, n=60, snps=200, size=64, seed=1)
    return out
