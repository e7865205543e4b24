"""--resume: the run's config.yaml fills what is not given; what is given must agree with it."""
from __future__ import annotations

import os
from pathlib import Path

from medcl.data.fit import LEGACY_FIT
from medcl.errors import ConfigError
from medcl.pretrain.config import PretrainConfig

# Options that may differ from the run's config.yaml on --resume: where and how verbosely the run
# goes, and its length (the schedule is recomputed; the engine refuses fewer epochs than begun).
# --batch-size may change only where the global batch stays (more processes, each with fewer
# images): the engine compares the global batch and the steps per epoch with the checkpoint's.
FREE_ON_RESUME = ("resume", "init_from", "device", "workers", "decode", "log_every", "checkpoint_every",
                  "max_bad_fraction", "epochs", "batch_size")
PATHS = ("data", "genotypes", "prs", "burden", "snp_ids")
MACHINE = ("device", "workers", "decode", "init_from")  # not taken from the run: this machine's defaults


def run_config_file(cfg: PretrainConfig) -> Path | None:
    """The config.yaml of the run being resumed: OUT's, or that of the checkpoint's own run."""
    if str(cfg.run.resume) != "auto":
        ck = Path(cfg.run.resume)
        if ck.parent.name == "checkpoints" and (ck.parent.parent / "config.yaml").is_file():
            return ck.parent.parent / "config.yaml"
    path = Path(cfg.run.out) / "config.yaml"
    return path if path.is_file() else None


def _same(name: str, a, b) -> bool:
    if name in PATHS and isinstance(a, str) and isinstance(b, str):
        return os.path.abspath(os.path.expanduser(a)) == os.path.abspath(os.path.expanduser(b))
    return a == b


def stored_settings(path: Path) -> dict:
    """The run's settings by option name (config.yaml nested, or flat from before nesting)."""
    import yaml

    try:
        stored = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read the run's configuration ({type(exc).__name__})", path=path,
                          fix="restore the file, or start a new run with another --out") from None
    legacy = not any(isinstance(v, dict) for v in stored.values())
    flat = PretrainConfig.from_dict(stored).flat()
    if legacy:  # only what the file holds; a run from before --fit squashed its images
        flat = {k: v for k, v in flat.items() if k in stored or k == "method"}
        flat.setdefault("fit", stored.get("fit", LEGACY_FIT))
    return {k: v for k, v in flat.items() if k not in ("out", "resume")}


def resume_settings(cfg: PretrainConfig, given) -> PretrainConfig:
    """--resume: the run's config.yaml fills every option not in ``given`` (but those of the
    machine: --device, --workers, --decode keep their defaults); an option given with another
    value than the run's is refused (ConfigError listing them) unless it is one of
    FREE_ON_RESUME. Without a config.yaml (a fresh --out) ``cfg`` is returned as it is."""
    path = run_config_file(cfg)
    if path is None:
        return cfg
    stored = stored_settings(path)
    now = cfg.flat()
    differ = [k for k, v in stored.items() if k in given and k not in FREE_ON_RESUME and not _same(k, now.get(k), v)]
    if differ:
        listed = ", ".join(f"--{k.replace('_', '-')} {_show(now.get(k))} (the run has {_show(stored[k])})"
                           for k in differ)
        raise ConfigError(f"--resume: options differ from the run's: {listed}", path=path,
                          fix="leave them out to use the run's values, or start a new run from its weights with "
                              f"--init-from {Path(path).parent / 'encoder.safetensors'} --out NEW_RUN; only --epochs, "
                              "--batch-size (same global batch), --device, --workers, --decode, --log-every, "
                              "--checkpoint-every and --max-bad-fraction may change on resume")
    return cfg.with_options(**{k: v for k, v in stored.items() if k not in given and k not in MACHINE})


def options_config(options: dict, given) -> PretrainConfig:
    """The command line's options as a config. With --resume and no --method, the run's method
    first, so that the options of that method are read (they are the run's own)."""
    cfg = PretrainConfig.from_options(**options)
    if cfg.run.resume and "method" not in given:
        path = run_config_file(cfg)
        method = stored_settings(path).get("method") if path else None
        if method and method != cfg.method:
            cfg = PretrainConfig.from_options(**{**options, "method": method})
    return cfg


def _show(v) -> str:
    return ",".join(map(str, v)) if isinstance(v, (list, tuple)) else str(v)
