"""ContigDataset / ImageDataset items, collate, and determinism across epochs and workers."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from medcl.data import AugmentConfig, ContigDataset, ImageDataset, load_cohort, make_loader
from oracles import collate, rendered
from medcl.errors import ConfigError
from medcl.io.tables import read_manifest

S = 48


@pytest.fixture(scope="module")
def cohort(paths):
    return load_cohort(paths["manifest"], genotypes=paths["plink"], prs=paths["prs"], modalities=("snp", "prs"))


def test_items_hold_the_image_and_its_persons_genetics(cohort):
    ds = rendered(ContigDataset(cohort, "train", image_size=S, augment=AugmentConfig(), seed=1))
    assert len(ds) == (cohort.images.split == "train").sum()
    for i in (0, len(ds) - 1):
        it = ds[i]
        assert it["image"].shape == (1, S, S) and it["image"].dtype == torch.float32
        row, p = it["index"], it["person"]
        assert cohort.images.split[row] == "train" and cohort.images.person[row] == p
        for m in ("snp", "prs"):
            t = cohort.genetics[m]
            assert it["genetics"][m].shape == (t.dim,) and it["genetics"][m].dtype == torch.float32
            np.testing.assert_array_equal(it["genetics"][m].numpy(), t.values[p])
            assert it["present"][m].dtype == torch.bool and bool(it["present"][m]) == t.present[p]
    with pytest.raises(ConfigError):
        ContigDataset(cohort, "train", modalities=("burden",))


def test_collate_shapes(cohort):
    ds = rendered(ContigDataset(cohort, "val", image_size=S))
    b = collate([ds[i] for i in range(3)])
    assert b["image"].shape == (3, 1, S, S) and b["n"] == 3 and b["seen"] == 3 and b["skipped"] == []
    assert b["genetics"]["snp"].shape == (3, cohort.genetics["snp"].dim) and b["genetics"]["prs"].shape == (3, 1)
    assert b["present"]["snp"].shape == (3,) and b["present"]["snp"].dtype == torch.bool
    assert b["index"].dtype == torch.int64 and b["person"].shape == (3,)
    assert collate([None, ds[0], None])["n"] == 1


def test_views_depend_on_seed_epoch_and_image_only(cohort):
    cfg = AugmentConfig()
    a = rendered(ContigDataset(cohort, "train", image_size=S, augment=cfg, seed=5))
    b = rendered(ContigDataset(cohort, "train", image_size=S, augment=cfg, seed=5))
    assert torch.equal(a[(2, 3)]["image"], b[(2, 3)]["image"])
    assert not torch.equal(a[(2, 3)]["image"], a[(3, 3)]["image"])
    b.set_epoch(2)
    assert torch.equal(b[3]["image"], a[(2, 3)]["image"])
    c = rendered(ContigDataset(cohort, "train", image_size=S, augment=cfg, seed=6))
    assert not torch.equal(c[(2, 3)]["image"], a[(2, 3)]["image"])
    plain = rendered(ContigDataset(cohort, "train", image_size=S, augment=None))
    assert torch.equal(plain[(0, 3)]["image"], plain[(7, 3)]["image"])


def test_loader_workers_give_the_same_batches(cohort):
    ds = ContigDataset(cohort, "train", image_size=S, augment=AugmentConfig(), seed=0)
    ref = list(make_loader(ds, 8, shuffle=True, seed=3, epoch=1, num_workers=0))
    par = list(make_loader(ds, 8, shuffle=True, seed=3, epoch=1, num_workers=2, persistent_workers=True))
    assert len(ref) == len(par) == -(-len(ds) // 8)
    for x, y in zip(ref, par):
        assert torch.equal(x["index"], y["index"]) and torch.equal(x["image"], y["image"])
        assert torch.equal(x["genetics"]["snp"], y["genetics"]["snp"])
        assert "skipped" not in x and "seen" not in x
    # the loader's epoch drives augmentation, also through persistent workers
    loader = make_loader(ds, 8, shuffle=False, seed=3, epoch=0, num_workers=2, persistent_workers=True)
    e0 = next(iter(loader))["image"]
    loader.set_epoch(1)
    e1 = next(iter(loader))["image"]
    assert not torch.equal(e0, e1)
    assert torch.equal(e1, collate([ds[(1, i)] for i in range(8)])["image"])


def test_image_dataset_from_cohort_frame_or_path(cohort, paths):
    by_cohort = rendered(ImageDataset(cohort, S, split="test"))
    assert len(by_cohort) == (cohort.images.split == "test").sum()
    it = by_cohort[0]
    assert it["image"].shape == (1, S, S) and cohort.images.split[it["index"]] == "test" and "person" in it
    frame = read_manifest(paths["manifest"])
    by_path, by_frame = rendered(ImageDataset(paths["manifest"], S)), rendered(ImageDataset(frame, S))
    assert len(by_path) == len(by_frame) == len(frame)
    k = len(frame) // 2
    assert by_path[k]["index"] == k and torch.equal(by_path[k]["image"], by_frame[k]["image"])
    b = collate([by_path[i] for i in range(4)])
    assert b["image"].shape == (4, 1, S, S) and b["index"].tolist() == [0, 1, 2, 3]
    # eval transform: identical to the training dataset without augmentation, same image
    row = int(it["index"])
    plain = rendered(ContigDataset(cohort, None, image_size=S))
    assert torch.equal(plain[row]["image"], it["image"])
    with pytest.raises(ConfigError):
        ImageDataset(pd.DataFrame({"FID": ["a"], "IID": ["b"], "path": ["x"]}), S, split="train")


def test_image_dataset_training_views_come_from_the_full_image(cohort):
    """finetune --mode full's views: drawn from the full-resolution image, exactly as
    ContigDataset draws them for the same (seed, epoch, row); a new epoch, a new view."""
    cfg = AugmentConfig()
    imgs = rendered(ImageDataset(cohort, 32, split="train", augment=cfg, seed=5))
    contig = rendered(ContigDataset(cohort, "train", image_size=32, augment=cfg, seed=5))
    a, b = imgs[(2, 3)], contig[(2, 3)]
    assert a["index"] == b["index"] and torch.equal(a["image"], b["image"])
    assert not torch.equal(imgs[(3, 3)]["image"], a["image"])
    plain = rendered(ImageDataset(cohort, 32, split="train"))
    assert torch.equal(plain[(2, 3)]["image"], plain[(9, 3)]["image"])     # no augment: resize only
