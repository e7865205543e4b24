"""PLINK 1 binary filesets (.bed/.bim/.fam): reading, writing, genotype statistics."""
from __future__ import annotations

from medcl.io._bed_write import write_plink

__all__ = ["write_plink"]
