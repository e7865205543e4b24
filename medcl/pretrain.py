"""Pretraining runs: data → cohort → method → Trainer → RUN/encoder.safetensors.

``run_pretrain(PretrainConfig(...))`` is what `medcl pretrain` calls; it works on one process
or under torchrun / srun (one process per GPU, DDP). Methods (``METHODS``):

    contig   images aligned with genetic modalities (medcl.methods.contig)
    simclr   two views, NT-Xent; ``pairs`` picks where the views come from (medcl.data.views)
    swav     multi-crop views, swapped prediction of Sinkhorn-Knopp codes
    puzzle   multimodal jigsaw puzzles solved through the Sinkhorn operator (medcl.methods.puzzle)

Each method's builder below returns its module, the datasets of the train and val splits and
the metadata saved with the weights; everything else (loaders, Trainer, export) is shared.
"""
from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import torch

from medcl.data.fit import DEFAULT_FIT, LEGACY_FIT
from medcl.device import resolve_device
from medcl.errors import ConfigError
from medcl.config import plain
from medcl.train.summary import comments

log = logging.getLogger("medcl")


@dataclass
class PretrainConfig:
    method: str = "contig"             # pretraining method: contig | simclr | swav | puzzle
    modalities: tuple | None = None    # contig: image plus genetic modalities (default image,snp)
    data: str | None = None            # manifest (None: the demo cohort)
    genotypes: str | None = None       # PLINK prefix for "snp"
    prs: str | None = None             # PRS table for "prs"
    burden: str | None = None          # burden table for "burden"
    out: str = "runs/contig"           # run folder
    arch: str = "resnet18"             # image encoder: resnet18 | resnet34 | resnet50
    width: float = 1.0                 # channel width factor of the image encoder
    image_size: int = 224              # input size (pixels, square)
    fit: str = DEFAULT_FIT             # non-square images: pad | crop | squash (medcl.data.fit)
    batch_size: int = 64               # images per process per micro-batch
    epochs: int = 10                   # passes over the training split
    lr: float = 1e-3                   # peak learning rate
    weight_decay: float = 1e-4         # AdamW weight decay
    warmup_epochs: float = 1.0         # linear warmup
    accumulate: int = 1                # micro-batches per optimizer step
    clip_grad: float = 1.0             # max gradient norm (0: off)
    precision: str = "auto"            # auto | bf16 | fp16 | fp32
    temperature: float = 0.1           # InfoNCE / NT-Xent / SwAV softmax temperature
    alpha: float = 0.75                # weight of image→genetics in each modality's loss
    aggregate: str = "outer"           # outer (mask missing modalities) | inner (complete cases only)
    snp_stride: int = 1                # keep every k-th SNP (ContIG: 100)
    snp_chromosomes: tuple | None = None  # keep SNPs on these chromosomes
    snp_ids: str | None = None         # file of SNP ids to keep
    counted_allele: str = "a1"         # allele the SNP values count (PLINK: A1)
    genetics_hidden_layers: int = 1    # hidden layers of each genetic encoder (0: identity)
    genetics_hidden: int = 2048        # their width
    head_hidden: int = 2048            # projection head hidden width
    proj_dim: int = 128                # embedding size of the projections
    augment: bool = True               # image augmentation during pretraining
    crop_scale: tuple | None = None    # augmentation settings (medcl.data.augment.AugmentConfig; None: its default)
    crop_ratio: tuple | None = None
    rotation: float | None = None
    hflip: float | None = None
    jitter_p: float | None = None
    brightness: float | None = None
    contrast: float | None = None
    gamma: tuple | None = None
    noise: float | None = None
    pairs: str = "views"               # simclr/swav positives: views | patient | views+patient
    prototypes: int = 3000             # swav: prototypes K
    small_crops: int = 6               # swav: small crops besides the 2 large ones
    queue_length: int = 0              # swav: queued embeddings joining Sinkhorn-Knopp (0: off)
    sk_eps: float = 0.05               # swav: Sinkhorn-Knopp ε
    sk_iters: int = 3                  # swav: Sinkhorn-Knopp rounds
    freeze_prototypes_iters: int = 300  # swav: forwards before the prototypes train
    grid: int = 3                      # puzzle: n × n tiles
    puzzle_columns: tuple | None = None  # puzzle: manifest image columns (default: every path column)
    sinkhorn_iters: int = 20           # puzzle: Sinkhorn iterations
    puzzle_loss: str = "mse"           # puzzle: mse (against the permutation matrix) | ce
    workers: int = 2                   # DataLoader worker processes per rank
    decode: str = "auto"               # where decode + augmentation run: gpu | cpu | auto (gpu on a CUDA device)
    seed: int = 0                      # base seed
    log_every: int = 10                # steps between log lines / metrics rows
    checkpoint_every: int = 0          # steps between checkpoints (0: each epoch)
    resume: str | None = None          # "auto" or a checkpoint path
    init_from: str | None = None       # weights to start from (a new run)
    max_bad_fraction: float = 0.01     # stop when more of the samples seen are unreadable
    device: str = "auto"               # cpu | cuda | cuda:N | auto

    @classmethod
    def from_options(cls, **opts) -> "PretrainConfig":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in opts.items() if k in names})


METHODS = ("contig", "simclr", "swav", "puzzle")


def _augment(cfg: PretrainConfig):
    """The run's AugmentConfig: --augment/--no-augment and the augmentation options."""
    from medcl.data.augment import OPTIONS, augment_config
    return augment_config(cfg.augment, **{k: getattr(cfg, k) for k in OPTIONS})


def _genetic_modalities(cfg: PretrainConfig) -> tuple:
    mods = tuple(m for m in cfg.modalities if m != "image")
    if "image" not in cfg.modalities:
        raise ConfigError("--modalities must include image (ContIG aligns images with genetics)")
    bad = [m for m in mods if m not in ("snp", "prs", "burden")]
    if bad or not mods:
        raise ConfigError(f"--modalities {','.join(cfg.modalities)}: need image and at least one of snp, prs, burden")
    return mods


def resolve_data(cfg: PretrainConfig, rank: int = 0) -> PretrainConfig:
    """Fills in the demo cohort's files when no --data is given (rank 0 generates it)."""
    if cfg.data is not None:
        return cfg
    from medcl.demo.cache import demo_cohort
    from medcl.train import distributed as D
    root = demo_cohort(create=rank == 0)
    D.barrier()
    return PretrainConfig(**{**asdict(cfg), "data": str(root / "manifest.csv"),
                             "genotypes": cfg.genotypes or str(root / "genotypes" / "demo"),
                             "prs": cfg.prs or str(root / "prs.csv"), "burden": cfg.burden or str(root / "burden.csv")})


def _check_method(cfg: PretrainConfig) -> PretrainConfig:
    """The method's name and, for contig, its modalities resolved; options of other methods refused."""
    if cfg.method not in METHODS:
        raise ConfigError(f"unknown method {cfg.method!r}", fix=f"available: {', '.join(METHODS)}")
    from medcl.data.views import PAIRS
    if cfg.pairs not in PAIRS:
        raise ConfigError(f"unknown pair strategy {cfg.pairs!r}", fix=f"use one of {', '.join(PAIRS)}")
    if cfg.pairs != "views" and cfg.method not in ("simclr", "swav"):
        raise ConfigError(f"--pairs {cfg.pairs} applies to simclr and swav only, not {cfg.method}",
                          fix="leave --pairs out, or use --method simclr or swav")
    if cfg.method == "simclr" and cfg.pairs == "views" and not cfg.augment:
        raise ConfigError("simclr with --pairs views and --no-augment compares each image with an identical copy",
                          fix="keep --augment, or use --pairs patient")
    mods = tuple(cfg.modalities) if cfg.modalities else None
    if cfg.method == "contig":
        return replace(cfg, modalities=mods or ("image", "snp"))
    if mods not in (None, ("image",)):
        raise ConfigError(f"--modalities {','.join(mods)} applies to contig only; {cfg.method} pretrains on images",
                          fix="leave --modalities out, or use --method contig")
    return replace(cfg, modalities=("image",))


def _contig(cfg: PretrainConfig, info, source):
    from medcl.data import ContigDataset, load_cohort
    from medcl.io.plink import SnpSelection
    from medcl.methods import ContigConfig, ContigMethod
    from medcl.models import GeneticsEncoderConfig, ImageEncoderConfig

    mods = _genetic_modalities(cfg)
    snps = SnpSelection(chromosomes=list(cfg.snp_chromosomes) if cfg.snp_chromosomes else None,
                        ids=cfg.snp_ids, stride=cfg.snp_stride)
    cohort = load_cohort(cfg.data, genotypes=cfg.genotypes if "snp" in mods else None,
                         prs=cfg.prs if "prs" in mods else None, burden=cfg.burden if "burden" in mods else None,
                         snps=snps, counted_allele=cfg.counted_allele, modalities=mods,
                         aggregate=cfg.aggregate, split_seed=cfg.seed, log_summary=info.is_main,
                         check_files=not source.prepared)
    method_cfg = ContigConfig(modalities=mods, image=ImageEncoderConfig(arch=cfg.arch, width=cfg.width),
                              genetics=GeneticsEncoderConfig(hidden_layers=cfg.genetics_hidden_layers,
                                                             hidden=cfg.genetics_hidden),
                              head_hidden=cfg.head_hidden, proj_dim=cfg.proj_dim,
                              temperature=cfg.temperature, alpha=cfg.alpha)
    dims = {m: cohort.genetics[m].dim for m in mods}
    method = ContigMethod(method_cfg, dims)
    train = ContigDataset(cohort, "train", image_size=cfg.image_size, augment=_augment(cfg),
                          seed=cfg.seed, source=source, fit=cfg.fit)
    val = ContigDataset(cohort, "val", image_size=cfg.image_size, augment=None, seed=cfg.seed, source=source,
                        fit=cfg.fit)
    meta = {"config": method_cfg.to_dict(), "genetic_dims": dims, "counted_allele": cfg.counted_allele,
            "genetics_stats": cohort.stats()}
    return method, train, val, meta


def _image_cohort(cfg: PretrainConfig, info, source):
    from medcl.data import load_cohort
    return load_cohort(cfg.data, modalities=("image",), split_seed=cfg.seed, log_summary=info.is_main,
                       check_files=not source.prepared)


def _views(cfg: PretrainConfig, info, source, small_crops: int):
    """Train and val view datasets for simclr and swav (val: fixed views, the same every epoch)."""
    from medcl.data.views import ViewsDataset

    cohort = _image_cohort(cfg, info, source)
    common = dict(pairs=cfg.pairs, image_size=cfg.image_size, small_crops=small_crops, seed=cfg.seed,
                  source=source, fit=cfg.fit)
    train = ViewsDataset(cohort, "train", augment=_augment(cfg), **common)
    val = ViewsDataset(cohort, "val", augment=_augment(cfg), fixed_epoch=0, **common)
    if info.is_main and cfg.pairs != "views":
        log.info("pairs %s: %.0f%% of training images have another image of the same individual "
                 "(the rest fall back to views)", cfg.pairs, 100 * train.paired_fraction)
    return train, val


def _simclr(cfg: PretrainConfig, info, source):
    from medcl.methods.simclr import SimCLRConfig, SimCLRMethod
    from medcl.models import ImageEncoderConfig

    method_cfg = SimCLRConfig(image=ImageEncoderConfig(arch=cfg.arch, width=cfg.width), head_hidden=cfg.head_hidden,
                              proj_dim=cfg.proj_dim, temperature=cfg.temperature)
    train, val = _views(cfg, info, source, small_crops=0)
    return SimCLRMethod(method_cfg), train, val, {"config": method_cfg.to_dict(), "pairs": cfg.pairs}


def _swav(cfg: PretrainConfig, info, source):
    from medcl.methods.swav import SwAVConfig, SwAVMethod
    from medcl.models import ImageEncoderConfig

    method_cfg = SwAVConfig(image=ImageEncoderConfig(arch=cfg.arch, width=cfg.width), head_hidden=cfg.head_hidden,
                            proj_dim=cfg.proj_dim, prototypes=cfg.prototypes, temperature=cfg.temperature,
                            eps=cfg.sk_eps, sinkhorn_iters=cfg.sk_iters, queue_length=cfg.queue_length,
                            freeze_prototypes_iters=cfg.freeze_prototypes_iters)
    if cfg.small_crops < 0:
        raise ConfigError(f"--small-crops {cfg.small_crops} must be >= 0")
    train, val = _views(cfg, info, source, small_crops=cfg.small_crops)
    return SwAVMethod(method_cfg), train, val, {"config": method_cfg.to_dict(), "pairs": cfg.pairs}


def _puzzle(cfg: PretrainConfig, info, source):
    from medcl.data.puzzle import PuzzleDataset
    from medcl.methods.puzzle import PuzzleConfig, PuzzleMethod
    from medcl.models import ImageEncoderConfig

    cohort = _image_cohort(cfg, info, source)
    columns = tuple(cfg.puzzle_columns) if cfg.puzzle_columns else \
        ("path", *[c for c in cohort.images.columns if str(c).endswith("_path")])
    method_cfg = PuzzleConfig(image=ImageEncoderConfig(arch=cfg.arch, width=cfg.width), grid=cfg.grid,
                              columns=columns, sinkhorn_iters=cfg.sinkhorn_iters, loss=cfg.puzzle_loss)
    common = dict(columns=columns, grid=cfg.grid, image_size=cfg.image_size, seed=cfg.seed,
                  tile_fraction=method_cfg.tile_fraction, source=source, fit=cfg.fit)
    train = PuzzleDataset(cohort, "train", augment=_augment(cfg), **common)
    val = PuzzleDataset(cohort, "val", augment=None, **common)
    if info.is_main:
        log.info("puzzle: %d×%d tiles of %d px from %s", cfg.grid, cfg.grid, train.tile, ", ".join(columns))
    return PuzzleMethod(method_cfg), train, val, {"config": method_cfg.to_dict()}


BUILDERS = {"contig": _contig, "simclr": _simclr, "swav": _swav, "puzzle": _puzzle}


def run_pretrain(cfg: PretrainConfig, given: set[str] | None = None):
    """Trains, checkpoints and exports; returns the Trainer's result.

    ``given``: the options the user set (the CLI passes them; None: all). With --resume the others
    are taken from the run's config.yaml, and those given must agree with it (:func:`resume_settings`).
    Nothing is written to the run folder until every check and the set-up have passed.
    """
    import yaml

    from medcl.data import BadSampleLog, make_loader
    from medcl.train import TrainConfig, Trainer
    from medcl.train import distributed as D
    from medcl.train.export import export_weights, load_weights

    if cfg.resume:
        cfg = resume_settings(cfg, {f.name for f in fields(PretrainConfig)} if given is None else given)
    cfg = _check_method(cfg)
    _check_numbers(cfg)
    device = resolve_device(cfg.device)
    info = D.init(device.type)
    if device.type == "cuda" and info.distributed:
        device = torch.device("cuda", info.local_rank)
    _check_global_batch(cfg, info.world_size)
    cfg = resolve_data(cfg, info.rank)
    decode = _decode_place(cfg, device)
    from medcl.data.sources import open_source
    manifest, source = open_source(cfg.data)
    run = Path(cfg.out)
    if info.is_main:
        _check_run_folder(run, cfg)

    torch.manual_seed(cfg.seed)  # identical initial weights on every rank (builders draw no other numbers)
    method, train_ds, val_ds, method_meta = BUILDERS[cfg.method](replace(cfg, data=manifest), info, source)
    train_ds.raw = val_ds.raw = True  # items are recipes; decode + augment run in render (below)
    if cfg.init_from and not cfg.resume:
        state, _ = load_weights(Path(cfg.init_from))
        missing, unexpected = method.load_state_dict(state, strict=False)
        log.info("initialised from %s (%d tensors not found there, %d unused)", cfg.init_from,
                 len(missing), len(unexpected))
    meta = {"method": cfg.method, "genetic_dims": {}, "counted_allele": None, "genetics_stats": {},
            "preprocessing": {"image_size": cfg.image_size, "fit": cfg.fit, "reader": "medcl.ops.decode_pixels",
                              "resize": "medcl.ops.augment (area-sampled bilinear)", "range": [0.0, 1.0]},
            **method_meta}

    bad_log = BadSampleLog(run if info.is_main else None, max_bad_fraction=cfg.max_bad_fraction, rank=info.rank)
    # --decode gpu: workers read bytes only (collate_raw packs them into one pinned buffer) and the
    # batch is decoded and augmented on the device; --decode cpu: the C++ kernels run in the workers.
    from medcl.data.render import collate_raw, render, render_collate
    collate = collate_raw if decode == "gpu" else render_collate
    loader = make_loader(train_ds, cfg.batch_size, shuffle=True, seed=cfg.seed, drop_last=True,
                         num_workers=cfg.workers, rank=info.rank, world_size=info.world_size,
                         bad_log=bad_log, pin_memory=device.type == "cuda", collate_fn=collate)
    if len(loader) == 0:
        raise ConfigError(f"the training split has fewer than {cfg.batch_size * info.world_size} images",
                          fix="lower --batch-size")
    if info.is_main and len(val_ds) < 2:
        log.warning("the validation split has %d image(s): no validation loss or retrieval can be computed "
                    "(assign more individuals to split 'val' in the manifest)", len(val_ds))

    def on_device(b: dict, log_bad: bool) -> dict:
        b = _to_device(b, device)
        if decode == "gpu":
            b = render(b, device)
            skipped = b.pop("skipped", [])
            if log_bad and skipped:
                bad_log.record(skipped, 0)  # already counted as seen by the loader
        return b

    def batches(epoch: int, start: int):
        loader.set_epoch(epoch, start)
        for b in loader:
            yield on_device(b, True)

    def validate(m, epoch: int) -> dict:
        vl = make_loader(val_ds, cfg.batch_size, shuffle=False, num_workers=cfg.workers, collate_fn=collate)
        return m.evaluate(b for b in (on_device(b, False) for b in vl) if b.get("n", 1))

    train_cfg = TrainConfig(epochs=cfg.epochs, lr=cfg.lr, weight_decay=cfg.weight_decay,
                            warmup_epochs=cfg.warmup_epochs, accumulate=cfg.accumulate, clip_grad=cfg.clip_grad,
                            precision=cfg.precision, seed=cfg.seed, log_every=cfg.log_every,
                            checkpoint_every=cfg.checkpoint_every)
    trainer = Trainer(method, train_cfg, run, device=device, batches=batches,
                      micro_batches_per_epoch=len(loader), validate=validate,
                      batch_size=lambda b: int(b.get("n", len(b.get("index", [])))),
                      extra_state=meta,
                      min_batch=type(method).min_batch, global_batch=cfg.batch_size * info.world_size,
                      title=f"{cfg.method}, {cfg.arch} ×{cfg.width:g}, {cfg.image_size} px")
    try:
        if cfg.resume:
            trainer.restore(cfg.resume)  # refuses a checkpoint of another model or batch, before any write
        if info.is_main:  # set-up done: only now does the run folder get its first file
            run.mkdir(parents=True, exist_ok=True)
            (run / "config.yaml").write_text(yaml.safe_dump(plain(asdict(cfg)), sort_keys=False))
        D.barrier()
        result = trainer.fit()
        if info.is_main:
            export_weights(method.state_dict(), run / "encoder.safetensors", meta)
            log.info("done: %d steps; weights in %s, curves in %s", result.steps, run / "encoder.safetensors",
                     run / "curves.png")
            for line in comments(result.history):
                log.warning("%s", line)
    finally:
        D.shutdown()
    return result


def _decode_place(cfg: PretrainConfig, device: torch.device) -> str:
    """'gpu' or 'cpu': where decode and augmentation run (--decode)."""
    if cfg.decode not in ("auto", "gpu", "cpu"):
        raise ConfigError(f"--decode {cfg.decode!r} is not supported", fix="use gpu, cpu or auto")
    if cfg.decode == "gpu" and device.type != "cuda":
        raise ConfigError(f"--decode gpu needs a CUDA device, and this run is on {device.type}",
                          fix="use --decode cpu, or --device cuda")
    return "gpu" if cfg.decode == "gpu" or (cfg.decode == "auto" and device.type == "cuda") else "cpu"


# Options that may differ from the run's config.yaml on --resume: where and how verbosely the run
# goes, and its length (the schedule is recomputed; the engine refuses fewer epochs than begun).
# --batch-size may change only where the global batch stays (more processes, each with fewer
# images): the engine compares the global batch and the steps per epoch with the checkpoint's.
FREE_ON_RESUME = ("resume", "init_from", "device", "workers", "decode", "log_every", "checkpoint_every",
                  "max_bad_fraction", "epochs", "batch_size")
_PATHS = ("data", "genotypes", "prs", "burden", "snp_ids")
_MACHINE = ("device", "workers", "decode", "init_from")  # not taken from the run: this machine's defaults


def _run_config_file(cfg: PretrainConfig) -> Path | None:
    """The config.yaml of the run being resumed: OUT's, or that of the checkpoint's own run."""
    if str(cfg.resume) != "auto":
        ck = Path(cfg.resume)
        if ck.parent.name == "checkpoints" and (ck.parent.parent / "config.yaml").is_file():
            return ck.parent.parent / "config.yaml"
    path = Path(cfg.out) / "config.yaml"
    return path if path.is_file() else None


def _same(name: str, a, b) -> bool:
    if name in _PATHS and isinstance(a, str) and isinstance(b, str):
        return os.path.abspath(os.path.expanduser(a)) == os.path.abspath(os.path.expanduser(b))
    return a == b


def resume_settings(cfg: PretrainConfig, given) -> PretrainConfig:
    """--resume: the run's config.yaml fills every option not in ``given`` (but those of the
    machine: --device, --workers, --decode keep their defaults); an option given with another
    value than the run's is refused (ConfigError listing them) unless it is one of
    FREE_ON_RESUME. Without a config.yaml (a fresh --out) ``cfg`` is returned as it is."""
    import yaml

    path = _run_config_file(cfg)
    if path is None:
        return cfg
    try:
        stored = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read the run's configuration ({type(exc).__name__})", path=path,
                          fix="restore the file, or start a new run with another --out") from None
    names = {f.name for f in fields(PretrainConfig)}
    stored = {k: v for k, v in stored.items() if k in names and k not in ("out", "resume")}
    stored.setdefault("fit", LEGACY_FIT)        # a run from before --fit squashed its images
    now = plain(asdict(cfg))
    differ = [k for k, v in stored.items() if k in given and k not in FREE_ON_RESUME and not _same(k, now[k], v)]
    if differ:
        listed = ", ".join(f"--{k.replace('_', '-')} {_show(now[k])} (the run has {_show(stored[k])})" for k in differ)
        raise ConfigError(f"--resume: options differ from the run's: {listed}", path=path,
                          fix="leave them out to use the run's values, or start a new run from its weights with "
                              f"--init-from {Path(path).parent / 'encoder.safetensors'} --out NEW_RUN; only --epochs, "
                              "--batch-size (same global batch), --device, --workers, --decode, --log-every, "
                              "--checkpoint-every and --max-bad-fraction may change on resume")
    return replace(cfg, **{k: tuple(v) if isinstance(v, list) else v for k, v in stored.items()
                           if k not in given and k not in _MACHINE})


def _show(v) -> str:
    return ",".join(map(str, v)) if isinstance(v, (list, tuple)) else str(v)


def _check_numbers(cfg: PretrainConfig) -> None:
    """Refuses settings that would train nothing or train on nonsense (before anything is read)."""
    if cfg.epochs < 1:
        raise ConfigError(f"--epochs {cfg.epochs}: a run needs at least 1 epoch "
                          "(0 would export the random initial weights as pretrained)", fix="use --epochs 1 or more")
    for name, low in (("accumulate", 1), ("log_every", 1), ("checkpoint_every", 0), ("workers", 0)):
        if getattr(cfg, name) < low:
            raise ConfigError(f"--{name.replace('_', '-')} {getattr(cfg, name)} must be at least {low}")
    if not cfg.lr > 0:
        raise ConfigError(f"--lr {cfg.lr} must be positive")
    need = _method_class(cfg.method).min_batch
    if cfg.batch_size < need:
        raise ConfigError(f"--batch-size {cfg.batch_size} is too small for {cfg.method}: it needs at least {need} "
                          "images per process (BatchNorm over the batch, and negatives for the contrastive loss)",
                          fix=f"use --batch-size {need} or more; contrastive methods learn best with 64 or more")


def _check_global_batch(cfg: PretrainConfig, world_size: int) -> None:
    need = _method_class(cfg.method).min_global_batch
    if cfg.batch_size * world_size < need:
        procs = f" × {world_size} processes" if world_size > 1 else ""
        raise ConfigError(f"--batch-size {cfg.batch_size}{procs} is too small for {cfg.method}: a batch needs at least "
                          f"{need} images, or each image has no other to be told apart from and the loss means "
                          "nothing (a loss of 0)",
                          fix=f"use --batch-size {-(-need // world_size)} or more; contrastive methods learn best "
                              "with 64 or more")


def _method_class(name: str):
    from medcl.methods.contig import ContigMethod
    from medcl.methods.puzzle import PuzzleMethod
    from medcl.methods.simclr import SimCLRMethod
    from medcl.methods.swav import SwAVMethod
    return {"contig": ContigMethod, "simclr": SimCLRMethod, "swav": SwAVMethod, "puzzle": PuzzleMethod}[name]


def _check_run_folder(run: Path, cfg: PretrainConfig) -> None:
    if cfg.resume or not run.exists():
        return
    if any(run.iterdir()):
        raise ConfigError(f"run folder {run} already exists and is not empty",
                          fix="use --resume auto to continue it, or another --out")


def _to_device(batch: dict, device: torch.device) -> dict:
    out = {}
    for k, v in batch.items():
        if isinstance(v, torch.Tensor):
            out[k] = v.to(device, non_blocking=True)
        elif isinstance(v, dict):
            out[k] = {kk: vv.to(device, non_blocking=True) if isinstance(vv, torch.Tensor) else vv
                      for kk, vv in v.items()}
        else:
            out[k] = v
    return out
