"""The settings of ``medcl finetune`` (:class:`FinetuneConfig`) and their checks, made before any
image is read."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from medcl.config import option
from medcl.downstream.tasks import TASKS, get_task
from medcl.errors import ConfigError

BASELINES = ("random", "pixels")
MODES = ("linear", "full")


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


def parse_fractions(value) -> tuple:
    """'0.01,0.1,1' (or a list) → a tuple of floats (ValueError naming the form otherwise)."""
    items = value.split(",") if isinstance(value, str) else value
    try:
        return tuple(float(v) for v in items if str(v).strip())
    except (TypeError, ValueError):
        raise ValueError("use comma-separated numbers, e.g. 0.01,0.1,1") from None


@dataclass
class FinetuneConfig:
    """The settings of ``medcl finetune``; the command line's options are made from these fields
    (``medcl.config.option``), only --fit and --device come from the options every image
    command shares."""

    weights: str = option(help="encoder.safetensors or a checkpoint (the command's argument).", cli=False)
    labels: str = option(help="Table with FID, IID and the target.")
    target: str = option(help="Column of the labels table to predict.")
    out: str = option(help="Folder for metrics.json and label_efficiency.png (new or empty).")
    data: str | None = option(None, "Manifest (FID,IID,path[,frame]; csv/tsv/parquet), prepared dataset or its "
                                    "manifest.csv (default: the demo cohort).")
    task: str | None = option(None, "Default: inferred from the column (2 distinct values: binary; text, or whole "
                                    "numbers >= 0 with at most 10 distinct values: multiclass (ordinal: grades scored "
                                    "by kappa); other numbers: regression). A --task that does not fit the column is "
                                    "refused.", choices=lambda: tuple(TASKS))
    mode: str = option("linear", "linear: frozen features + linear model; full: fine-tune the encoder end to end.",
                       choices=MODES)
    fractions: tuple = option((0.01, 0.1, 1.0), "Fractions of the training individuals that keep their labels.",
                              parse=parse_fractions)
    repeats: int = option(3, "Draws (seeds 0..repeats-1) per fraction.")
    baseline: tuple = option(BASELINES, "Comma list beside the pretrained encoder: random (a randomly initialised "
                                        "encoder of the same architecture), pixels (the linear probe on raw pixels at "
                                        "a quarter of the input size); none: no baseline.", parse=parse_baselines)
    batch_size: int = option(64, "Images per batch (feature extraction and full fine-tuning).")
    epochs: int = option(10, "Full mode: epochs.")
    lr: float = option(1e-4, "Full mode: learning rate.")
    workers: int = option(2, "DataLoader worker processes.")
    device: str = option("auto", "cpu | cuda | auto", cli=False)      # --device: every command's
    seed: int = option(0, "Base seed of the label draws and the training.")
    overwrite: bool = option(False, "Write into an --out folder that is not empty.")
    fit: str | None = option(None, "Non-square images: pad | crop | squash (None: the pretraining run's).",
                             cli=False)                                  # --fit: every image command's


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
