"""The settings of ``medcl finetune`` (:class:`FinetuneConfig`) and their checks, made before any
image is read."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from medcl.downstream.tasks import get_task
from medcl.errors import ConfigError

BASELINES = ("random", "pixels")
MODES = ("linear", "full")


@dataclass
class FinetuneConfig:
    weights: str                        # encoder.safetensors or a checkpoint
    labels: str                         # table with FID, IID and the target column
    target: str                         # column to predict
    out: str                            # output folder (metrics.json, label_efficiency.png)
    data: str | None = None             # manifest (default: the demo cohort)
    task: str | None = None             # a registered task (binary | multiclass | ordinal | regression); None: inferred
    mode: str = "linear"                # linear (frozen features) | full (end to end)
    fractions: tuple = (0.01, 0.1, 1.0)  # fractions of training individuals with labels
    repeats: int = 3                    # draws per fraction (seeds 0..repeats-1)
    baseline: tuple = BASELINES         # beside the pretrained encoder: random (init), pixels (linear probe)
    batch_size: int = 64                # images per batch (feature extraction / full fine-tuning)
    epochs: int = 10                    # full mode: training epochs
    lr: float = 1e-4                    # full mode: learning rate
    workers: int = 2                    # DataLoader workers
    device: str = "auto"                # cpu | cuda | auto
    seed: int = 0                       # base seed
    overwrite: bool = False             # write into an --out folder that is not empty
    fit: str | None = None              # non-square images: pad | crop | squash (None: the pretraining run's)


def check_config(cfg: FinetuneConfig) -> None:
    """ConfigError for settings that cannot run (an unknown task or mode, fractions outside
    (0, 1], no repeat, no epoch of full fine-tuning, an unknown baseline)."""
    if cfg.task is not None:
        get_task(cfg.task)
    if cfg.mode not in MODES:
        raise ConfigError(f"unknown mode {cfg.mode!r}", fix="use linear or full")
    if not cfg.fractions or any(not 0 < f <= 1 for f in cfg.fractions):
        raise ConfigError("--fractions must lie in (0, 1]")
    if cfg.repeats < 1:
        raise ConfigError(f"--repeats {cfg.repeats} must be at least 1")
    if cfg.mode == "full" and cfg.epochs < 1:
        raise ConfigError(f"--epochs {cfg.epochs} must be at least 1 in full mode")
    parse_baselines(cfg.baseline)


def parse_baselines(value) -> tuple:
    """'random,pixels' / ['random'] / 'none' / None → a tuple of baseline names (checked)."""
    if value is None:
        return ()
    names = [v.strip() for v in (value.split(",") if isinstance(value, str) else value) if v and v.strip()]
    if names == ["none"]:
        return ()
    bad = [n for n in names if n not in BASELINES]
    if bad:
        raise ConfigError(f"unknown baseline {', '.join(bad)}", fix="use a comma list of random, pixels, or none")
    return tuple(dict.fromkeys(names))


def pixel_side(image_size: int) -> int:
    """Side of the raw-pixel baseline's grid: a quarter of the encoder's input, 16 to 48 pixels."""
    return int(min(48, max(16, image_size // 4)))


def check_out(out: Path, overwrite: bool) -> None:
    """An existing non-empty ``out`` needs ``overwrite`` (ConfigError, before any work)."""
    out = Path(out)
    if not out.exists() or overwrite:
        if out.exists() and not out.is_dir():
            raise ConfigError("exists and is not a folder", path=out, fix="choose another --out")
        return
    if not out.is_dir() or any(out.iterdir()):
        raise ConfigError("already exists and is not empty", path=out,
                          fix="choose another --out, or add --overwrite to replace what medcl wrote there")
