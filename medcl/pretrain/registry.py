"""The pretraining methods ``medcl pretrain --method`` knows: one :class:`MethodSpec` each.

A method is two files and one line here: ``medcl/methods/<name>.py`` (the ``nn.Module``: see
``medcl.methods.base.Method``) and ``medcl/pretrain/<name>.py`` (its option sections and the
builder that makes the module and its train/val datasets), then ``register_method(<name>.SPEC)``
below. The command line's options, their help groups, the checks that refuse another method's
options, config.yaml and resume all follow from the spec.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from medcl.errors import ConfigError


@dataclass(frozen=True)
class Built:
    """What a builder returns: the method module, the train and val datasets (yielding recipes)
    and the metadata saved with the weights (``config``: the module's config as a dict)."""

    method: object
    train: object
    val: object
    meta: dict


@dataclass(frozen=True)
class MethodSpec:
    """``name``: the --method value. ``module``: the nn.Module class (its ``min_batch`` and
    ``min_global_batch`` are checked before a run starts). ``sections``: the method's option
    sections, {name: dataclass}, their settings made with ``medcl.config.option``; a setting
    several methods share is one field of a shared dataclass (``ProjectionConfig``). ``build``:
    ``build(cfg, info, source) → Built``. ``check``: ``check(cfg) → cfg`` for rules between
    settings (None: none). ``help``: one line for --help."""

    name: str
    module: type
    sections: dict
    build: Callable
    help: str
    check: Callable | None = None


METHODS: dict[str, MethodSpec] = {}


def register_method(spec: MethodSpec) -> MethodSpec:
    """Adds ``spec`` (a name already taken is an error: two methods cannot share a name)."""
    if spec.name in METHODS and METHODS[spec.name] is not spec:
        raise ValueError(f"a pretraining method named {spec.name!r} is already registered")
    METHODS[spec.name] = spec
    return spec


def method_spec(name: str) -> MethodSpec:
    try:
        return METHODS[name]
    except KeyError:
        raise ConfigError(f"unknown method {name!r}", fix=f"available: {', '.join(METHODS)}") from None


from medcl.pretrain import contig, puzzle, views  # noqa: E402  (each imports nothing from here)

register_method(contig.SPEC)
register_method(views.SIMCLR)
register_method(views.SWAV)
register_method(puzzle.SPEC)
