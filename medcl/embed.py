"""Image embeddings from pretrained weights, and the tables geneticists read.

``medcl embed WEIGHTS --data MANIFEST --out FILE --format parquet|csv|npy|pheno``: one row per
image with FID, IID, path and the encoder's pooled features. ``pheno`` writes the whitespace
``FID IID PC_0 … PC_{K-1}`` table (PCA fitted on the embedded set; one row per individual,
their images averaged) that ``plink2 --pheno``, REGENIE and BOLT-LMM read, as ContIG's GWAS did.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from torch import nn

from medcl.device import resolve_device
from medcl.errors import ConfigError

log = logging.getLogger("medcl")

FORMATS = ("parquet", "csv", "npy", "pheno")


def image_encoder_from(meta: dict, state: dict | None = None, *, seed: int = 0) -> nn.Module:
    """The image encoder that a weights file's ``meta`` describes, with the ``image_encoder.*``
    tensors of ``state`` loaded (None: random weights drawn after seeding with ``seed``)."""
    from medcl.config import config_from_dict
    from medcl.models import ImageEncoderConfig, build_image_encoder

    image_cfg = config_from_dict(ImageEncoderConfig, meta["config"]["image"])   # every method has one
    torch.manual_seed(seed)
    encoder = build_image_encoder(image_cfg)
    if state is not None:
        prefix = "image_encoder."
        encoder.load_state_dict({k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)})
    return encoder.eval()


def load_image_encoder(weights: Path, *, random_init: bool = False, seed: int = 0) -> tuple[nn.Module, dict]:
    """The image encoder of a checkpoint or encoder.safetensors (random weights of the same
    architecture with ``random_init``: the baseline), and the weights' metadata."""
    from medcl.train.export import load_weights

    state, meta = load_weights(Path(weights))
    return image_encoder_from(meta, None if random_init else state, seed=seed), meta


@torch.no_grad()
def compute_features(encoder: nn.Module, dataset, *, batch_size: int = 64, device: torch.device,
                     workers: int = 0, stage: str = "embed", decode: str = "auto") -> tuple[np.ndarray, np.ndarray]:
    """(N, D) float32 features and (N,) dataset rows that were read (bad images are skipped).
    ``decode``: where images are decoded and resized (medcl.data.recipes.decode_place; "auto":
    on the GPU when the encoder runs on CUDA, else in the loader's CPU workers)."""
    from medcl.data import DeviceBatches, decode_place, loader_collate, make_loader
    from medcl.progress import Progress

    encoder = encoder.to(device).eval()
    place = decode_place(decode, device)
    loader = make_loader(dataset, batch_size, shuffle=False, num_workers=workers, collate_fn=loader_collate(place),
                         pin_memory=device.type == "cuda")
    feats, rows = [], []
    with Progress(stage, len(dataset)) as p:
        for batch in DeviceBatches(loader, device, place):
            if len(batch.get("index", [])) == 0:
                continue
            x = batch["image"]
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                f = encoder(x)
            feats.append(f.float().cpu())
            rows.append(batch["index"].cpu())
            p.update(p.done + len(x))
    if not feats:
        return np.zeros((0, getattr(encoder, "out_dim", 0)), np.float32), np.zeros(0, np.int64)
    return torch.cat(feats).numpy(), torch.cat(rows).numpy()


def check_pca(k: int, people: int, dim: int) -> None:
    """--pca K needs 1 <= K <= min(people, embedding size) (ConfigError otherwise)."""
    if k < 1 or k > min(people, dim):
        raise ConfigError(f"--pca {k} is out of range for {people} people and {dim}-dimensional embeddings",
                          fix=f"use 1 <= K <= {min(people, dim)}")


def check_out_file(out, fmt: str, overwrite: bool) -> None:
    """An existing non-empty output (or the .rows.csv beside an npy) needs ``overwrite``."""
    out = Path(out)
    if out.is_dir():
        raise ConfigError("is a folder", path=out, fix="--out names the output file, e.g. embeddings.parquet")
    for path in [out] + ([out.with_suffix(".rows.csv")] if fmt == "npy" else []):
        if not overwrite and path.is_file() and path.stat().st_size > 0:
            raise ConfigError("already exists", path=path, fix="choose another --out, or add --overwrite to replace it")


def pca(x: np.ndarray, k: int) -> np.ndarray:
    """First k principal-component scores of x (rows centred), via SVD."""
    check_pca(k, x.shape[0], x.shape[1])
    xc = x.astype(np.float64) - x.mean(0, keepdims=True)
    u, s, _ = np.linalg.svd(xc, full_matrices=False)
    return (u[:, :k] * s[:k]).astype(np.float32)


def write_embeddings(frame, feats: np.ndarray, out: Path, fmt: str, *, pca_k: int = 10) -> Path:
    """frame: rows of the manifest that were embedded (FID, IID, path). Writes ``out``."""
    import pandas as pd

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    keys = [c for c in ("FID", "IID", "path", "frame") if c in frame.columns]  # frame: of a multi-frame file
    if fmt == "npy":
        np.save(out, feats)
        frame[keys].to_csv(out.with_suffix(".rows.csv"), index=False)
        return out
    if fmt == "pheno":
        per_person = (pd.DataFrame(feats).assign(FID=frame["FID"].to_numpy(), IID=frame["IID"].to_numpy())
                      .groupby(["FID", "IID"], sort=True).mean())
        scores = pca(per_person.to_numpy(), pca_k)
        table = pd.DataFrame(scores, columns=[f"PC_{i}" for i in range(pca_k)])
        table.insert(0, "IID", per_person.index.get_level_values("IID"))
        table.insert(0, "FID", per_person.index.get_level_values("FID"))
        table.to_csv(out, sep=" ", index=False, float_format="%.6g")
        return out
    table = frame[keys].reset_index(drop=True).copy()
    emb = pd.DataFrame(feats, columns=[f"emb_{i}" for i in range(feats.shape[1])])
    table = pd.concat([table, emb], axis=1)
    if fmt == "parquet":
        table.to_parquet(out, index=False)
    else:
        table.to_csv(out, index=False)
    return out


def run_embed(weights: Path, *, data: str | None, out: Path, fmt: str = "parquet", pca_k: int = 10,
              batch_size: int = 64, device: str = "auto", workers: int = 2, image_size: int | None = None,
              fit: str | None = None, overwrite: bool = False) -> Path:
    """Embeds the images of ``data`` into ``out``; ``fit``: how non-square images fill the square
    input (None: as the pretraining run did, medcl.data.fit.run_fit)."""
    from medcl.data import ImageDataset
    from medcl.data.fit import run_fit

    if fmt not in FORMATS:
        raise ConfigError(f"unknown format {fmt!r}", fix=f"use one of {', '.join(FORMATS)}")
    check_out_file(out, fmt, overwrite)
    if data is None:
        from medcl.demo.cache import demo_cohort
        data = str(demo_cohort() / "manifest.csv")
    from medcl.data.sources import open_source
    open_source(data)  # a --data that is not there is named before anything else
    dev = resolve_device(device)
    encoder, meta = load_image_encoder(weights)
    size = image_size or int(meta["preprocessing"]["image_size"])
    ds = ImageDataset(data, size, fit=fit or run_fit(meta, weights)[0])  # reads the manifest; root = its folder
    frame = ds.frame
    if fmt == "pheno":   # checked before any image is embedded
        check_pca(pca_k, len(frame[["FID", "IID"]].drop_duplicates()), int(encoder.out_dim))
    feats, rows = compute_features(encoder, ds, batch_size=batch_size, device=dev, workers=workers)
    if len(rows) < len(frame):
        log.warning("%d of %d images could not be read and are left out", len(frame) - len(rows), len(frame))
    path = write_embeddings(frame.iloc[rows].reset_index(drop=True), feats, out, fmt, pca_k=pca_k)
    log.info("embedded %d images (D=%d) into %s", len(rows), feats.shape[1], path)
    return path
