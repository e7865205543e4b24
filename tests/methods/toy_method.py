"""A toy pretraining method written as a user would add one: this file (the module, its option
section, its builder) and one line, ``register_method(toy_method.SPEC)``.

The toy pulls the pooled features of two augmented views of an image together (1 − cosine);
it is no good method (it can collapse), only the smallest thing with a loss, an option and data.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

from medcl.config import DictConfig, option
from medcl.models import ImageEncoderConfig, build_image_encoder
from medcl.pretrain.common import image_cohort
from medcl.pretrain.spec import Built, MethodSpec


@dataclass
class ToyConfig(DictConfig):
    image: ImageEncoderConfig = option(default_factory=ImageEncoderConfig, cli=False)
    toy_scale: float = option(1.0, "Factor on the toy's loss.")


class ToyMethod(nn.Module):
    min_batch = 1
    min_global_batch = 1

    def __init__(self, cfg: ToyConfig):
        super().__init__()
        self.cfg = cfg
        self.image_encoder = build_image_encoder(cfg.image)

    def _loss(self, views: torch.Tensor) -> torch.Tensor:
        B, V = views.shape[:2]
        f = self.image_encoder(views.flatten(0, 1)).view(B, V, -1)
        return self.cfg.toy_scale * (1 - F.cosine_similarity(f[:, 0], f[:, 1], dim=-1)).mean()

    def forward(self, batch) -> dict[str, torch.Tensor]:
        return {"loss": self._loss(batch["views"])}

    @torch.no_grad()
    def evaluate(self, batches) -> dict[str, float]:
        losses = [float(self._loss(b["views"])) for b in batches]
        return {"val_loss": sum(losses) / len(losses)} if losses else {}


def build(cfg, info, source) -> Built:
    from medcl.data.datasets.views import ViewsDataset

    cohort = image_cohort(cfg, info, source)
    method_cfg = replace(cfg.sections["toy"], image=cfg.encoder)
    common = dict(pairs="views", image_size=cfg.data.image_size, small_crops=0, seed=cfg.train.seed,
                  source=source, fit=cfg.data.fit, augment=cfg.augment)
    train = ViewsDataset(cohort, "train", **common)
    val = ViewsDataset(cohort, "val", fixed_epoch=0, **common)
    return Built(ToyMethod(method_cfg), train, val, {"config": method_cfg.to_dict()})


SPEC = MethodSpec("toy", ToyMethod, {"toy": ToyConfig}, build, "a toy: two views' features pulled together")
