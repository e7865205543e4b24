"""What a pretraining method gives the registry (``MethodSpec``) and what its builder returns
(``Built``). A method's file imports this, never the registry (which imports the methods)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable


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
