"""Cohort join by FID/IID, splits, augmentation, datasets and resumable loaders.

    from medcl.data import load_cohort, ContigDataset, AugmentConfig, BadSampleLog, make_loader
    cohort = load_cohort(manifest, genotypes=prefix, modalities=("snp",))
    ds = ContigDataset(cohort, "train", image_size=128, augment=AugmentConfig(), seed=0)
    loader = make_loader(ds, 64, shuffle=True, seed=0, epoch=0, bad_log=BadSampleLog(run_dir))
"""
from __future__ import annotations

from medcl.data.augment import AugmentConfig, AugmentParams, apply_params, augment, eval_transform, sample_params
from medcl.data.bad_samples import BadSampleLog, Skipped
from medcl.data.cohort import Cohort, load_cohort
from medcl.data.datasets import ContigDataset, ImageDataset, collate
from medcl.data.genetics import MODALITIES, GeneticsTable
from medcl.data.sampler import Loader, ResumableBatchSampler, make_loader, mix_seed
from medcl.data.splits import hashed_split

__all__ = [
    "AugmentConfig", "AugmentParams", "apply_params", "augment", "eval_transform", "sample_params",
    "BadSampleLog", "Skipped", "Cohort", "load_cohort", "ContigDataset", "ImageDataset", "collate",
    "MODALITIES", "GeneticsTable", "Loader", "ResumableBatchSampler", "make_loader", "mix_seed", "hashed_split",
]
from medcl.data.puzzle import PuzzleDataset  # noqa: E402

__all__ += ["PuzzleDataset"]
