"""ResumableBatchSampler: partition across ranks, reproducible order, resume by start_batch."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from medcl.data import AugmentConfig, ContigDataset, ResumableBatchSampler, load_cohort, make_loader


def _indices(sampler):
    return [i for b in sampler for i in b]


@pytest.mark.parametrize("n", [40, 41, 7])
def test_two_ranks_cover_every_index_once(n):
    for epoch in (0, 1, 5):
        ranks = [ResumableBatchSampler(n, 4, seed=9, epoch=epoch, rank=r, world_size=2) for r in range(2)]
        parts = [_indices(s) for s in ranks]
        assert len(parts[0]) == len(parts[1]) == -(-n // 2)  # equal shares: no rank waits on another
        assert len(list(ranks[0])) == len(list(ranks[1])) == len(ranks[0])
        both = parts[0] + parts[1]
        assert sorted(set(both)) == list(range(n))
        assert len(both) - n == (n % 2)  # only the padding repeats an index
        if n % 2 == 0:
            assert not set(parts[0]) & set(parts[1])
        dropped = [_indices(ResumableBatchSampler(n, 4, seed=9, epoch=epoch, rank=r, world_size=2, drop_last=True))
                   for r in range(2)]
        assert not set(dropped[0]) & set(dropped[1])
        assert len(dropped[0]) == len(dropped[1]) == (n // 2) // 4 * 4


def test_order_depends_on_seed_and_epoch_only():
    a = ResumableBatchSampler(50, 8, seed=1, epoch=2)
    b = ResumableBatchSampler(50, 8, seed=1, epoch=0)
    b.set_epoch(2)
    assert a.batches() == b.batches()
    assert a.batches() != ResumableBatchSampler(50, 8, seed=1, epoch=3).batches()
    assert a.batches() != ResumableBatchSampler(50, 8, seed=2, epoch=2).batches()
    assert _indices(ResumableBatchSampler(10, 3, shuffle=False)) == list(range(10))
    assert [len(b) for b in a.batches()] == [8] * 6 + [2]


def test_start_batch_resumes_mid_epoch():
    full = ResumableBatchSampler(45, 4, seed=3, epoch=4, rank=1, world_size=2)
    batches = full.batches()
    for k in (0, 3, len(batches)):
        s = ResumableBatchSampler(45, 4, seed=3, epoch=4, rank=1, world_size=2, start_batch=k)
        assert list(s) == batches[k:] and len(s) == len(batches) - k
    s = ResumableBatchSampler(45, 4, seed=3, epoch=0, rank=1, world_size=2)
    s.set_epoch(**full.state_dict(batches_done=3))
    assert list(s) == batches[3:]
    assert full.state_dict(len(batches)) == {"epoch": 5, "start_batch": 0}
    s.set_epoch(5)
    assert s.start_batch == 0 and len(s) == len(batches)
    with pytest.raises(ValueError):
        s.set_epoch(5, start_batch=len(batches) + 1)
    keyed = ResumableBatchSampler(10, 4, seed=0, epoch=7, with_epoch=True)
    assert all(e == 7 for b in keyed for e, _ in b)


def test_resumed_loader_sees_the_same_data(paths):
    cohort = load_cohort(paths["manifest"], genotypes=paths["plink"])
    ds = ContigDataset(cohort, "train", image_size=32, augment=AugmentConfig(), seed=2)
    kw = dict(shuffle=True, seed=4, epoch=3, drop_last=True, rank=1, world_size=2)
    full = list(make_loader(ds, 4, **kw))
    assert len(full) >= 3
    resumed = make_loader(ContigDataset(cohort, "train", image_size=32, augment=AugmentConfig(), seed=2), 4,
                          start_batch=2, **kw)
    rest = list(resumed)
    assert len(rest) == len(full) - 2
    for x, y in zip(full[2:], rest):
        assert torch.equal(x["index"], y["index"]) and torch.equal(x["image"], y["image"])
    other = make_loader(ds, 4, **dict(kw, rank=0))
    seen = np.concatenate([b["index"].numpy() for b in list(other) + full])
    assert len(set(seen.tolist())) == len(seen)  # the two ranks never share an image in an epoch
