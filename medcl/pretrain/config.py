"""The configuration of a pretraining run, nested by concern.

    method    the --method (medcl.pretrain.registry)
    data      what is read and how it becomes the input (--data, --image-size, --fit, --batch-size, ...)
    encoder   the image encoder (medcl.models.ImageEncoderConfig: --arch, --width)
    augment   the augmentation (medcl.data.augment.AugmentConfig: --augment, --crop-scale, ...)
    train     the optimisation (medcl.train.TrainConfig: --epochs, --lr, --seed, ...)
    run       where the run lives (--out, --resume, --init-from, --device)
    sections  the method's own sections, e.g. contig: {contig: ContigConfig, genetic_data: GeneticData}

Every setting is a field made with ``medcl.config.option`` (default and help written there once)
and has one option name (``--head-hidden`` → ``head_hidden``): ``PretrainConfig.from_options``
builds a config from option names (the command line, ``--config`` YAML, a flat config.yaml of
runs before nesting), ``flat()`` gives them back, and ``cfg.width`` reads one. The weights'
``pretrain`` metadata hold ``to_dict()``: the sections as nested mappings, the method's under
their own names. A run's config.yaml holds ``to_yaml()``: the same settings by option name
(what ``--config`` and the flags take, and what readers of config.yaml before nesting find at its
top level), grouped under a comment per section; ``from_dict`` reads either form.
"""
from __future__ import annotations

import dataclasses
import logging
import typing
from dataclasses import dataclass, field

from medcl.config import DictConfig, Leaf, config_from_dict, get_path, leaves, option, plain, set_paths
from medcl.data.augment import AugmentConfig, augment_config
from medcl.data.fit import DEFAULT_FIT, FITS
from medcl.errors import ConfigError
from medcl.models import ImageEncoderConfig
from medcl.pretrain.registry import METHODS, method_spec
from medcl.train.engine import TrainConfig

COMMON = ("data", "encoder", "augment", "train", "run")

log = logging.getLogger("medcl")


@dataclass
class DataConfig(DictConfig):
    path: str | None = option(None, "Manifest (FID,IID,path[,view,split]) or a dataset written by `medcl prepare`; "
                              "default: the demo cohort, generated on first use.", flag="data")
    image_size: int = option(224, "Input size in pixels.")
    fit: str = option(DEFAULT_FIT, "Non-square images: pad (letterbox: whole image, aspect kept, black bands), crop "
                      "(centre square, aspect kept, ends cut) or squash (stretch, aspect lost).", choices=FITS)
    batch_size: int = option(64, "Images per process per micro-batch (contig: 2 or more; simclr, swav: 2 or more "
                             "in all).")
    workers: int = option(2, "DataLoader workers per process.")
    decode: str = option("auto", "Where DICOM decode and augmentation run: gpu (workers only read bytes; the default "
                         "on a CUDA device) or cpu (medcl's C++ kernels in the DataLoader workers).",
                         choices=("auto", "gpu", "cpu"))
    max_bad_fraction: float = option(0.01, "Stop when more than this fraction of samples cannot be read.")


@dataclass
class RunConfig(DictConfig):
    out: str = option("runs/contig", "Run folder (config.yaml, metrics.csv, checkpoints/, encoder.safetensors).")
    resume: str | None = option(None, "auto (newest checkpoint in OUT) or a checkpoint path; options not given are "
                                "the run's (config.yaml).")
    init_from: str | None = option(None, "Start a new run from these weights.")
    device: str = option("auto", "cpu, cuda, cuda:N, or auto (cuda when a GPU is visible).")


@dataclass
class PretrainConfig:
    method: str = option("contig", "Pretraining method.", choices=lambda: tuple(METHODS))
    data: DataConfig = field(default_factory=DataConfig)
    encoder: ImageEncoderConfig = field(default_factory=ImageEncoderConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    run: RunConfig = field(default_factory=RunConfig)
    sections: dict = field(default_factory=dict)  # the method's sections {name: dataclass}; missing: defaults

    def __post_init__(self):
        if self.method in METHODS:
            spec = METHODS[self.method]
            self.sections = {name: self.sections.get(name) or cls() for name, cls in spec.sections.items()}

    # -- settings by option name ------------------------------------------------------------
    def leaves(self) -> list[Leaf]:
        """This config's settings: the common sections' and its method's."""
        return common_leaves() + method_leaves(self.method)

    def flat(self) -> dict:
        """{option name: value} of every setting."""
        return {leaf.name: self._get(leaf) for leaf in self.leaves()}

    def _get(self, leaf: Leaf):
        if leaf.path[0] in self.sections:
            return get_path(self.sections[leaf.path[0]], leaf.path[1:])
        return get_path(self, leaf.path)

    def __getattr__(self, name: str):
        # cfg.width, cfg.fit, ...: a setting by option name (only reached for names that are not fields)
        if name.startswith("_") or name in ("method", "sections"):
            raise AttributeError(name)
        for leaf in self.leaves():
            if leaf.name == name:
                return self._get(leaf)
        raise AttributeError(f"PretrainConfig has no setting {name!r}")

    def with_options(self, **values) -> "PretrainConfig":
        """A copy with settings replaced by option name (lists become tuples); a new --method
        gets its sections' defaults. Names of no setting of this method are ignored."""
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
        cfg = self
        if "method" in values and values["method"] != self.method:
            cfg = dataclasses.replace(self, method=values["method"], sections={})
        by_name = {leaf.name: leaf for leaf in cfg.leaves()}
        common, own = {}, {}
        for name, v in values.items():
            leaf = by_name.get(name)
            if leaf is None or name == "method" or (v is None and leaf.default is not None):
                continue  # no setting of this method, or None for "unset" (flat config.yaml of old runs)
            (own if leaf.path[0] in cfg.sections else common)[leaf.path] = v
        sections = dict(cfg.sections)
        for name in {p[0] for p in own}:
            sections[name] = set_paths(sections[name], {p[1:]: v for p, v in own.items() if p[0] == name})
        return dataclasses.replace(set_paths(cfg, common), sections=sections)

    @classmethod
    def from_options(cls, **values) -> "PretrainConfig":
        """A config from option names (the command line's keywords); unknown names are ignored."""
        method = values.get("method") or cls.method
        return cls(method=method).with_options(**values)

    # -- to and from config.yaml ------------------------------------------------------------
    def to_dict(self) -> dict:
        out = {"method": self.method}
        out.update({name: plain(dataclasses.asdict(getattr(self, name))) for name in COMMON})
        for name, sec in self.sections.items():  # less what the builder fills in (image: the encoder section)
            out[name] = plain({f.name: dataclasses.asdict(sec)[f.name] for f in dataclasses.fields(sec)
                               if f.metadata.get("cli", True)})
        return out

    def to_yaml(self) -> str:
        """config.yaml: every setting by option name, grouped by section (a ``# section`` comment
        above each group)."""
        import yaml

        groups: dict[str, dict] = {}
        for leaf in self.leaves():
            groups.setdefault(leaf.path[0], {})[leaf.name] = plain(self._get(leaf))
        return "".join(f"# {name}\n" + yaml.safe_dump(values, sort_keys=False) for name, values in groups.items())

    @classmethod
    def from_dict(cls, d: dict) -> "PretrainConfig":
        """From ``to_dict()``'s mapping, or from a flat one of option names (config.yaml of runs
        before nesting). Keys that are no setting are ignored (files of other versions)."""
        if not any(isinstance(d.get(name), dict) for name in COMMON):
            return cls.from_options(**d)
        method = d.get("method", cls.method)
        spec = method_spec(method)
        types = typing.get_type_hints(cls)
        common = {name: config_from_dict(types[name], d[name]) for name in COMMON if isinstance(d.get(name), dict)}
        sections = {name: config_from_dict(sc, d[name]) for name, sc in spec.sections.items()
                    if isinstance(d.get(name), dict)}
        return cls(method=method, sections=sections, **common)


def common_leaves() -> list[Leaf]:
    return leaves(PretrainConfig)


def method_leaves(method: str) -> list[Leaf]:
    """The settings of a method's own sections (paths start with the section's name)."""
    if method not in METHODS:
        return []
    out = []
    for name, cls in METHODS[method].sections.items():
        out += leaves(cls, (name,))
    return out


def methods_of(name: str) -> tuple:
    """The methods that have a setting of this option name."""
    return tuple(m for m in METHODS if any(leaf.name == name for leaf in method_leaves(m)))


def check_config(cfg: PretrainConfig, given=None) -> PretrainConfig:
    """The method known, options of other methods (``given``: the option names the user set)
    refused where ``strict`` (they would change what is read or compared), else named in one
    warning; the augmentation's ranges and the method's own rules checked. Returns the config
    with the augmentation validated."""
    spec = method_spec(cfg.method)
    own = {leaf.name for leaf in cfg.leaves()}
    foreign = sorted(name for name in (given or ()) if name not in own and methods_of(name))
    for name in foreign:
        users = methods_of(name)
        if any(leaf.meta.get("strict") for m in users for leaf in method_leaves(m) if leaf.name == name):
            raise ConfigError(f"--{name.replace('_', '-')} applies to {' and '.join(users)} only, not {cfg.method}",
                              fix=f"leave --{name.replace('_', '-')} out, or use --method {' or '.join(users)}")
    if foreign:
        log.warning("%s: option%s of other methods, ignored by %s", ", ".join(f"--{n.replace('_', '-')}" for n in foreign),
                    "s" if len(foreign) > 1 else "", cfg.method)
    aug = cfg.augment
    checked = augment_config(aug.enabled, **{k: v for k, v in dataclasses.asdict(aug).items() if k != "enabled"})
    cfg = dataclasses.replace(cfg, augment=checked)
    return spec.check(cfg) if spec.check else cfg
