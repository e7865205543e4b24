"""PuzzleDataset and cut_puzzle: tiles are crops of their cells, perm is a permutation, modalities
mix, puzzles are seeded (fixed for validation), collate batches them, bad input is refused."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from medcl.data import AugmentConfig, Skipped, load_cohort
from medcl.data.datasets.puzzle import PuzzleDataset, tile_layout
from oracles import collate, cut_puzzle, eval_transform, load_image, rendered
from medcl.errors import ConfigError

S, GRID = 48, 3                     # cells of 16 px
BOTH = ("path", "bone_path")
NO_JITTER = AugmentConfig(jitter_p=0.0, noise=0.0)   # training puzzles, intensities untouched


@pytest.fixture(scope="module")
def cohort(paths):
    return load_cohort(paths["manifest"], modalities=("image",), log_summary=False)


def _eval_images(ds, row):
    """(M, S, S) eval-resized images of a row, recomputed outside the dataset."""
    return torch.stack([eval_transform(load_image(ds.paths[c][row], ds.root, row, 0), ds.image_size)[0]
                        for c in ds.columns])


def _reassemble(tiles, perm, grid):
    """(N, 1, t, t) shuffled tiles → (n·t, n·t) image with tile i put back in cell perm[i]."""
    t = tiles.shape[-1]
    out = torch.full((grid * t, grid * t), float("nan"))
    for i, cell in enumerate(perm.tolist()):
        r, c = divmod(cell, grid)
        out[r * t:(r + 1) * t, c * t:(c + 1) * t] = tiles[i, 0]
    return out


def test_layout():
    assert tile_layout(224, 3) == (1, 74, 63)
    assert tile_layout(48, 3, 1.0) == (0, 16, 16)
    assert tile_layout(100, 4, 0.5) == (0, 25, 12)


def test_item_shapes_and_permutation(cohort):
    ds = rendered(PuzzleDataset(cohort, "train", columns=BOTH, grid=GRID, image_size=S, augment=AugmentConfig(),
                                seed=1))
    assert len(ds) == (cohort.images.split == "train").sum()
    t = tile_layout(S, GRID)[2]
    for i in (0, len(ds) - 1):
        it = ds[i]
        assert it["tiles"].shape == (9, 1, t, t) and it["tiles"].dtype == torch.float32
        assert it["perm"].dtype == torch.int64 and sorted(it["perm"].tolist()) == list(range(9))
        assert 0.0 <= float(it["tiles"].min()) and float(it["tiles"].max()) <= 1.0
        row = it["index"]
        assert cohort.images.split[row] == "train" and cohort.images.person[row] == it["person"]


@pytest.mark.parametrize("augment", [None, NO_JITTER])
def test_tiles_reassemble_to_the_eval_resized_image(cohort, augment):
    """Without gap (tile_fraction=1) and jitter, putting tile i back in cell perm[i] rebuilds the image."""
    ds = rendered(PuzzleDataset(cohort, "val", columns=("path",), grid=GRID, image_size=S, augment=augment,
                                tile_fraction=1.0))
    for i in range(3):
        it = ds[(4, i)]
        torch.testing.assert_close(_reassemble(it["tiles"], it["perm"], GRID), _eval_images(ds, it["index"])[0],
                                   rtol=0, atol=0)


def test_tiles_are_crops_inside_their_cells(gen):
    """With a gap, each tile is the crop at its origin, inside the cell perm says; offsets vary."""
    M, n, size = 2, 4, 60
    images = torch.rand(M, size, size, generator=gen)
    margin, cell, t = tile_layout(size, n, 0.7)                      # 0, 15, 10 (11 offsets per axis)
    offsets, sources = set(), set()
    for _ in range(5):
        p = cut_puzzle(images, n, t, gen, margin=margin)
        assert sorted(p["perm"].tolist()) == list(range(n * n))
        for i in range(n * n):
            (y, x), cell_i, m = p["origin"][i].tolist(), int(p["perm"][i]), int(p["source"][i])
            oy, ox = y - margin - (cell_i // n) * cell, x - margin - (cell_i % n) * cell
            assert 0 <= oy <= cell - t and 0 <= ox <= cell - t
            torch.testing.assert_close(p["tiles"][i, 0], images[m, y:y + t, x:x + t], rtol=0, atol=0)
            offsets.add((oy, ox))
            sources.add(m)
    assert len(offsets) > 10 and sources == {0, 1}


def test_margin_centres_the_grid(gen):
    images = torch.rand(1, 50, 50, generator=gen)                    # 3 × 16 = 48: one pixel each side
    margin, cell, t = tile_layout(50, 3, 1.0)
    p = cut_puzzle(images, 3, t, gen, margin=margin)
    torch.testing.assert_close(_reassemble(p["tiles"], p["perm"], 3), images[0, 1:49, 1:49], rtol=0, atol=0)


def test_modalities_mix_within_puzzles(cohort):
    ds = rendered(PuzzleDataset(cohort, "train", columns=BOTH, grid=GRID, image_size=S, augment=NO_JITTER,
                                tile_fraction=1.0))
    mixed, used = 0, set()
    for i in range(8):
        it = ds[(0, i)]
        images = _eval_images(ds, it["index"])                       # (2, S, S)
        src = []
        for k, cell in enumerate(it["perm"].tolist()):
            r, c = divmod(cell, GRID)
            crops = images[:, r * 16:(r + 1) * 16, c * 16:(c + 1) * 16]  # (2, 16, 16)
            match = [m for m in range(2) if torch.equal(it["tiles"][k, 0], crops[m])]
            assert match, "a tile is not a crop of either modality"
            src.append(match[0])
        used |= set(src)
        mixed += len(set(src)) == 2
    assert used == {0, 1} and mixed >= 4


def test_puzzles_are_seeded_by_seed_epoch_and_row(cohort):
    kw = dict(columns=BOTH, grid=GRID, image_size=S)
    a = rendered(PuzzleDataset(cohort, "train", augment=AugmentConfig(), seed=5, **kw))
    b = rendered(PuzzleDataset(cohort, "train", augment=AugmentConfig(), seed=5, **kw))
    for k in ("tiles", "perm"):
        assert torch.equal(a[(2, 3)][k], b[(2, 3)][k])
    assert not torch.equal(a[(2, 3)]["tiles"], a[(3, 3)]["tiles"])
    b.set_epoch(2)
    assert torch.equal(b[3]["tiles"], a[(2, 3)]["tiles"]) and torch.equal(b[3]["perm"], a[(2, 3)]["perm"])
    c = rendered(PuzzleDataset(cohort, "train", augment=AugmentConfig(), seed=6, **kw))
    assert not torch.equal(c[(2, 3)]["tiles"], a[(2, 3)]["tiles"])
    perms = {tuple(a[(e, 3)]["perm"].tolist()) for e in range(6)}
    assert len(perms) > 1                                            # new puzzles every epoch


def test_validation_puzzles_do_not_depend_on_the_epoch(cohort):
    val = rendered(PuzzleDataset(cohort, "val", columns=BOTH, grid=GRID, image_size=S, augment=None, seed=3))
    for i in range(3):
        first, later = val[(0, i)], val[(7, i)]
        assert torch.equal(first["tiles"], later["tiles"]) and torch.equal(first["perm"], later["perm"])
    val.set_epoch(9)
    assert torch.equal(val[0]["tiles"], val[(0, 0)]["tiles"])


def test_jitter_changes_intensities_only(cohort):
    kw = dict(columns=("path",), grid=GRID, image_size=S, seed=2, tile_fraction=1.0)
    geometric = AugmentConfig(crop_scale=(0.3, 0.5), rotation=30.0, hflip=1.0, jitter_p=0.0, noise=0.0)
    plain = rendered(PuzzleDataset(cohort, "train", augment=geometric, **kw))[(1, 0)]
    images = _eval_images(PuzzleDataset(cohort, "train", **kw), plain["index"])
    torch.testing.assert_close(_reassemble(plain["tiles"], plain["perm"], GRID), images[0], rtol=0, atol=0)
    jit = rendered(PuzzleDataset(cohort, "train", augment=AugmentConfig(jitter_p=1.0), **kw))[(1, 0)]
    assert torch.equal(jit["perm"], plain["perm"])                  # same draws before the jitter
    diff = (jit["tiles"] - plain["tiles"]).abs().flatten(1).mean(1)  # (N,)
    assert float(diff.mean()) > 1e-3 and int((diff > 0).sum()) >= 5
    assert 0.0 <= float(jit["tiles"].min()) and float(jit["tiles"].max()) <= 1.0


def test_collate_batches_puzzles(cohort):
    ds = rendered(PuzzleDataset(cohort, "val", columns=BOTH, grid=4, image_size=64))
    b = collate([ds[i] for i in range(3)])
    t = tile_layout(64, 4)[2]
    assert b["tiles"].shape == (3, 16, 1, t, t) and b["perm"].shape == (3, 16) and b["perm"].dtype == torch.int64
    assert b["index"].shape == (3,) and b["person"].shape == (3,) and b["n"] == 3


def test_unreadable_modality_gives_a_skipped_marker(cohort, tmp_path):
    bad = tmp_path / "broken.dcm"
    bad.write_bytes(b"not a dicom file")
    images = cohort.images.copy()
    ds0 = rendered(PuzzleDataset(cohort, "val", columns=BOTH, image_size=S))
    row = int(ds0.rows[1])
    images.loc[row, "bone_path"] = str(bad)
    ds = rendered(PuzzleDataset(dataclasses.replace(cohort, images=images), "val", columns=BOTH, image_size=S))
    out = ds[1]
    assert isinstance(out, Skipped) and out.index == row
    assert not isinstance(ds[0], Skipped)
    assert collate([ds[0], out])["n"] == 1


def test_bad_settings_are_refused(cohort):
    for grid in (1, 11, 2.5):
        with pytest.raises(ConfigError, match="grid"):
            PuzzleDataset(cohort, "train", grid=grid)
    with pytest.raises(ConfigError, match="not in the manifest") as err:
        PuzzleDataset(cohort, "train", columns=("path", "ct_path"))
    assert "bone_path" in str(err.value)
    with pytest.raises(ConfigError, match="image_size"):
        PuzzleDataset(cohort, "train", grid=3, image_size=20)        # 6-px cells
    with pytest.raises(ConfigError, match="tile_fraction"):
        PuzzleDataset(cohort, "train", tile_fraction=0.0)
    PuzzleDataset(cohort, "train", grid=3, image_size=30, tile_fraction=0.85)   # 10-px cells, 8-px tiles: fine
