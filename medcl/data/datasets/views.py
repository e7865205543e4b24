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
time). ``fit`` says how a non-square image fills the square views (pad, crop, squash;
:mod:`medcl.data.fit`).
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from medcl.data.augment import AugmentConfig
from medcl.data.bad_samples import Skipped
from medcl.data.cohort import Cohort
from medcl.data.sources import FileSource, frame_numbers
from medcl.data.datasets.base import RecipeDataset, frame_info, item_key, load_raw, view_params
from medcl.data.fit import DEFAULT_FIT, check_fit
from medcl.data.recipes import Request
from medcl.data.seeding import mix_seed
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


class ViewsDataset(RecipeDataset):
    """Views of the images of one split (see the module docstring).

    Item: {"views": (2, 1, S, S) float32, "small": (V, 1, s, s) (when small_crops > 0),
           "paired": () bool (the second view came from another image), "index": image row,
           "person": person row}.
    """

    def __init__(self, cohort: Cohort, split: str | None = "train", *, pairs: str = "views",
                 image_size: int = 224, augment: AugmentConfig | None = None, small_crops: int = 0,
                 small_size: int | None = None, small_augment: AugmentConfig | None = None, seed: int = 0,
                 fixed_epoch: int | None = None, path_column: str = "path", source=None, fit: str = DEFAULT_FIT):
        if pairs not in PAIRS:
            raise ConfigError(f"unknown pair strategy {pairs!r}", fix=f"use one of {', '.join(PAIRS)}")
        if image_size < 8:
            raise ConfigError(f"image_size={image_size} is too small for views (at least 8)")
        if small_crops < 0:
            raise ConfigError(f"small_crops={small_crops} must be >= 0")
        self.rows = cohort.images_in(split)                                    # (K,)
        self.paths = cohort.images[path_column].to_numpy(dtype=object)
        self.person = cohort.images["person"].to_numpy(dtype=np.int64)
        self.frames = frame_numbers(cohort.images, path_column)                # (N_images,) int or None
        self.partners = partners(cohort, self.rows) if pairs != "views" else {}
        self.root, self.pairs, self.image_size, self.seed = cohort.root, pairs, int(image_size), int(seed)
        self.source = source or cohort.source or FileSource()
        self.augment = augment if augment is not None else AugmentConfig()
        self.small_crops = int(small_crops)
        self.small_size = int(small_size or small_crop_size(image_size))
        self.small_augment = small_augment or small_crop_augment(self.augment)
        self.fixed_epoch, self.epoch = fixed_epoch, 0
        self.fit = check_fit(fit)

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

    def recipe(self, key):
        epoch, i = item_key(key, self.epoch)
        if self.fixed_epoch is not None:
            epoch = self.fixed_epoch
        row = int(self.rows[i])
        g = torch.Generator().manual_seed(mix_seed(self.seed, epoch, row))
        others = self.partners.get(row, ())
        partner = row
        if len(others):
            partner = int(others[int(torch.randint(len(others), (), generator=g))])
        raws = [load_raw(self.source, self.paths[row], self.root, row, epoch, self.frames[row])]
        if isinstance(raws[0], Skipped):
            return raws[0]
        if partner != row:
            other = load_raw(self.source, self.paths[partner], self.root, partner, epoch, self.frames[partner])
            if isinstance(other, Skipped):                                  # the anchor still trains, as views
                partner = row
            else:
                raws.append(other)
        info = [frame_info(r, self.paths[r], self.root, epoch) for r in (row, partner)[:len(raws)]]
        paired = partner != row
        if self.pairs == "views":                        # one group: both views from the anchor
            slots, large_views = [0], 2
        else:                                            # two groups of one view: anchor, partner (or anchor again)
            slots, large_views = ([0, 1] if paired else [0, 0]), 1
        plain = self.pairs == "patient" and paired
        cfg = None if plain else self.augment                                # None: resize only
        sources = [raws[s] for s in slots]
        requests = {"views": Request(slots=slots, shape=self.image_size, fit=self.fit,    # (B, 2, 1, S, S)
                                     params=view_params(cfg, sources, self.image_size, large_views, g, self.fit))}
        if self.small_crops:
            per = -(-self.small_crops // len(slots))
            pick = torch.tensor([(k % len(slots)) * per + k // len(slots) for k in range(self.small_crops)])
            requests["small"] = Request(slots=slots, shape=self.small_size, pick=pick, fit=self.fit,  # alternating
                                        params=view_params(self.small_augment, sources, self.small_size, per, g,
                                                           self.fit))
        return {"raws": raws, "info": info, "requests": requests, "paired": torch.tensor(paired),
                "index": row, "person": int(self.person[row])}
