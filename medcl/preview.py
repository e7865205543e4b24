"""A grid of augmented views, to look at the augmentation before a long run (``medcl preview``).

Row i shows image i resized (the eval transform, framed) followed by ``views`` random views
drawn with the given :class:`~medcl.data.augment.AugmentConfig` — decoded and augmented by the
same ops, with the same parameter sampler, as pretraining. The images are the first rows of
``--data`` (medcl.data.sources.read_data: a manifest, a prepared dataset or its manifest.csv;
its training split when it has one), each row's frame as pretraining reads it, or the first
frames of a single DICOM or PNG/JPEG file.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from medcl.data.fit import DEFAULT_FIT

log = logging.getLogger("medcl")

GAP = 6  # pixels between tiles (mid grey)


def read_images(data, n: int) -> list:
    """Up to ``n`` raw frames: the first frames of a single image file, or the first rows of a
    manifest / prepared dataset (its training split when it has one), each row's frame."""
    from medcl.data.sources import MANIFEST_SUFFIXES, FileSource, frame_numbers, read_data

    p = Path(data)
    if p.is_file() and p.suffix.lower() not in MANIFEST_SUFFIXES:
        return FileSource().read_all(p)[:n]
    frame, source, _ = read_data(data)
    if "split" in frame.columns and (frame["split"] == "train").any():
        frame = frame[frame["split"] == "train"]
    frame = frame.head(n)
    return [source.read(str(path), f) for path, f in zip(frame["path"], frame_numbers(frame))]


def preview_grid(raws: list, cfg, *, size: int = 224, views: int = 6, seed: int = 0,
                 fit: str = DEFAULT_FIT) -> np.ndarray:
    """(rows, cols) uint8 grid: per image its resized original, then ``views`` augmented views
    (``fit``: how a non-square image fills the square, medcl.data.fit)."""
    from medcl.data.augment import resize_views, sample_views
    from medcl.data.fit import announce
    from medcl.io.pixels import decode_raw, status_reason
    from medcl.ops import augment

    images, sizes, status = decode_raw(raws)                                    # (B, H, W), (B, 2), (B,)
    for k, s in enumerate(status.tolist()):
        if s:
            raise ValueError(f"image {k} cannot be decoded: {status_reason(s)}")
    if bool((sizes[:, 0] != sizes[:, 1]).any()):
        announce(fit)
    g = torch.Generator().manual_seed(seed)
    plain = augment(images, resize_views(sizes, size, fit), out_size=size, views=1, sizes=sizes,
                    dtype=torch.float32)                                        # (B, 1, S, S)
    aug = augment(images, sample_views(cfg, sizes, size, views, g, fit), out_size=size, views=views,
                  sizes=sizes, dtype=torch.float32)                             # (B, V, S, S)
    tiles = torch.cat([plain, aug], dim=1).clamp(0, 1)                          # (B, 1 + V, S, S)
    B, C = tiles.shape[:2]
    step = size + GAP
    grid = np.full((B * step + GAP, C * step + GAP), 128, dtype=np.uint8)
    px = (tiles * 255).round().to(torch.uint8).numpy()
    for b in range(B):
        for c in range(C):
            y, x = GAP + b * step, GAP + c * step
            grid[y:y + size, x:x + size] = px[b, c]
        grid[GAP + b * step - 2:GAP + b * step + size + 2, GAP - 2:GAP] = 255   # frame the original
        grid[GAP + b * step - 2:GAP + b * step + size + 2, GAP + size:GAP + size + 2] = 255
    return grid


def write_preview(data, out, cfg, *, images: int = 4, size: int = 224, views: int = 6, seed: int = 0,
                  fit: str = DEFAULT_FIT) -> Path:
    """Reads up to ``images`` images of ``data`` and writes their preview grid to ``out`` (PNG)."""
    from PIL import Image

    raws = read_images(data, images)
    grid = preview_grid(raws, cfg, size=size, views=views, seed=seed, fit=fit)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(grid).save(out)
    log.info("wrote %s: %d image(s) × (original + %d views) at %d px", out, len(raws), views, size)
    return out
