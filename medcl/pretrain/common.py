"""What the methods' builders share: the image-only cohort and the arguments of every cohort."""
from __future__ import annotations


def image_cohort_args(cfg, info, source) -> dict:
    """load_cohort's arguments common to every method: splits drawn with the run's seed, the
    summary logged by rank 0 only, files checked unless a prepared dataset vouches for them."""
    return dict(split_seed=cfg.train.seed, log_summary=info.is_main, check_files=not source.prepared)


def image_cohort(cfg, info, source):
    """The run's images without genetics (simclr, swav, puzzle)."""
    from medcl.data import load_cohort

    return load_cohort(cfg.data.path, modalities=("image",), **image_cohort_args(cfg, info, source))
