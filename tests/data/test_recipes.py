"""Recipes → images: batched decode + augment equals the per-item path, pairs cut from the right
frames, small crops alternate sources, a frame that fails to decode drops only its item."""
from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from medcl.data import AugmentConfig, ImageDataset, Skipped, load_cohort
from medcl.data.recipes import collate_raw, render, render_collate
from medcl.data.datasets.views import ViewsDataset
from oracles import rendered
from medcl.io.pixels import ENCODINGS, decode_raw, read_raw
from medcl.ops import augment


@pytest.fixture(scope="module")
def cohort(paths):
    return load_cohort(paths["manifest"], modalities=("image",), log_summary=False)


def _raw(ds, key):
    return ds.recipe(key)


def test_batched_render_equals_items(cohort):
    ds = rendered(ImageDataset(cohort, 40, split="train", augment=AugmentConfig(), seed=5))
    keys = [(2, i) for i in range(5)]
    batch = render_collate([_raw(ds, k) for k in keys])
    assert batch["image"].shape == (5, 1, 40, 40) and batch["image"].dtype == torch.float32
    for j, k in enumerate(keys):
        item = ds[k]
        assert item["index"] == int(batch["index"][j])
        torch.testing.assert_close(item["image"], batch["image"][j], rtol=0, atol=0)


def test_views_match_direct_ops_on_their_sources(cohort):
    ds = rendered(ViewsDataset(cohort, "train", pairs="views+patient", image_size=32, small_crops=3, seed=1))
    i = next(j for j, r in enumerate(ds.rows) if len(ds.partners[int(r)]))
    recipe = _raw(ds, i)
    assert len(recipe["raws"]) == 2 and bool(recipe["paired"])
    images, sizes, _ = decode_raw(recipe["raws"])
    req = recipe["requests"]["views"]
    want = augment(images, req.params, out_size=32, views=1, sizes=sizes, dtype=torch.float32)  # (2, 1, S, S)
    got = ds[i]
    torch.testing.assert_close(got["views"][:, 0], want[:, 0], rtol=0, atol=0)
    small = recipe["requests"]["small"]                                     # 2 groups of 2; crops alternate
    per = small.params.shape[1]
    cuts = augment(images, small.params, out_size=ds.small_size, views=per, sizes=sizes, dtype=torch.float32)
    flat = cuts.reshape(-1, ds.small_size, ds.small_size)
    for k in range(3):
        torch.testing.assert_close(got["small"][k, 0], flat[(k % 2) * per + k // 2], rtol=0, atol=0)


def test_failed_frame_drops_its_item_only(cohort):
    ds = rendered(ImageDataset(cohort, 24, split="train"))
    items = [_raw(ds, i) for i in range(4)]
    raw = items[1]["raws"][0]                   # item 1 becomes an RLE frame whose segment lies past the end
    header = (1).to_bytes(4, "little") + (10 ** 6).to_bytes(4, "little") + bytes(56)
    raw = replace(raw, data=header + bytes(8), encoding=ENCODINGS["rle"], bits_allocated=8, bits_stored=8,
                  high_bit=7, signed=False)
    items[1]["raws"] = [raw]
    batch = render(collate_raw(items + [Skipped(index=0, path="x.dcm", reason="DicomError: test")]), "cpu")
    assert batch["n"] == 3 and batch["image"].shape[0] == 3
    assert batch["index"].tolist() == [items[k]["index"] for k in (0, 2, 3)]
    reasons = [s.reason for s in batch["skipped"]]
    assert reasons[0] == "DicomError: test" and len(reasons) == 2 and reasons[1].startswith("DicomError: ")
    assert batch["skipped"][1].index == items[1]["index"]
    for j, k in enumerate((0, 2, 3)):
        torch.testing.assert_close(batch["image"][j], ds[k]["image"], rtol=0, atol=0)


def test_recipes_hold_raw_bytes_only(cohort):
    ds = rendered(ViewsDataset(cohort, "train", image_size=32, seed=0))
    recipe = _raw(ds, 0)
    path = ds.paths[int(ds.rows[0])]
    assert recipe["raws"][0].data == read_raw(path)[0].data                # undecoded bytes, as in the file
    assert "views" not in recipe and recipe["requests"]["views"].params.shape == (1, 2, 13)


def test_decode_place_resolves_and_refuses():
    from medcl.data.recipes import decode_place
    from medcl.errors import ConfigError

    cpu = torch.device("cpu")
    assert decode_place("auto", cpu) == "cpu"
    assert decode_place("cpu", cpu) == "cpu"
    assert decode_place("auto", torch.device("cuda", 0)) == "gpu"
    assert decode_place("cpu", torch.device("cuda", 0)) == "cpu"
    with pytest.raises(ConfigError, match="needs a CUDA device, and this run is on cpu"):
        decode_place("gpu", cpu)
    with pytest.raises(ConfigError, match="'fast' is not supported"):
        decode_place("fast", cpu)


def test_loader_collate_and_to_device():
    from medcl.data.recipes import collate_raw, loader_collate, render_collate, to_device

    assert loader_collate("gpu") is collate_raw
    assert loader_collate("cpu") is render_collate
    b = {"x": torch.ones(2), "r": {"p": torch.zeros(1), "size": 4}, "n": 2, "skipped": []}
    out = to_device(b, torch.device("cpu"))
    assert torch.equal(out["x"], b["x"]) and out["r"]["size"] == 4 and out["n"] == 2
    assert out is not b and out["r"] is not b["r"]


def test_device_batches_record_what_failed_on_the_device():
    from medcl.data.bad_samples import Skipped
    from medcl.data.recipes import DeviceBatches

    class Log:
        def __init__(self):
            self.calls = []

        def record(self, skipped, n):
            self.calls.append((list(skipped), n))

    marker = Skipped(index=3, path="x.dcm", reason="DicomError: bad", epoch=0)
    loader = [{"n": 1, "skipped": [marker], "seen": 2, "x": torch.ones(1)}]
    log = Log()
    out = list(DeviceBatches(loader, torch.device("cpu"), "gpu", bad_log=log))
    assert log.calls == [([marker], 0)] and "skipped" not in out[0]
    out = list(DeviceBatches(loader, torch.device("cpu"), "cpu", bad_log=log))
    assert len(log.calls) == 1 and out[0]["skipped"] == [marker]


@pytest.mark.gpu
def test_device_batches_decode_on_the_gpu_as_the_workers_do(cohort):
    """--decode gpu (collate_raw in the workers, render on the device) gives the images that
    --decode cpu (render_collate in the workers) gives, and the same rows and fields."""
    from medcl.data import DeviceBatches, loader_collate, make_loader

    ds = ViewsDataset(cohort, "train", pairs="views", image_size=32, small_crops=2, seed=4)
    cuda = torch.device("cuda")
    got = {}
    for place in ("gpu", "cpu"):
        loader = make_loader(ds, 6, shuffle=False, collate_fn=loader_collate(place), pin_memory=True)
        got[place] = list(DeviceBatches(loader, cuda, place))
    assert len(got["gpu"]) == len(got["cpu"]) > 0
    for g, c in zip(got["gpu"], got["cpu"]):
        assert g["views"].device.type == "cuda" and c["views"].device.type == "cuda"
        assert torch.equal(g["index"].cpu(), c["index"].cpu())
        torch.testing.assert_close(g["views"], c["views"], rtol=0, atol=1e-3)   # as the op's CPU/CUDA test
        torch.testing.assert_close(g["small"], c["small"], rtol=0, atol=1e-3)
