"""Cohort join by FID/IID, splits, augmentation, datasets and resumable loaders.

    from medcl.data import load_cohort, ContigDataset, AugmentConfig, BadSampleLog, make_loader
    cohort = load_cohort(manifest, genotypes=prefix, modalities=("snp",))
    ds = ContigDataset(cohort, "train", image_size=128, augment=AugmentConfig(), seed=0)
    loader = make_loader(ds, 64, shuffle=True, seed=0, epoch=0, bad_log=BadSampleLog(run_dir))

Datasets yield recipes (raw frames + view parameters); medcl.data.recipes decodes and augments
them per batch, in the loader's workers or on the training device (DeviceBatches).
"""
from __future__ import annotations

from medcl.data.augment import AugmentConfig, AugmentParams, sample_params
from medcl.data.bad_samples import BadSampleLog, Skipped
from medcl.data.cohort import Cohort, load_cohort
from medcl.data.datasets.contig import ContigDataset
from medcl.data.datasets.images import ImageDataset
from medcl.data.genetics import MODALITIES, GeneticsTable
from medcl.data.datasets.puzzle import PuzzleDataset
from medcl.data.recipes import DeviceBatches, decode_place, loader_collate
from medcl.data.sampler import Loader, ResumableBatchSampler, make_loader
from medcl.data.seeding import mix_seed
from medcl.data.splits import hashed_split

__all__ = [
    "AugmentConfig", "AugmentParams", "sample_params", "BadSampleLog", "Skipped", "Cohort", "load_cohort",
    "ContigDataset", "ImageDataset", "PuzzleDataset", "MODALITIES", "GeneticsTable", "DeviceBatches",
    "decode_place", "loader_collate", "Loader", "ResumableBatchSampler", "make_loader", "mix_seed", "hashed_split",
]
