"""The demo cohort used when a command gets no data: generated once into a cache folder."""
from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger("medcl")

VERSION = 1  # bump when the generator's output changes


def cache_root() -> Path:
    """$MEDCL_CACHE_DIR, else $XDG_CACHE_HOME/medcl, else ~/.cache/medcl."""
    if os.environ.get("MEDCL_CACHE_DIR"):
        return Path(os.environ["MEDCL_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "medcl"


def demo_cohort(*, n: int = 1000, snps: int = 2000, size: int = 256, seed: int = 0, create: bool = True) -> Path:
    """The folder of the cached demo cohort (manifest.csv, genotypes/demo, prs.csv, ...)."""
    from medcl.demo import generate_cohort

    path = cache_root() / f"demo-v{VERSION}-n{n}-snps{snps}-size{size}-seed{seed}"
    if (path / "manifest.csv").is_file():
        log.info("no data given: using the demo cohort at %s", path)
        return path
    if not create:
        return path
    log.info("no data given: generating the demo cohort at %s (first use only)", path)
    generate_cohort(path, n=n, snps=snps, size=size, seed=seed)
    return path
