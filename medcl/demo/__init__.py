"""The built-in synthetic demo cohort: chest radiographs (DICOM), PLINK genotypes, tables.

    from medcl.demo import generate_cohort
    summary = generate_cohort("demo", n=1000, snps=2000, size=256, seed=0)

See cohort.py for the folder layout and the README.md written into it for the
generative model.
"""
from __future__ import annotations

from medcl.demo.cohort import CohortSummary, generate_cohort

__all__ = ["generate_cohort", "CohortSummary"]
