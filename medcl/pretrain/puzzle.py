"""--method puzzle: multimodal jigsaw puzzles solved through the Sinkhorn operator
(medcl.methods.puzzle, medcl.data.datasets.puzzle).

Options: the module's (``PuzzleConfig``: --grid, --sinkhorn-iters, --puzzle-loss) and which
co-registered images a puzzle mixes (``PuzzleData``: --puzzle-columns).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, replace

from medcl.config import DictConfig, option
from medcl.methods.puzzle import PuzzleConfig, PuzzleMethod
from medcl.pretrain.common import image_cohort
from medcl.pretrain.spec import Built, MethodSpec

log = logging.getLogger("medcl")


@dataclass
class PuzzleData(DictConfig):
    columns: tuple | None = option(None, "Manifest columns of co-registered images mixed in each puzzle "
                                   "(default: path and every *_path column).", flag="puzzle_columns", parse="csv")


def build(cfg, info, source) -> Built:
    from medcl.data.datasets.puzzle import PuzzleDataset

    cohort = image_cohort(cfg, info, source)
    given = cfg.sections["puzzle_data"].columns
    columns = tuple(given) if given else ("path", *[c for c in cohort.images.columns if str(c).endswith("_path")])
    method_cfg = replace(cfg.sections["puzzle"], image=cfg.encoder, columns=columns)
    common = dict(columns=columns, grid=method_cfg.grid, image_size=cfg.data.image_size, seed=cfg.train.seed,
                  tile_fraction=method_cfg.tile_fraction, source=source, fit=cfg.data.fit)
    train = PuzzleDataset(cohort, "train", augment=cfg.augment, **common)
    val = PuzzleDataset(cohort, "val", augment=None, **common)
    if info.is_main:
        log.info("puzzle: %d×%d tiles of %d px from %s", method_cfg.grid, method_cfg.grid, train.tile,
                 ", ".join(columns))
    return Built(PuzzleMethod(method_cfg), train, val, {"config": method_cfg.to_dict()})


SPEC = MethodSpec("puzzle", PuzzleMethod, {"puzzle": PuzzleConfig, "puzzle_data": PuzzleData}, build,
                  "multimodal jigsaw puzzles through the Sinkhorn operator")
