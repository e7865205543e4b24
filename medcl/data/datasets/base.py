"""What every dataset here shares: an item is a *recipe* (medcl.data.recipes), the raw frames it
needs (read, not decoded) and its views' drawn parameters; decoding and augmentation run per
batch, in the DataLoader workers (``render_collate``) or on the training device
(``collate_raw`` + ``render``). The randomness of item i comes from a generator seeded by
(seed, epoch, image row), so a resumed run sees exactly the data an uninterrupted one would.
An image that cannot be read comes back as a :class:`~medcl.data.bad_samples.Skipped` marker;
the collate drops it and the loader (:func:`~medcl.data.sampler.make_loader`) logs it to
bad_samples.csv.

The datasets: :mod:`.contig` (an image with its person's genetics), :mod:`.images` (images for
embedding and fine-tuning), :mod:`.views` (several views of an individual's images), :mod:`.puzzle`
(multimodal jigsaw puzzles). A new one subclasses :class:`RecipeDataset`, reads its frames with
:func:`load_raw` and names them with :func:`frame_info`.
"""
from __future__ import annotations

import torch
from torch.utils.data import Dataset

from medcl.data.augment import AugmentConfig, resize_views, sample_views
from medcl.data.bad_samples import Skipped, display_path, reason_of
from medcl.data.fit import DEFAULT_FIT
from medcl.data.recipes import Request
from medcl.data.seeding import mix_seed

__all__ = ["RecipeDataset", "load_raw", "view_params", "view_request", "frame_info", "item_key"]


def load_raw(source, path: str, root, index: int, epoch: int, frame: int | None = None):
    """One raw frame (its undecoded bytes and descriptor) from ``source``, or a Skipped marker.
    frame: the manifest's frame number (None: the file's only frame)."""
    try:
        return source.read(path, frame)
    except MemoryError:
        raise
    except Exception as exc:  # the reason never quotes header values (see reason_of)
        return Skipped(index=int(index), path=display_path(path, root), reason=reason_of(exc), epoch=int(epoch))


def view_params(cfg: AugmentConfig | None, raws: list, size: int, views: int, g: torch.Generator,
                fit: str = DEFAULT_FIT) -> torch.Tensor:
    """(len(raws), views, 13) augment parameters: random views drawn from ``g``, or the eval
    transform (resize only) when ``cfg`` is None or disabled; ``fit``: how a non-square image
    fills the square (medcl.data.fit)."""
    sizes = torch.tensor([[r.rows, r.columns] for r in raws], dtype=torch.int64).view(-1, 2)
    if cfg is None or not cfg.enabled:
        return resize_views(sizes, size, fit).expand(-1, views, -1).contiguous()
    return sample_views(cfg, sizes, size, views, g, fit)


def view_request(cfg: AugmentConfig | None, raw, size: int, seed: int, epoch: int, row: int,
                 fit: str = DEFAULT_FIT) -> Request:
    """The one view of an image row, seeded by (seed, epoch, row) — the same for every dataset."""
    g = torch.Generator().manual_seed(mix_seed(seed, epoch, row))
    return Request(slots=[0], params=view_params(cfg, [raw], size, 1, g, fit), shape=size, squeeze=True, fit=fit)


class RecipeDataset(Dataset):
    """Base of medcl's datasets: ``dataset[key]`` is ``recipe(key)``, the raw frames and views
    of an item (or a Skipped marker), rendered per batch by medcl.data.recipes."""

    def recipe(self, key):
        raise NotImplementedError

    def __getitem__(self, key):
        return self.recipe(key)


def frame_info(row: int, path, root, epoch: int) -> tuple:
    """(image row, display path, epoch) of one frame of a recipe: what the bad-sample log
    records when the frame fails to decode in a batch."""
    return (int(row), display_path(path, root), int(epoch))


def item_key(key, default_epoch: int) -> tuple:
    """(epoch, i) from a sampler key: an int, or an (epoch, int) pair."""
    if isinstance(key, (tuple, list)):
        return int(key[0]), int(key[1])
    return int(default_epoch), int(key)
