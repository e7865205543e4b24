"""run_pretrain: checks → data → method (the registry's builder) → Trainer → RUN/encoder.safetensors."""
from __future__ import annotations

import logging
from pathlib import Path

import torch

from medcl.device import resolve_device
from medcl.errors import ConfigError
from medcl.pretrain.config import PretrainConfig, check_config
from medcl.pretrain.registry import method_spec
from medcl.pretrain.resume import resume_settings

log = logging.getLogger("medcl")


def run_pretrain(cfg: PretrainConfig, given: set[str] | None = None):
    """Trains, checkpoints and exports; returns the Trainer's result.

    ``given``: the options the user set (the CLI passes them; None: all). With --resume the others
    are taken from the run's config.yaml, and those given must agree with it (:func:`resume_settings`);
    options of another method are refused. Nothing is written to the run folder until every
    check and the set-up have passed.
    """
    from medcl.train import distributed as D

    cfg = checked_config(cfg, given)
    device = resolve_device(cfg.run.device)
    info = D.init(device.type)
    if device.type == "cuda" and info.distributed:
        device = torch.device("cuda", info.local_rank)
    check_global_batch(cfg, info.world_size)
    cfg = resolve_data(cfg, info.rank)
    try:
        trainer, finish = _set_up(cfg, device, info)
        if cfg.run.resume:
            trainer.restore(cfg.run.resume)  # refuses a checkpoint of another model or batch, before any write
        if info.is_main:  # set-up done: only now does the run folder get its first file
            write_config(cfg)
        D.barrier()
        result = trainer.fit()
        if info.is_main:
            finish(result)
    finally:
        D.shutdown()
    return result


def checked_config(cfg: PretrainConfig, given=None) -> PretrainConfig:
    """The run's settings (with --resume: the run's own) checked before anything is read."""
    if cfg.run.resume:
        cfg = resume_settings(cfg, {leaf.name for leaf in cfg.leaves()} if given is None else given)
    cfg = check_config(cfg, given)
    check_numbers(cfg)
    return cfg


def resolve_data(cfg: PretrainConfig, rank: int = 0) -> PretrainConfig:
    """Fills in the demo cohort's files when no --data is given (rank 0 generates it)."""
    if cfg.data.path is not None:
        return cfg
    from medcl.demo.cache import demo_cohort
    from medcl.train import distributed as D
    root = demo_cohort(create=rank == 0)
    D.barrier()
    demo = {"data": str(root / "manifest.csv"), "genotypes": str(root / "genotypes" / "demo"),
            "prs": str(root / "prs.csv"), "burden": str(root / "burden.csv")}
    flat = cfg.flat()
    return cfg.with_options(**{k: v for k, v in demo.items() if flat.get(k, "unset") is None})


def _set_up(cfg: PretrainConfig, device: torch.device, info):
    """The method, its data and the Trainer; ``finish(result)`` exports the weights."""
    from medcl.data import BadSampleLog
    from medcl.data.recipes import decode_place
    from medcl.data.sources import open_source
    from medcl.train import Trainer

    decode = decode_place(cfg.data.decode, device)  # refused before anything is read
    manifest, source = open_source(cfg.data.path)
    run = Path(cfg.run.out)
    if info.is_main:
        check_run_folder(run, cfg)
    torch.manual_seed(cfg.train.seed)  # identical initial weights on every rank (builders draw no other numbers)
    built = method_spec(cfg.method).build(cfg.with_options(data=manifest), info, source)
    _init_from(built.method, cfg)
    meta = weights_meta(cfg, built.meta)
    bad_log = BadSampleLog(run if info.is_main else None, max_bad_fraction=cfg.data.max_bad_fraction, rank=info.rank)
    data = RunData(cfg, built, device, decode, info, bad_log)
    trainer = Trainer(built.method, cfg.train, run, device=device, batches=data.batches,
                      micro_batches_per_epoch=len(data.loader), validate=data.validate,
                      batch_size=lambda b: int(b.get("n", len(b.get("index", [])))), extra_state=meta,
                      min_batch=type(built.method).min_batch, global_batch=cfg.data.batch_size * info.world_size,
                      title=f"{cfg.method}, {cfg.encoder.arch} ×{cfg.encoder.width:g}, {cfg.data.image_size} px")
    return trainer, lambda result: export(built.method, run, meta, result)


class RunData:
    """The run's training and validation batches, decoded on the device (--decode gpu: workers
    read bytes only and the batch is decoded and augmented there) or in the workers (--decode
    cpu: medcl's C++ kernels), both through medcl.data.recipes."""

    def __init__(self, cfg: PretrainConfig, built, device: torch.device, decode: str, info, bad_log):
        from medcl.data import make_loader
        from medcl.data.recipes import loader_collate

        self.cfg, self.built, self.device, self.decode, self.bad_log = cfg, built, device, decode, bad_log
        self.collate = loader_collate(self.decode)
        batch = cfg.data.batch_size
        self.loader = make_loader(built.train, batch, shuffle=True, seed=cfg.train.seed, drop_last=True,
                                  num_workers=cfg.data.workers, rank=info.rank, world_size=info.world_size,
                                  bad_log=bad_log, pin_memory=device.type == "cuda", collate_fn=self.collate)
        if len(self.loader) == 0:
            raise ConfigError(f"the training split has fewer than {batch * info.world_size} images",
                              fix="lower --batch-size")
        if info.is_main and len(built.val) < 2:
            log.warning("the validation split has %d image(s): no validation loss or retrieval can be computed "
                        "(assign more individuals to split 'val' in the manifest)", len(built.val))

    def batches(self, epoch: int, start: int):
        from medcl.data.recipes import DeviceBatches

        self.loader.set_epoch(epoch, start)
        return DeviceBatches(self.loader, self.device, self.decode, bad_log=self.bad_log)

    def validate(self, method, epoch: int) -> dict:
        from medcl.data import make_loader
        from medcl.data.recipes import DeviceBatches

        loader = make_loader(self.built.val, self.cfg.data.batch_size, shuffle=False,
                             num_workers=self.cfg.data.workers, collate_fn=self.collate)
        return method.evaluate(b for b in DeviceBatches(loader, self.device, self.decode) if b.get("n", 1))


def export(method, run: Path, meta: dict, result) -> None:
    from medcl.train.export import export_weights
    from medcl.train.summary import comments

    export_weights(method.state_dict(), run / "encoder.safetensors", meta)
    log.info("done: %d steps; weights in %s, curves in %s", result.steps, run / "encoder.safetensors",
             run / "curves.png")
    for line in comments(result.history):
        log.warning("%s", line)


def _init_from(method, cfg: PretrainConfig) -> None:
    if not cfg.run.init_from or cfg.run.resume:
        return
    from medcl.train.export import load_weights

    state, _ = load_weights(Path(cfg.run.init_from))
    missing, unexpected = method.load_state_dict(state, strict=False)
    log.info("initialised from %s (%d tensors not found there, %d unused)", cfg.run.init_from,
             len(missing), len(unexpected))


def weights_meta(cfg: PretrainConfig, method_meta: dict) -> dict:
    """What is saved with the weights: the method, how images became inputs, the method's own
    metadata (its module config, genetics) and the whole resolved run config (``pretrain``)."""
    return {"method": cfg.method, "genetic_dims": {}, "counted_allele": None, "genetics_stats": {},
            "preprocessing": {"image_size": cfg.data.image_size, "fit": cfg.data.fit,
                              "reader": "medcl.ops.decode_pixels",
                              "resize": "medcl.ops.augment (area-sampled bilinear)", "range": [0.0, 1.0]},
            **method_meta, "pretrain": cfg.to_dict()}


def write_config(cfg: PretrainConfig) -> None:
    run = Path(cfg.run.out)
    run.mkdir(parents=True, exist_ok=True)
    (run / "config.yaml").write_text(cfg.to_yaml())


def check_numbers(cfg: PretrainConfig) -> None:
    """Refuses settings that would train nothing or train on nonsense (before anything is read)."""
    if cfg.train.epochs < 1:
        raise ConfigError(f"--epochs {cfg.train.epochs}: a run needs at least 1 epoch "
                          "(0 would export the random initial weights as pretrained)", fix="use --epochs 1 or more")
    for name, low in (("accumulate", 1), ("log_every", 1), ("checkpoint_every", 0), ("workers", 0)):
        if getattr(cfg, name) < low:
            raise ConfigError(f"--{name.replace('_', '-')} {getattr(cfg, name)} must be at least {low}")
    if not cfg.train.lr > 0:
        raise ConfigError(f"--lr {cfg.train.lr} must be positive")
    need = method_spec(cfg.method).module.min_batch
    if cfg.data.batch_size < need:
        raise ConfigError(f"--batch-size {cfg.data.batch_size} is too small for {cfg.method}: it needs at least "
                          f"{need} images per process (BatchNorm over the batch, and negatives for the contrastive "
                          "loss)", fix=f"use --batch-size {need} or more; contrastive methods learn best with 64 or more")


def check_global_batch(cfg: PretrainConfig, world_size: int) -> None:
    need = method_spec(cfg.method).module.min_global_batch
    if cfg.data.batch_size * world_size < need:
        procs = f" × {world_size} processes" if world_size > 1 else ""
        raise ConfigError(f"--batch-size {cfg.data.batch_size}{procs} is too small for {cfg.method}: a batch needs at "
                          f"least {need} images, or each image has no other to be told apart from and the loss means "
                          "nothing (a loss of 0)",
                          fix=f"use --batch-size {-(-need // world_size)} or more; contrastive methods learn best "
                              "with 64 or more")


def check_run_folder(run: Path, cfg: PretrainConfig) -> None:
    if cfg.run.resume or not run.exists():
        return
    if any(run.iterdir()):
        raise ConfigError(f"run folder {run} already exists and is not empty",
                          fix="use --resume auto to continue it, or another --out")
