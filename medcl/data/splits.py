"""Train/val/test splits by individual, never by image.

A manifest with a ``split`` column is taken as written; every image of one individual must
carry the same split. Without one, each individual's split comes from a hash of
(split_seed, FID, IID): deterministic across runs, processes and machines, independent of row
order, and stable when people are added to or removed from the cohort.
"""
from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from medcl.errors import ConfigError, TableError
from medcl.io.tables import KEYS, SPLITS

_SHOW = 10  # how many offending manifest rows an error lists
VAL_FRACTION = 0.15   # default share of people in the validation split
TEST_FRACTION = 0.15  # default share of people in the test split


def _unit_interval(split_seed: int, fid: str, iid: str) -> float:
    """A uniform number in [0, 1) from the individual's keys (SHA-256, not Python's salted hash)."""
    digest = hashlib.sha256(f"{int(split_seed)}\x1f{fid}\x1f{iid}".encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0 ** 64


def hashed_split(fid: str, iid: str, *, split_seed: int = 0, val_fraction: float = VAL_FRACTION,
                 test_fraction: float = TEST_FRACTION) -> str:
    """The split ("train", "val", "test") of one individual."""
    u = _unit_interval(split_seed, fid, iid)
    if u < test_fraction:
        return "test"
    return "val" if u < test_fraction + val_fraction else "train"


def check_fractions(val_fraction: float, test_fraction: float) -> None:
    if not (0.0 <= val_fraction < 1.0 and 0.0 <= test_fraction < 1.0 and val_fraction + test_fraction < 1.0):
        raise ConfigError(f"val_fraction={val_fraction} and test_fraction={test_fraction} leave no training set",
                          fix=f"use fractions >= 0 whose sum is below 1 (defaults {VAL_FRACTION} and {TEST_FRACTION})")


def people_splits(people: pd.DataFrame, manifest: pd.DataFrame, *, split_seed: int = 0,
                  val_fraction: float = VAL_FRACTION, test_fraction: float = TEST_FRACTION,
                  source=None) -> np.ndarray:
    """(N_people,) object array of split names for ``people`` (FID, IID rows, unique).

    manifest: the image rows; its ``split`` column, when present, decides (TableError if one
    individual's images disagree). source: the manifest path, for error messages.
    """
    if "split" not in manifest.columns:
        check_fractions(val_fraction, test_fraction)
        return np.asarray([hashed_split(f, i, split_seed=split_seed, val_fraction=val_fraction,
                                        test_fraction=test_fraction)
                           for f, i in zip(people["FID"], people["IID"])], dtype=object)
    split = manifest["split"]
    bad = ~split.isin(SPLITS)
    if bad.any():
        rows = ", ".join(str(i) for i in np.flatnonzero(bad.to_numpy())[:_SHOW])
        raise TableError(f"{int(bad.sum())} manifest row(s) have no valid split (rows {rows}, counted from 0)",
                         path=source, fix=f"split must be one of {', '.join(SPLITS)}, or drop the column "
                                          "to split by a hash of FID/IID")
    per_person = manifest.groupby(KEYS, sort=False)["split"].nunique()
    mixed = per_person[per_person > 1]
    if len(mixed):
        keys = manifest.set_index(KEYS).index
        rows = np.flatnonzero(keys.isin(mixed.index))
        shown = ", ".join(str(i) for i in rows[:_SHOW])
        raise TableError(f"{len(mixed)} individual(s) have images in more than one split (manifest rows "
                         f"{shown}{' ...' if len(rows) > _SHOW else ''}, counted from 0)", path=source,
                         fix="give every image of an individual the same split: splits are by person, "
                             "so that no individual is both trained and tested on")
    first = manifest.drop_duplicates(KEYS)[KEYS + ["split"]]
    joined = people[KEYS].merge(first, on=KEYS, how="left", sort=False)
    return joined["split"].to_numpy(dtype=object)
