"""Datasets over a cohort's images, as recipes.

``ContigDataset`` yields one augmented view of an image with its person's genetics; the
randomness of item i comes from a generator seeded by (seed, epoch, image row), so a resumed
run sees exactly the data an uninterrupted one would. ``ImageDataset`` yields eval-transformed
images for embedding and fine-tuning. Every dataset here is a :class:`RecipeDataset`: an item
is a recipe, the raw frames it needs (no decoding) and its drawn view parameters; decoding and
augmentation run per batch in :mod:`medcl.data.recipes`, in the DataLoader workers
(``render_collate``) or on the training device (``collate_raw`` + ``render``). An image that
cannot be read comes back as a :class:`~medcl.data.bad_samples.Skipped` marker; the collate
drops it and the loader (:func:`~medcl.data.sampler.make_loader`) logs it to bad_samples.csv.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from medcl.data.augment import AugmentConfig, resize_views, sample_views
from medcl.data.bad_samples import Skipped, display_path, reason_of
from medcl.data.recipes import Request
from medcl.data.sources import FileSource, frame_numbers
from medcl.data.cohort import Cohort
from medcl.data.fit import DEFAULT_FIT, check_fit
from medcl.data.seeding import mix_seed
from medcl.errors import ConfigError

__all__ = ["ContigDataset", "ImageDataset", "RecipeDataset"]


def load_raw(source, path: str, root, index: int, epoch: int, frame: int | None = None):
    """One raw frame (its undecoded bytes and descriptor) from ``source``, or a Skipped marker.
    frame: the manifest's frame number (None: the file's only frame)."""
    try:
        return source.read(path, frame)
    except MemoryError:
        raise
    except Exception as exc:  # the reason never quotes header values (see reason_of)
        return Skipped(index=int(index), path=display_path(path, root), reason=reason_of(exc), epoch=int(epoch))


def view_params(cfg: AugmentConfig | None, raws: list, size: int, views: int, g: torch.Generator,
                fit: str = DEFAULT_FIT) -> torch.Tensor:
    """(len(raws), views, 13) augment parameters: random views drawn from ``g``, or the eval
    transform (resize only) when ``cfg`` is None or disabled; ``fit``: how a non-square image
    fills the square (medcl.data.fit)."""
    sizes = torch.tensor([[r.rows, r.columns] for r in raws], dtype=torch.int64).view(-1, 2)
    if cfg is None or not cfg.enabled:
        return resize_views(sizes, size, fit).expand(-1, views, -1).contiguous()
    return sample_views(cfg, sizes, size, views, g, fit)


def view_request(cfg: AugmentConfig | None, raw, size: int, seed: int, epoch: int, row: int,
                 fit: str = DEFAULT_FIT) -> Request:
    """The one view of an image row, seeded by (seed, epoch, row) — the same for every dataset."""
    g = torch.Generator().manual_seed(mix_seed(seed, epoch, row))
    return Request(slots=[0], params=view_params(cfg, [raw], size, 1, g, fit), size=size, squeeze=True, fit=fit)


class RecipeDataset(Dataset):
    """Base of medcl's datasets: ``dataset[key]`` is ``recipe(key)``, the raw frames and views
    of an item (or a Skipped marker), rendered per batch by medcl.data.recipes."""

    def recipe(self, key):
        raise NotImplementedError

    def __getitem__(self, key):
        return self.recipe(key)


def _frame_info(row: int, path, root, epoch: int) -> tuple:
    return (int(row), display_path(path, root), int(epoch))


def _key(key, default_epoch: int) -> tuple:
    """(epoch, i) from a sampler key: an int, or an (epoch, int) pair."""
    if isinstance(key, (tuple, list)):
        return int(key[0]), int(key[1])
    return int(default_epoch), int(key)


class ContigDataset(RecipeDataset):
    """Images of one split, each with the genetics of its person.

    Item: {"image": (1, S, S) float32, "genetics": {m: (D_m,) float32}, "present": {m: () bool},
           "index": image row in cohort.images, "person": row in cohort.people}
    augment: None or AugmentConfig(enabled=False) gives the eval transform (resize only).
    modalities: which of the cohort's genetic modalities to return (default all).
    source: where frames are read from (medcl.data.sources; default the image files).
    fit: how a non-square image fills the square (pad, crop, squash; medcl.data.fit).
    """

    def __init__(self, cohort: Cohort, split: str | None = "train", *, image_size: int = 128,
                 augment: AugmentConfig | None = None, seed: int = 0, modalities=None, path_column: str = "path",
                 source=None, fit: str = DEFAULT_FIT):
        if image_size < 1:
            raise ConfigError(f"image_size={image_size} must be positive")
        mods = list(cohort.genetics) if modalities is None else list(modalities)
        absent = [m for m in mods if m not in cohort.genetics]
        if absent:
            raise ConfigError(f"modality {', '.join(absent)} is not loaded in the cohort",
                              fix=f"load it with load_cohort(modalities=...); loaded: {', '.join(cohort.genetics)}")
        self.rows = cohort.images_in(split)  # (K,) image rows of the split
        self.paths = cohort.images[path_column].to_numpy(dtype=object)  # (N_images,)
        self.person = cohort.images["person"].to_numpy(dtype=np.int64)  # (N_images,)
        self.frames = frame_numbers(cohort.images, path_column)  # (N_images,) int or None
        self.values = {m: cohort.genetics[m].values for m in mods}  # {m: (N_people, D_m)}
        self.present = {m: cohort.genetics[m].present for m in mods}  # {m: (N_people,)}
        self.root, self.source = cohort.root, source or cohort.source or FileSource()
        self.split, self.image_size, self.augment, self.seed = split, int(image_size), augment, int(seed)
        self.fit, self.epoch = check_fit(fit), 0

    def set_epoch(self, epoch: int) -> None:
        """Epoch used for keys without one (plain integer indexing)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.rows)

    def recipe(self, key):
        epoch, i = _key(key, self.epoch)
        row = int(self.rows[i])
        raw = load_raw(self.source, self.paths[row], self.root, row, epoch, self.frames[row])
        if isinstance(raw, Skipped):
            return raw
        p = int(self.person[row])
        return {"raws": [raw], "info": [_frame_info(row, self.paths[row], self.root, epoch)],
                "requests": {"image": view_request(self.augment, raw, self.image_size, self.seed, epoch, row,
                                                   self.fit)},
                "genetics": {m: torch.from_numpy(v[p]) for m, v in self.values.items()},  # float32 rows (build_table)
                "present": {m: torch.tensor(bool(v[p])) for m, v in self.present.items()},
                "index": row, "person": p}


class ImageDataset(RecipeDataset):
    """Images for embedding and fine-tuning: eval-transformed, or augmented views for training.

    source: a Cohort, a manifest DataFrame (as read_manifest returns), or ``--data`` (a manifest,
        a prepared dataset or its manifest.csv; medcl.data.sources.read_data).
    Item: {"image": (1, S, S) float32, "index": row in ``self.frame``} (+ "person" for a Cohort).
    split: keep only the images of that split (needs a split column).
    augment: an AugmentConfig to draw a view from the full-resolution image, seeded by (seed,
        epoch, row) with the epoch of an (epoch, i) key; None: resize only.
    frames: where frames are read from (medcl.data.sources; default the image files).
    fit: how a non-square image fills the square (pad, crop, squash; medcl.data.fit).
    """

    def __init__(self, source, image_size: int = 128, *, split: str | None = None, path_column: str = "path",
                 augment: AugmentConfig | None = None, seed: int = 0, frames=None, fit: str = DEFAULT_FIT):
        root = None
        if isinstance(source, Cohort):
            frame, root, frames = source.images, source.root, frames or source.source
        elif isinstance(source, pd.DataFrame):
            frame = source.reset_index(drop=True)
        else:
            from medcl.data.sources import read_data
            frame, read_from, root = read_data(source)
            frames = frames or read_from
        if split is not None:
            if "split" not in frame.columns:
                raise ConfigError(f"split={split!r} asked for, but the manifest has no split column")
            self.rows = np.flatnonzero(frame["split"].to_numpy() == split)
        else:
            self.rows = np.arange(len(frame))
        self.frame, self.root, self.image_size = frame, root, int(image_size)
        self.augment, self.seed, self.source = augment, int(seed), frames or FileSource()
        self.fit = check_fit(fit)
        self.paths = frame[path_column].to_numpy(dtype=object)
        self.person = frame["person"].to_numpy(dtype=np.int64) if "person" in frame.columns else None
        self.frames = frame_numbers(frame, path_column)

    def __len__(self) -> int:
        return len(self.rows)

    def recipe(self, key):
        epoch, i = _key(key, 0)
        row = int(self.rows[i])
        raw = load_raw(self.source, self.paths[row], self.root, row, epoch, self.frames[row])
        if isinstance(raw, Skipped):
            return raw
        item = {"raws": [raw], "info": [_frame_info(row, self.paths[row], self.root, epoch)],
                "requests": {"image": view_request(self.augment, raw, self.image_size, self.seed, epoch, row,
                                                   self.fit)},
                "index": row}
        if self.person is not None:
            item["person"] = int(self.person[row])
        return item

