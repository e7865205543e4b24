"""Multimodal jigsaw puzzles: shuffled tiles cut from co-registered images of one study.

Taleb et al., "Multimodal Self-Supervised Learning for Medical Image Analysis", IPMI 2021.
Every modality of an image row (e.g. a chest radiograph and its bone-enhanced rendering) is
resized to S × S (a non-square image padded, cropped or squashed as ``fit`` says,
:mod:`medcl.data.fit`); the central n·c × n·c square is cut into an n × n grid of cells of c = S // n
pixels; from each cell a tile of t ≈ tile_fraction · c pixels is taken at a random offset inside
the cell (the gap and the jitter keep a network from solving the puzzle by matching the pixels
along tile edges), from a modality drawn at random per cell; the tiles are then shuffled:

    item["tiles"][i] is the tile of grid cell item["perm"][i] (cells numbered row-major)

so solving the puzzle means recovering ``perm``, and a tile must be placed next to tiles of the
other modality. Training puzzles are new every epoch (the generator is seeded by (seed, epoch,
image row), as in ContigDataset); validation puzzles (``augment=None``) are seeded by (seed,
image row) only, so every validation sees the same puzzles.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from medcl.data.augment import SEED_RANGE, AugmentConfig, AugmentParams, sample_params, view_row
from medcl.data.bad_samples import Skipped
from medcl.data.cohort import Cohort
from medcl.data.datasets.base import RecipeDataset, frame_info, item_key, load_raw
from medcl.data.fit import DEFAULT_FIT, check_fit, fit_box
from medcl.data.recipes import Request
from medcl.data.sources import FileSource, frame_numbers
from medcl.data.seeding import mix_seed
from medcl.errors import ConfigError
from medcl.ops.augment import PARAMS

__all__ = ["PuzzleDataset", "draw_puzzle", "tile_layout", "MIN_TILE", "GRIDS"]

MIN_TILE = 8           # smallest tile side in pixels
GRIDS = range(2, 11)   # allowed grid sizes n (n × n tiles)


def tile_layout(image_size: int, grid: int, tile_fraction: float = 0.85) -> tuple[int, int, int]:
    """(margin, cell, tile) in pixels: the grid covers [margin, margin + grid·cell) of each axis."""
    cell = int(image_size) // int(grid)
    tile = min(cell, max(1, int(round(float(tile_fraction) * cell))))
    return (int(image_size) - grid * cell) // 2, cell, tile


def intensity_only(cfg: AugmentConfig) -> AugmentConfig:
    """The augmentation with its geometry switched off (identity crop, no rotation or flip)."""
    return replace(cfg, crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), rotation=0.0, hflip=0.0)


def draw_puzzle(M: int, n: int, cell: int, t: int, g: torch.Generator, *, margin: int = 0):
    """The random layout of one puzzle: perm (N,) (cell of each shuffled tile), source (N,) (modality
    of each cell), origin (N, 2) (top, left of each cell's tile in the S × S image), drawn in that order."""
    N = n * n
    perm = torch.randperm(N, generator=g)                              # (N,)
    source = torch.randint(0, M, (N,), generator=g)                    # (N,) per cell
    offset = torch.randint(0, cell - t + 1, (N, 2), generator=g)       # (N, 2) per cell
    k = torch.arange(N)
    origin = margin + torch.stack([k // n, k % n], 1) * cell + offset  # (N, 2) per cell
    return perm, source, origin


class PuzzleDataset(RecipeDataset):
    """Jigsaw puzzles over the images of one split (see the module docstring).

    Item: {"tiles": (N, 1, t, t) float32, "perm": (N,) int64, "index": image row in
           cohort.images, "person": row in cohort.people}, N = grid², t from :func:`tile_layout`.

    Args:
        columns: manifest columns holding the co-registered images of a row (one per modality).
        grid: n, the puzzle has n × n tiles (2 .. 10).
        image_size: S, every modality is resized to S × S first (the resize-only view).
        augment: None for validation (puzzles fixed per image, the same every epoch); an
            AugmentConfig for training (new puzzles every epoch, per-tile intensity jitter when
            it is enabled; its geometric settings are ignored).
        seed: base seed of the puzzles.
        tile_fraction: tile side as a fraction of the cell side, in (0, 1] (1: no gap, no jitter).
        fit: how a non-square image fills the S × S square (pad, crop, squash; medcl.data.fit).
    """

    def __init__(self, cohort: Cohort, split: str | None = "train", *, columns=("path",), grid: int = 3,
                 image_size: int = 224, augment: AugmentConfig | None = None, seed: int = 0,
                 tile_fraction: float = 0.85, source=None, fit: str = DEFAULT_FIT):
        columns = (columns,) if isinstance(columns, str) else tuple(columns)
        if not columns:
            raise ConfigError("PuzzleDataset needs at least one image column", fix="e.g. columns=('path',)")
        absent = [c for c in columns if c not in cohort.images.columns]
        if absent:
            have = [c for c in cohort.images.columns if "path" in c] or list(cohort.images.columns)
            raise ConfigError(f"image column {', '.join(map(repr, absent))} is not in the manifest",
                              fix=f"choose among {', '.join(have)}")
        if isinstance(grid, bool) or int(grid) != grid or int(grid) not in GRIDS:
            raise ConfigError(f"puzzle grid={grid} is not supported", fix=f"use {GRIDS[0]} to {GRIDS[-1]}")
        if not 0.0 < float(tile_fraction) <= 1.0:
            raise ConfigError(f"tile_fraction={tile_fraction} must be in (0, 1]")
        grid = int(grid)
        margin, cell, tile = tile_layout(image_size, grid, tile_fraction)
        if tile < MIN_TILE:
            need = -(-MIN_TILE // float(tile_fraction))                 # smallest cell giving MIN_TILE
            raise ConfigError(f"image_size={image_size} with a {grid}×{grid} grid gives {tile}-pixel tiles "
                              f"(at least {MIN_TILE} needed)",
                              fix=f"use image_size ≥ {int(need) * grid} or a smaller grid")
        self.rows = cohort.images_in(split)                                # (K,) image rows of the split
        self.paths = {c: cohort.images[c].to_numpy(dtype=object) for c in columns}  # {c: (N_images,)}
        self.person = cohort.images["person"].to_numpy(dtype=np.int64)    # (N_images,)
        self.frames = {c: frame_numbers(cohort.images, c) for c in columns}  # {c: (N_images,) int or None}
        self.root, self.split, self.columns = cohort.root, split, columns
        self.source = source or cohort.source or FileSource()
        self.grid, self.image_size, self.augment, self.seed = grid, int(image_size), augment, int(seed)
        self.margin, self.cell, self.tile = margin, cell, tile
        self.fit, self.epoch = check_fit(fit), 0

    @property
    def n_tiles(self) -> int:
        return self.grid * self.grid

    def set_epoch(self, epoch: int) -> None:
        """Epoch used for keys without one (plain integer indexing)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.rows)

    def generator(self, row: int, epoch: int) -> torch.Generator:
        """The generator of a row's puzzle: (seed, epoch, row) for training, (seed, row) for validation."""
        key = (self.seed, row) if self.augment is None else (self.seed, epoch, row)
        return torch.Generator().manual_seed(mix_seed(*key))

    def recipe(self, key):
        epoch, i = item_key(key, self.epoch)
        row = int(self.rows[i])
        raws = []
        for c in self.columns:
            raw = load_raw(self.source, self.paths[c][row], self.root, row, epoch, self.frames[c][row])
            if isinstance(raw, Skipped):
                return raw
            raws.append(raw)
        g = self.generator(row, epoch)
        n, t, N, M = self.grid, self.tile, self.n_tiles, len(self.columns)
        perm, source, origin = draw_puzzle(M, n, self.cell, t, g, margin=self.margin)   # origin: (N, 2) per cell
        tone = [sample_params(intensity_only(self.augment), t, t, g) if self.augment is not None and
                self.augment.enabled else AugmentParams.identity(t, t) for _ in range(N)]  # per shuffled tile
        seeds = [int(torch.randint(0, SEED_RANGE, (), generator=g)) if p.noise > 0 else 0 for p in tone]
        params = torch.empty(M, N, len(PARAMS), dtype=torch.float64)
        S = float(self.image_size)
        for m, raw in enumerate(raws):
            y0, x0, bh, bw = fit_box(raw.rows, raw.columns, self.fit)
            sy, sx = bh / S, bw / S                          # each modality fitted to S × S, then cut
            for j, cell in enumerate(perm.tolist()):
                top, left = origin[cell].tolist()
                cut = (sx, 0.0, x0 + (left + 0.5) * sx - 0.5, 0.0, sy, y0 + (top + 0.5) * sy - 0.5)  # tile → input
                params[m, j] = view_row(tone[j], t, seeds[j]).with_affine(cut).to_rows()
        pick = source[perm] * N + torch.arange(N)           # shuffled tile j from its cell's modality
        info = [frame_info(row, self.paths[c][row], self.root, epoch) for c in self.columns]
        return {"raws": raws, "info": info, "perm": perm, "index": row, "person": int(self.person[row]),
                "requests": {"tiles": Request(slots=list(range(M)), params=params, shape=t, pick=pick, fit=self.fit)}}
