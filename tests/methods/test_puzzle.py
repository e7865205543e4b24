"""Jigsaw-puzzle method: forward terms and gradients, noise only in training, Hungarian
evaluation on constructed scores, config round trip, and a short real training run that
beats chance."""
from __future__ import annotations

import math

import pytest
import torch

from medcl.losses import PuzzleLoss
from medcl.methods.puzzle import PuzzleConfig, PuzzleHead, PuzzleMethod
from medcl.models import ImageEncoderConfig
from medcl.ops import sinkhorn

SMALL = ImageEncoderConfig(width=0.125)


def _batch(gen, B=4, grid=2, t=16):
    N = grid * grid
    return {"tiles": torch.rand(B, N, 1, t, t, generator=gen),
            "perm": torch.stack([torch.randperm(N, generator=gen) for _ in range(B)]),
            "index": torch.arange(B), "person": torch.arange(B), "n": B}


@pytest.mark.parametrize("loss", ["mse", "ce"])
def test_forward_terms_and_gradients(gen, loss):
    torch.manual_seed(0)
    m = PuzzleMethod(PuzzleConfig(image=SMALL, grid=2, hidden=32, loss=loss, noise=0.5))
    out = m(_batch(gen))
    assert set(out) == {"loss", "tile_accuracy"} and out["loss"].dim() == 0
    assert not out["tile_accuracy"].requires_grad and 0.0 <= float(out["tile_accuracy"]) <= 1.0
    out["loss"].backward()
    for name, p in m.named_parameters():
        assert p.grad is not None and bool(torch.isfinite(p.grad).all()), name
    assert any(float(p.grad.abs().sum()) > 0 for p in m.image_encoder.parameters())
    assert all(k.startswith(("image_encoder.", "head.")) for k in m.state_dict())


def test_noise_only_while_training(gen):
    b = _batch(gen)
    noisy = PuzzleMethod(PuzzleConfig(image=SMALL, grid=2, hidden=32, noise=1.0))
    torch.manual_seed(1)
    first = noisy(b)["loss"].detach()
    torch.manual_seed(2)
    assert not torch.equal(first, noisy(b)["loss"].detach())        # Gumbel noise from the global RNG
    noisy.eval()
    assert torch.equal(noisy(b)["loss"].detach(), noisy(b)["loss"].detach())
    quiet = PuzzleMethod(PuzzleConfig(image=SMALL, grid=2, hidden=32, noise=0.0))
    assert torch.equal(quiet(b)["loss"].detach(), quiet(b)["loss"].detach())


def test_head_context_and_shapes(gen):
    f = torch.randn(3, 9, 20, generator=gen)
    for hidden, context in ((16, True), (0, False), (0, True)):
        head = PuzzleHead(20, 9, hidden, context).eval()
        assert head(f).shape == (3, 9, 9)
    head = PuzzleHead(20, 9, 0, context=False)
    shuffled = f[:, torch.randperm(9, generator=gen)]
    # Without context a tile's scores depend on that tile alone.
    torch.testing.assert_close(head(f)[0, 0], head(torch.cat([f[:, :1], shuffled[:, 1:]], 1))[0, 0])
    with pytest.raises(ValueError):
        head(torch.randn(3, 4, 20))


def _stub_scores(m, scores_per_batch):
    it = iter(scores_per_batch)
    m.scores = lambda tiles: next(it)                                 # (B, N, N) chosen by hand


def test_evaluate_hungarian_metrics_on_constructed_scores():
    m = PuzzleMethod(PuzzleConfig(image=SMALL, grid=2, hidden=8, tau=0.7)).eval()
    perm = torch.tensor([[2, 0, 3, 1], [0, 1, 2, 3], [1, 0, 3, 2]])
    exact = torch.zeros(3, 4, 4).scatter(2, perm[..., None], 5.0)    # puzzle 0: clear answer
    s = exact.clone()
    s[1] = 0.0                                                         # puzzle 1: tiles 0 and 1 swapped
    s[1, 0, 1] = s[1, 1, 0] = s[1, 2, 2] = s[1, 3, 3] = 5.0
    s[2] = 0.0                                                         # puzzle 2: both tiles 0 and 1 like cell 1;
    s[2, 0, 1], s[2, 1, 1], s[2, 1, 0] = 5.0, 4.9, 3.0                 # row argmax fails tile 1, matching does not
    s[2, 2, 3] = s[2, 3, 2] = 5.0
    assert int((s[2].argmax(1) == perm[2]).sum()) == 3
    extra = torch.zeros(1, 4, 4).scatter(2, torch.tensor([[[3], [2], [1], [0]]]), 5.0)
    extra[0, 0] = torch.tensor([0.0, 0.0, 0.0, 4.0])                   # a second batch, solved
    _stub_scores(m, [s, extra])
    b1 = {"tiles": torch.zeros(3, 4, 1, 8, 8), "perm": perm}
    b2 = {"tiles": torch.zeros(1, 4, 1, 8, 8), "perm": torch.tensor([[3, 2, 1, 0]])}
    empty = {"n": 0}
    res = m.evaluate([b1, empty, b2])
    assert res["val_tile_accuracy"] == pytest.approx(14 / 16)
    assert res["val_solved"] == pytest.approx(3 / 4)
    loss = PuzzleLoss("mse")
    want = (3 * float(loss(sinkhorn(s, n_iters=20, tau=0.7), perm))
            + float(loss(sinkhorn(extra, n_iters=20, tau=0.7), b2["perm"]))) / 4
    assert res["val_loss"] == pytest.approx(want, rel=1e-6)
    assert m.evaluate([]) == {}


def test_config_round_trip():
    cfg = PuzzleConfig(image=ImageEncoderConfig(arch="resnet34", width=0.5), grid=4, columns=("path", "bone_path"),
                       tau=0.3, noise=0.1, loss="ce")
    d = cfg.to_dict()
    assert d["columns"] == ["path", "bone_path"] and d["image"]["arch"] == "resnet34"
    assert PuzzleConfig.from_dict(d) == cfg
    with pytest.raises(ValueError, match="loss"):
        PuzzleMethod(PuzzleConfig(image=SMALL, loss="l2"))
    with pytest.raises(ValueError, match="tiles per puzzle"):
        PuzzleMethod(PuzzleConfig(image=SMALL, grid=3))(_batch(torch.Generator().manual_seed(0), grid=2))


# -- a short real run -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    from medcl.data import load_cohort
    from medcl.demo import generate_cohort
    out = tmp_path_factory.mktemp("puzzle") / "cohort"
    summary = generate_cohort(out, n=120, snps=100, size=64, seed=7)
    return load_cohort(summary.paths["manifest"], modalities=("image",), log_summary=False)


class _Cached:
    """PuzzleDataset with each row's decoded images kept (the test decodes every DICOM once)."""

    def __init__(self, ds):
        self.ds, self.cache = ds, {}

    def images(self, row, epoch=0):
        if row not in self.cache:
            self.cache[row] = type(self.ds).images(self.ds, row, epoch)
        return self.cache[row]


def test_short_training_beats_chance(cohort, tmp_path):
    """Ten short epochs of the engine (~70 steps, seconds on 2 cores) on ~110 small multimodal puzzles:
    validation tile accuracy far above chance (1/9); this run reaches ~1.0."""
    from medcl.data import AugmentConfig, make_loader
    from medcl.data.datasets.puzzle import PuzzleDataset
    from medcl.train import TrainConfig, Trainer

    threads = torch.get_num_threads()
    torch.set_num_threads(min(2, threads))
    try:
        cols = ("path", "bone_path")
        kw = dict(columns=cols, grid=3, image_size=64, seed=0)
        train = PuzzleDataset(cohort, "train", augment=AugmentConfig(), **kw)
        val = PuzzleDataset(cohort, "val", augment=None, **kw)
        for ds in (train, val):
            ds.images = _Cached(ds).images
        torch.manual_seed(0)
        method = PuzzleMethod(PuzzleConfig(image=ImageEncoderConfig(width=0.25), columns=cols))
        chance = 1 / method.n_tiles
        loader = make_loader(train, 16, shuffle=True, seed=0, drop_last=True)

        def batches(epoch, start):
            loader.set_epoch(epoch, start)
            yield from loader

        before = method.eval().evaluate(make_loader(val, 32, shuffle=False))
        trainer = Trainer(method, TrainConfig(epochs=10, lr=2e-3, warmup_epochs=1.0, log_every=100), tmp_path,
                          device=torch.device("cpu"), batches=batches, micro_batches_per_epoch=len(loader),
                          validate=lambda m, e: m.evaluate(make_loader(val, 32, shuffle=False)),
                          batch_size=lambda b: int(b["n"]))
        hist = trainer.fit().history
    finally:
        torch.set_num_threads(threads)
    accs = [h["val_tile_accuracy"] for h in hist]
    assert all(math.isfinite(h["val_loss"]) for h in hist)
    assert accs[-1] >= max(0.6, 5 * chance) and accs[-1] > before["val_tile_accuracy"], (before, accs)
