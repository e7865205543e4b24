"""The pretraining methods ``medcl pretrain --method`` knows: one :class:`MethodSpec` each.

A method is two files and one line here: ``medcl/methods/<name>.py`` (the ``nn.Module``: see
``medcl.methods.base.Method``) and ``medcl/pretrain/<name>.py`` (its option sections and the
builder that makes the module and its train/val datasets), then ``register_method(<name>.SPEC)``
below. The command line's options, their help groups, the checks that refuse another method's
options, config.yaml and resume all follow from the spec.
"""
from __future__ import annotations

from medcl.pretrain import contig, puzzle, views
from medcl.pretrain.spec import Built, MethodSpec
from medcl.registry import Registry

__all__ = ["METHODS", "Built", "MethodSpec", "method_spec", "register_method"]

METHODS: Registry[MethodSpec] = Registry("method")


def register_method(spec: MethodSpec) -> MethodSpec:
    """Adds ``spec`` (a name already taken is an error: two methods cannot share a name)."""
    return METHODS.add(spec.name, spec)


def method_spec(name: str) -> MethodSpec:
    """The method registered as ``name`` (ConfigError naming the others when there is none)."""
    return METHODS.lookup(name)


# the built-in methods
register_method(contig.SPEC)
register_method(views.SIMCLR)
register_method(views.SWAV)
register_method(puzzle.SPEC)
