"""Method configs to and from plain dicts (the JSON saved with checkpoints and exported weights).

A method's config is a dataclass that also derives from :class:`DictConfig`, which gives it
``to_dict()`` and ``from_dict(d)``.
"""
from __future__ import annotations

import dataclasses
import typing


def plain(v):
    """Dicts, lists and tuples nested in ``v`` as dicts and lists (YAML/JSON-ready)."""
    if isinstance(v, dict):
        return {k: plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [plain(x) for x in v]
    return v


def config_to_dict(cfg) -> dict:
    """A dataclass config (nested dataclasses allowed) → JSON-serialisable dict (tuples as lists)."""
    return plain(dataclasses.asdict(cfg))


def config_from_dict(cls, d: dict):
    """The inverse of :func:`config_to_dict`: nested dataclass fields rebuilt, lists of tuple
    fields turned back into tuples; keys the class does not know are ignored (older files)."""
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name not in d:
            continue
        v, t = d[f.name], hints.get(f.name)
        if dataclasses.is_dataclass(t) and isinstance(v, dict):
            v = config_from_dict(t, v)
        elif isinstance(v, list) and (t is tuple or typing.get_origin(t) is tuple
                                      or tuple in typing.get_args(t)):
            v = tuple(v)
        kwargs[f.name] = v
    return cls(**kwargs)


class DictConfig:
    """Mixin for dataclass configs: ``to_dict()`` / ``cls.from_dict(d)`` (see the functions above)."""

    def to_dict(self) -> dict:
        return config_to_dict(self)

    @classmethod
    def from_dict(cls, d: dict):
        return config_from_dict(cls, d)
