"""Images for embedding and fine-tuning: resized, or augmented views for training."""
from __future__ import annotations

import numpy as np
import pandas as pd

from medcl.data.augment import AugmentConfig
from medcl.data.bad_samples import Skipped
from medcl.data.cohort import Cohort
from medcl.data.datasets.base import RecipeDataset, frame_info, item_key, load_raw, view_request
from medcl.data.fit import DEFAULT_FIT, check_fit
from medcl.data.sources import FileSource, frame_numbers
from medcl.errors import ConfigError

__all__ = ["ImageDataset"]


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
        epoch, i = item_key(key, 0)
        row = int(self.rows[i])
        raw = load_raw(self.source, self.paths[row], self.root, row, epoch, self.frames[row])
        if isinstance(raw, Skipped):
            return raw
        item = {"raws": [raw], "info": [frame_info(row, self.paths[row], self.root, epoch)],
                "requests": {"image": view_request(self.augment, raw, self.image_size, self.seed, epoch, row,
                                                   self.fit)},
                "index": row}
        if self.person is not None:
            item["person"] = int(self.person[row])
        return item
