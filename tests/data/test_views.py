"""ViewsDataset: pair strategies, partners, multi-crop sizes, seeded views, bad partner files."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from medcl.data import AugmentConfig, load_cohort
from oracles import collate, eval_transform, load_image, rendered
from medcl.data.datasets.views import ViewsDataset, partners, small_crop_size
from medcl.errors import ConfigError


@pytest.fixture(scope="module")
def cohort(paths):
    return load_cohort(paths["manifest"], modalities=("image",), log_summary=False)


def _rows_with_partner(ds):
    return [i for i, r in enumerate(ds.rows) if len(ds.partners[int(r)])]


def test_partners_are_other_images_of_the_same_person(cohort):
    rows = cohort.images_in("train")
    got = partners(cohort, rows)
    person = cohort.images["person"].to_numpy()
    assert set(got) == set(int(r) for r in rows)
    for r, others in got.items():
        want = [int(x) for x in rows if person[x] == person[r] and x != r]
        assert sorted(int(x) for x in others) == sorted(want)
    assert any(len(v) for v in got.values()), "the demo cohort has follow-up visits"


def test_views_are_two_augmentations_of_one_image(cohort):
    ds = rendered(ViewsDataset(cohort, "train", pairs="views", image_size=32, seed=3))
    item = ds[0]
    assert item["views"].shape == (2, 1, 32, 32) and not bool(item["paired"])
    assert not torch.equal(item["views"][0], item["views"][1])
    again = ds[0]
    assert torch.equal(item["views"], again["views"])                  # same seed, epoch, row: same views
    ds.set_epoch(1)
    assert not torch.equal(ds[0]["views"], item["views"])             # a new epoch draws new views


def test_patient_pairs_are_the_two_resized_images(cohort):
    ds = rendered(ViewsDataset(cohort, "train", pairs="patient", image_size=32, seed=0))
    i = _rows_with_partner(ds)[0]
    item = ds[i]
    row = int(ds.rows[i])
    (partner,) = [int(p) for p in ds.partners[row]] if len(ds.partners[row]) == 1 else [None]
    assert bool(item["paired"])
    want0 = eval_transform(load_image(ds.paths[row], None, row, 0), 32)
    torch.testing.assert_close(item["views"][0], want0)
    if partner is not None:
        want1 = eval_transform(load_image(ds.paths[partner], None, partner, 0), 32)
        torch.testing.assert_close(item["views"][1], want1)
    single = [j for j in range(len(ds)) if j not in set(_rows_with_partner(ds))][0]
    alone = ds[single]                                                 # falls back to views: augmented
    assert not bool(alone["paired"]) and not torch.equal(alone["views"][0], alone["views"][1])
    assert 0 < ds.paired_fraction < 1


def test_views_plus_patient_augments_the_two_images(cohort):
    plain = rendered(ViewsDataset(cohort, "train", pairs="patient", image_size=32, seed=0))
    aug = rendered(ViewsDataset(cohort, "train", pairs="views+patient", image_size=32, seed=0))
    i = _rows_with_partner(aug)[0]
    a, p = aug[i], plain[i]
    assert bool(a["paired"])
    assert not torch.equal(a["views"][0], p["views"][0])               # augmented, not just resized


def test_small_crops_alternate_sources_and_scale_with_size(cohort):
    ds = rendered(ViewsDataset(cohort, "train", pairs="views", image_size=56, small_crops=6, seed=1))
    item = ds[2]
    s = small_crop_size(56)
    assert s == 24 and item["small"].shape == (6, 1, s, s)
    batch = collate([ds[0], ds[1], ds[2]])
    assert batch["views"].shape == (3, 2, 1, 56, 56) and batch["small"].shape == (3, 6, 1, s, s)
    assert batch["paired"].dtype == torch.bool


def test_fixed_epoch_gives_the_same_views_every_epoch(cohort):
    ds = rendered(ViewsDataset(cohort, "val", image_size=32, fixed_epoch=0, seed=0))
    first = ds[0]["views"]
    ds.set_epoch(5)
    assert torch.equal(ds[(7, 0)]["views"], first)


def test_unreadable_partner_falls_back_to_views(cohort, tmp_path):
    ds = rendered(ViewsDataset(cohort, "train", pairs="patient", image_size=32, seed=0))
    i = _rows_with_partner(ds)[0]
    row = int(ds.rows[i])
    bad = tmp_path / "bad.dcm"
    bad.write_bytes(b"not a dicom")
    ds.paths = ds.paths.copy()
    for p in ds.partners[row]:
        ds.paths[int(p)] = str(bad)
    item = ds[i]
    assert not bool(item["paired"]) and item["views"].shape == (2, 1, 32, 32)
    ds.paths[row] = str(bad)
    from medcl.data import Skipped
    assert isinstance(ds[i], Skipped)


def test_bad_options(cohort):
    with pytest.raises(ConfigError, match="pair strategy"):
        ViewsDataset(cohort, "train", pairs="visits")
    with pytest.raises(ConfigError):
        ViewsDataset(cohort, "train", small_crops=-1)
    assert AugmentConfig().crop_scale != ViewsDataset(cohort, "train").small_augment.crop_scale
    assert np.all(np.diff(ViewsDataset(cohort, "train").rows) > 0)
