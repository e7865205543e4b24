"""Exported weights: RUN/encoder.safetensors, and reading weights from it or a checkpoint.

The safetensors file holds the method's tensors; its metadata (strings) holds JSON for what is
needed to use them on new data: the method and its config, the input sizes of the genetic
encoders, the image preprocessing, the counted allele and the training-split standardisation
statistics, and the medcl version. ``load_weights`` reads the same information from a training
checkpoint (RUN/checkpoints/last.pt), so `medcl embed` and `medcl finetune` take either.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

from medcl.errors import MedclError
from medcl.files import atomic_write
from medcl.train import checkpoint as ckpt

FORMAT = "medcl.weights"
META_KEYS = ("method", "config", "genetic_dims", "preprocessing", "counted_allele", "genetics_stats", "pairs", "pretrain")


def export_weights(state_dict: dict, path: Path, meta: dict) -> Path:
    """Writes ``state_dict`` and ``meta`` (JSON-serialisable values under META_KEYS) atomically."""
    from safetensors.torch import save_file

    import medcl
    path = Path(path)
    tensors = {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}
    metadata = {"format": FORMAT, "medcl_version": medcl.__version__,
                **{k: json.dumps(meta.get(k)) for k in META_KEYS}}
    return atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=metadata))


def load_weights(path: Path) -> tuple[dict, dict]:
    """(state_dict, meta) from an encoder.safetensors or a medcl checkpoint (.pt)."""
    path = Path(path)
    if not path.is_file():
        raise MedclError("weights file not found", path=path,
                         fix="pass RUN/encoder.safetensors or RUN/checkpoints/last.pt")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError, safe_open
        try:
            with safe_open(str(path), framework="pt") as fh:
                raw = fh.metadata() or {}
                state = {k: fh.get_tensor(k) for k in fh.keys()}
        except (SafetensorError, OSError, ValueError) as exc:
            raise MedclError(f"cannot read safetensors ({type(exc).__name__})", path=path) from None
        if raw.get("format") != FORMAT:
            raise MedclError("not a medcl weights file (no medcl metadata)", path=path)
        meta = {k: json.loads(raw[k]) for k in META_KEYS if k in raw}
        meta["medcl_version"] = raw.get("medcl_version")
        return state, meta
    obj = ckpt.load(path)
    meta = {k: obj.get(k) for k in META_KEYS}
    if not meta.get("method"):
        raise MedclError("checkpoint has no method metadata", path=path)
    return obj["model"], meta
