"""Images of one split, each with its person's genetics (ContIG pretraining)."""
from __future__ import annotations

import numpy as np
import torch

from medcl.data.augment import AugmentConfig
from medcl.data.bad_samples import Skipped
from medcl.data.cohort import Cohort
from medcl.data.datasets.base import RecipeDataset, frame_info, item_key, load_raw, view_request
from medcl.data.fit import DEFAULT_FIT, check_fit
from medcl.data.sources import FileSource, frame_numbers
from medcl.errors import ConfigError

__all__ = ["ContigDataset"]


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
        epoch, i = item_key(key, self.epoch)
        row = int(self.rows[i])
        raw = load_raw(self.source, self.paths[row], self.root, row, epoch, self.frames[row])
        if isinstance(raw, Skipped):
            return raw
        p = int(self.person[row])
        return {"raws": [raw], "info": [frame_info(row, self.paths[row], self.root, epoch)],
                "requests": {"image": view_request(self.augment, raw, self.image_size, self.seed, epoch, row,
                                                   self.fit)},
                "genetics": {m: torch.from_numpy(v[p]) for m, v in self.values.items()},  # float32 rows (build_table)
                "present": {m: torch.tensor(bool(v[p])) for m, v in self.present.items()},
                "index": row, "person": p}
