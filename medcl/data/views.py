"""Several views of one individual's image for image–image methods (SimCLR, SwAV), by pair strategy.

    ds = ViewsDataset(cohort, "train", pairs="patient", image_size=224, augment=AugmentConfig(),
                      small_crops=6, seed=0)
    item = ds[0]   # {"views": (2, 1, 224, 224), "small": (6, 1, 96, 96), "paired": True, ...}

Pair strategies (``pairs``), which images the positives come from:

    views          two augmentations of the same image
    patient        two different images of the same individual (a follow-up visit, another view),
                   each only resized: the positives differ by what differs between the images
    views+patient  two different images of the same individual, each augmented

An individual with a single image in the split falls back to ``views`` (``paired`` False).
Small crops (SwAV's multi-crop) alternate between the two source images and are always
augmented with ``small_augment``. The randomness of item i comes from a generator seeded by
(seed, epoch, image row); ``fixed_epoch`` pins the epoch (validation sees the same views every
time).
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch
from torch.utils.data import Dataset

from medcl.data.augment import AugmentConfig, augment
from medcl.data.bad_samples import Skipped
from medcl.data.cohort import Cohort
from medcl.data.datasets import _key, load_image
from medcl.data.sampler import mix_seed
from medcl.errors import ConfigError

PAIRS = ("views", "patient", "views+patient")


def small_crop_size(image_size: int) -> int:
    """SwAV's small crops: 96 px for 224 px large crops, scaled to the image size."""
    return max(8, round(image_size * 96 / 224))


def small_crop_augment(large: AugmentConfig) -> AugmentConfig:
    """The large-crop augmentation with SwAV-style small crop areas (radiograph-sized: 10–40%)."""
    return replace(large, crop_scale=(0.1, 0.4))


def partners(cohort: Cohort, rows: np.ndarray) -> dict[int, np.ndarray]:
    """{image row: the other image rows of the same individual among ``rows``}."""
    person = cohort.images["person"].to_numpy(dtype=np.int64)[rows]          # (K,)
    order = np.argsort(person, kind="stable")
    groups = np.split(rows[order], np.flatnonzero(np.diff(person[order])) + 1)
    out = {}
    for g in groups:
        for r in g:
            out[int(r)] = g[g != r]
    return out


class ViewsDataset(Dataset):
    """Views of the images of one split (see the module docstring).

    Item: {"views": (2, 1, S, S) float32, "small": (V, 1, s, s) (when small_crops > 0),
           "paired": () bool (the second view came from another image), "index": image row,
           "person": person row}.
    """

    def __init__(self, cohort: Cohort, split: str | None = "train", *, pairs: str = "views",
                 image_size: int = 224, augment: AugmentConfig | None = None, small_crops: int = 0,
                 small_size: int | None = None, small_augment: AugmentConfig | None = None, seed: int = 0,
                 fixed_epoch: int | None = None, path_column: str = "path"):
        if pairs not in PAIRS:
            raise ConfigError(f"unknown pair strategy {pairs!r}", fix=f"use one of {', '.join(PAIRS)}")
        if image_size < 8:
            raise ConfigError(f"image_size={image_size} is too small for views (at least 8)")
        if small_crops < 0:
            raise ConfigError(f"small_crops={small_crops} must be >= 0")
        self.rows = cohort.images_in(split)                                    # (K,)
        self.paths = cohort.images[path_column].to_numpy(dtype=object)
        self.person = cohort.images["person"].to_numpy(dtype=np.int64)
        self.partners = partners(cohort, self.rows) if pairs != "views" else {}
        self.root, self.pairs, self.image_size, self.seed = cohort.root, pairs, int(image_size), int(seed)
        self.augment = augment if augment is not None else AugmentConfig()
        self.small_crops = int(small_crops)
        self.small_size = int(small_size or small_crop_size(image_size))
        self.small_augment = small_augment or small_crop_augment(self.augment)
        self.fixed_epoch, self.epoch = fixed_epoch, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def paired_fraction(self) -> float:
        """Fraction of this split's images with another image of the same individual."""
        if not self.partners:
            return 0.0
        return float(np.mean([len(self.partners[int(r)]) > 0 for r in self.rows]))

    def __getitem__(self, key):
        epoch, i = _key(key, self.epoch)
        if self.fixed_epoch is not None:
            epoch = self.fixed_epoch
        row = int(self.rows[i])
        g = torch.Generator().manual_seed(mix_seed(self.seed, epoch, row))
        others = self.partners.get(row, ())
        partner = row
        if len(others):
            partner = int(others[int(torch.randint(len(others), (), generator=g))])
        images = {row: load_image(self.paths[row], self.root, row, epoch)}
        if partner != row:
            images[partner] = load_image(self.paths[partner], self.root, partner, epoch)
            if isinstance(images[partner], Skipped):   # the anchor still trains, as views
                partner = row
        if isinstance(images[row], Skipped):
            return images[row]
        sources = (row, partner)
        plain = self.pairs == "patient" and partner != row
        cfg = None if plain else self.augment                                # None: resize only
        views = torch.stack([augment(images[s], cfg, self.image_size, g) for s in sources])
        item = {"views": views, "paired": torch.tensor(partner != row),       # (2, 1, S, S)
                "index": row, "person": int(self.person[row])}
        if self.small_crops:
            item["small"] = torch.stack([augment(images[sources[k % 2]], self.small_augment, self.small_size, g)
                                         for k in range(self.small_crops)])  # (V, 1, s, s)
        return item
