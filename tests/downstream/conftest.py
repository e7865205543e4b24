"""Fixtures of the downstream tests: a tiny cohort and weights of a random encoder."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    """A tiny demo cohort (60 people, 64-pixel radiographs), one per test module."""
    from medcl.demo import generate_cohort
    out = tmp_path_factory.mktemp("tiny") / "cohort"
    generate_cohort(out, n=60, snps=100, size=64, seed=1)
    return out


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """encoder.safetensors of a randomly initialised narrow ResNet-18 (32-pixel inputs)."""
    import torch

    from medcl.config import config_to_dict
    from medcl.models import ImageEncoderConfig, build_image_encoder
    from medcl.train.export import export_weights

    cfg = ImageEncoderConfig(arch="resnet18", width=0.125)
    torch.manual_seed(0)
    encoder = build_image_encoder(cfg)
    path = tmp_path_factory.mktemp("weights") / "encoder.safetensors"
    meta = {"method": "simclr", "config": {"image": config_to_dict(cfg)},
            "preprocessing": {"image_size": 32, "fit": "pad"}}
    export_weights({f"image_encoder.{k}": v for k, v in encoder.state_dict().items()}, path, meta)
    return str(path)
