"""Eager, item-by-item references the data tests compare the library's batched path with.

The library decodes and augments per batch (medcl.data.recipes); these helpers do it one image
or one item at a time, the obvious way, so a test can check the batched path against them:

    ds = rendered(ContigDataset(cohort, "train"))   # ds[i]: a finished item, as a batch of one
    img = load_image(path, root, row, epoch)         # (H, W) float32, decoded on the CPU now
    view = augment(img, AugmentConfig(), 48, g)       # one random view, (1, 48, 48)
"""
from __future__ import annotations

import torch

from medcl.data.augment import SEED_RANGE, AugmentConfig, AugmentParams, sample_params, view_row
from medcl.data.bad_samples import Skipped, display_path, reason_of
from medcl.data.fit import DEFAULT_FIT
from medcl.data.datasets.puzzle import draw_puzzle, intensity_only
from medcl.data.recipes import render_collate, stack_items
from medcl.errors import DicomError


# -- items ------------------------------------------------------------------------------------

def load_image(path: str, root, index: int, epoch: int):
    """(H, W) float32 in [0, 1] from a DICOM file, or a Skipped marker when it cannot be read."""
    from medcl.io.dicom import read_image

    try:
        img = read_image(path)
        if img.dim() == 3:
            if img.shape[0] != 1:
                raise DicomError(f"has {img.shape[0]} frames; one image per file is expected", path=path,
                                 fix="list single-frame images in the manifest")
            img = img[0]
        return img
    except MemoryError:
        raise
    except Exception as exc:  # any decode failure skips the sample; the reason never quotes header values
        return Skipped(index=int(index), path=display_path(path, root), reason=reason_of(exc), epoch=int(epoch))


def render_item(item):
    """One recipe → one finished item (a batch of one, unbatched); a Skipped marker as it is."""
    if isinstance(item, Skipped):
        return item
    batch = render_collate([item])
    if batch["n"] == 0:
        return batch["skipped"][0]
    batch.pop("skipped"), batch.pop("seen"), batch.pop("n")
    return _unbatch(batch)


def _unbatch(v):
    if isinstance(v, dict):
        return {k: _unbatch(x) for k, x in v.items()}
    if isinstance(v, torch.Tensor):
        x = v[0]
        return x.item() if x.dim() == 0 and x.dtype == torch.int64 else x
    return v


class rendered:
    """A dataset whose ``[key]`` is the finished item of its recipe (:func:`render_item`);
    every other attribute (read or set) is the dataset's."""

    def __init__(self, dataset):
        object.__setattr__(self, "dataset", dataset)

    def __setattr__(self, name, value):
        setattr(self.dataset, name, value)

    def __getitem__(self, key):
        return render_item(self.dataset[key])

    def __len__(self) -> int:
        return len(self.dataset)

    def __getattr__(self, name):
        return getattr(self.dataset, name)


def collate(items: list) -> dict:
    """Items → a batch, each recipe rendered on its own first (:func:`render_item`), Skipped
    markers and Nones dropped: the stacked fields plus "n", "skipped" and "seen"."""
    items = [render_item(it) if isinstance(it, dict) and "raws" in it else it for it in items]
    skipped = [it for it in items if isinstance(it, Skipped)]
    good = [it for it in items if it is not None and not isinstance(it, Skipped)]
    batch = stack_items(good) if good else {}
    batch["n"] = len(good)
    batch["skipped"], batch["seen"] = skipped, len(skipped) + len(good)
    return batch


# -- one image --------------------------------------------------------------------------------

def _as_chw(x: torch.Tensor) -> torch.Tensor:
    if x.dim() == 2:
        x = x.unsqueeze(0)  # (1, H, W)
    if x.dim() != 3:
        raise ValueError(f"expected an (H, W) or (C, H, W) image, got shape {tuple(x.shape)}")
    return x.float()


def _op_view(x: torch.Tensor, row: list, size: int) -> torch.Tensor:
    """(C, H, W) → (C, size, size): one view with op parameters ``row`` (13) through medcl.ops.augment."""
    from medcl.ops import augment as augment_op

    params = torch.tensor(row, dtype=torch.float64).view(1, 1, -1).expand(x.shape[0], 1, -1)
    return augment_op(x.contiguous(), params, out_size=size, views=1, dtype=torch.float32)[:, 0]


def apply_params(x: torch.Tensor, p: AugmentParams, size: int, generator: torch.Generator | None = None
                 ) -> torch.Tensor:
    """Drawn parameters applied to an (H, W) or (C, H, W) image in [0, 1] → (C, size, size).
    generator: draws the noise seed (needed only when ``p.noise > 0``)."""
    if p.noise > 0.0 and generator is None:
        raise ValueError("noise needs the generator the parameters were drawn from")
    seed = int(torch.randint(0, SEED_RANGE, (), generator=generator)) if p.noise > 0.0 else 0
    return _op_view(_as_chw(x), view_row(p, size, seed), size)


def eval_transform(x: torch.Tensor, size: int, fit: str = DEFAULT_FIT) -> torch.Tensor:
    """Resize only: (H, W) or (C, H, W) → (C, size, size), a non-square image fitted as ``fit`` says."""
    x = _as_chw(x)
    return _op_view(x, view_row(AugmentParams.fitted(*x.shape[-2:], fit), size), size)


def augment(x: torch.Tensor, cfg: AugmentConfig | None, size: int, generator: torch.Generator,
            fit: str = DEFAULT_FIT) -> torch.Tensor:
    """One random view: (H, W) or (C, H, W) in [0, 1] → (C, size, size) in [0, 1]."""
    if cfg is None or not cfg.enabled:
        return eval_transform(x, size, fit)
    h, w = _as_chw(x).shape[-2:]
    return apply_params(x, sample_params(cfg, h, w, generator, fit), size, generator)


# -- puzzles ----------------------------------------------------------------------------------

def cut_puzzle(images: torch.Tensor, grid: int, tile: int, generator: torch.Generator, *,
               margin: int = 0, jitter: AugmentConfig | None = None) -> dict[str, torch.Tensor]:
    """One puzzle cut from already resized co-registered images (M, S, S) (or (S, S)), drawing
    what PuzzleDataset draws in the same order: the permutation, per cell its modality and tile
    offset, then per shuffled tile its intensity jitter (``jitter`` enabled).

    Returns {"tiles": (N, 1, t, t), "perm": (N,), "source": (N,) modality of each shuffled tile,
             "origin": (N, 2) top, left of each shuffled tile in the S × S image}.
    """
    if images.dim() == 2:
        images = images.unsqueeze(0)                                   # (1, S, S)
    M, S = images.shape[0], images.shape[-1]
    n, t = int(grid), int(tile)
    cell = (S - 2 * margin) // n
    if cell < t:
        raise ValueError(f"cut_puzzle: tile {t} does not fit cells of {cell} px")
    g = generator
    perm, source, origin = draw_puzzle(M, n, cell, t, g, margin=margin)
    cells = torch.stack([images[int(source[c]), y:y + t, x:x + t]
                         for c, (y, x) in enumerate(origin.tolist())])  # (N, t, t)
    tiles = cells[perm].unsqueeze(1).float()                           # (N, 1, t, t)
    if jitter is not None and jitter.enabled:
        cfg = intensity_only(jitter)
        tiles = torch.stack([apply_params(x, sample_params(cfg, t, t, g), t, g) for x in tiles])
    return {"tiles": tiles.contiguous(), "perm": perm, "source": source[perm], "origin": origin[perm]}
