"""--method simclr and --method swav: views of images (medcl.data.datasets.views), NT-Xent or swapped
prediction of Sinkhorn-Knopp codes (medcl.methods.simclr, medcl.methods.swav).

Both take --pairs (where a positive pair comes from: ``ViewData``); swav also its multi-crop
(``SwAVViewData``: --small-crops) and its module's options (``SwAVConfig``).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, replace

from medcl.config import DictConfig, option
from medcl.data.datasets.views import PAIRS
from medcl.errors import ConfigError
from medcl.methods.simclr import SimCLRConfig, SimCLRMethod
from medcl.methods.swav import SwAVConfig, SwAVMethod
from medcl.pretrain.common import image_cohort
from medcl.pretrain.spec import Built, MethodSpec

log = logging.getLogger("medcl")


@dataclass
class ViewData(DictConfig):
    pairs: str = option("views", "Positives: views (two augmentations of one image), patient (two images of the same "
                        "individual, resized only), views+patient (two images, each augmented); individuals with one "
                        "image fall back to views.", choices=PAIRS, strict=True)


@dataclass
class SwAVViewData(ViewData):
    small_crops: int = option(6, "Small crops besides the 2 large views (size scaled as 96/224 of --image-size).")


def _views(cfg, info, source, small_crops: int):
    """Train and val view datasets (val: fixed views, the same every epoch)."""
    from medcl.data.datasets.views import ViewsDataset

    cohort = image_cohort(cfg, info, source)
    pairs = cfg.sections["views"].pairs
    common = dict(pairs=pairs, image_size=cfg.data.image_size, small_crops=small_crops, seed=cfg.train.seed,
                  source=source, fit=cfg.data.fit, augment=cfg.augment)
    train = ViewsDataset(cohort, "train", **common)
    val = ViewsDataset(cohort, "val", fixed_epoch=0, **common)
    if info.is_main and pairs != "views":
        log.info("pairs %s: %.0f%% of training images have another image of the same individual "
                 "(the rest fall back to views)", pairs, 100 * train.paired_fraction)
    return train, val


def check_simclr(cfg):
    if cfg.sections["views"].pairs == "views" and not cfg.augment.enabled:
        raise ConfigError("simclr with --pairs views and --no-augment compares each image with an identical copy",
                          fix="keep --augment, or use --pairs patient")
    return cfg


def check_swav(cfg):
    if cfg.sections["views"].small_crops < 0:
        raise ConfigError(f"--small-crops {cfg.sections['views'].small_crops} must be >= 0")
    return cfg


def build_simclr(cfg, info, source) -> Built:
    method_cfg = replace(cfg.sections["simclr"], image=cfg.encoder)
    train, val = _views(cfg, info, source, small_crops=0)
    return Built(SimCLRMethod(method_cfg), train, val,
                 {"config": method_cfg.to_dict(), "pairs": cfg.sections["views"].pairs})


def build_swav(cfg, info, source) -> Built:
    method_cfg = replace(cfg.sections["swav"], image=cfg.encoder)
    views = cfg.sections["views"]
    train, val = _views(cfg, info, source, small_crops=views.small_crops)
    return Built(SwAVMethod(method_cfg), train, val, {"config": method_cfg.to_dict(), "pairs": views.pairs})


SIMCLR = MethodSpec("simclr", SimCLRMethod, {"simclr": SimCLRConfig, "views": ViewData}, build_simclr,
                    "two views of an image (or two images of a person), NT-Xent", check=check_simclr)
SWAV = MethodSpec("swav", SwAVMethod, {"swav": SwAVConfig, "views": SwAVViewData}, build_swav,
                  "multi-crop views, swapped prediction of Sinkhorn-Knopp codes", check=check_swav)
