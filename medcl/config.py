"""Configs: dataclasses whose fields carry their default and help text once.

A field declared with :func:`option` is a setting a user can give: its default, help text,
choices and parsing live on the field, and the command line (``medcl.cli.options``) generates
its click option from there, so nothing is restated. :func:`leaves` walks a nested config
(sections are dataclass-typed fields) down to those settings and names each by its option name
(``--head-hidden`` → ``head_hidden``), the name used on the command line, in ``MEDCL_*``
variables, in ``--config`` YAML files and in the flat ``config.yaml`` of runs before nesting.

A config that derives from :class:`DictConfig` goes to and from plain dicts (the JSON saved with
checkpoints and exported weights, the YAML of run folders): ``to_dict()`` and ``from_dict(d)``.
This module imports neither torch nor click.
"""
from __future__ import annotations

import dataclasses
import typing
from dataclasses import MISSING


def option(default=MISSING, help: str = "", *, flag: str | None = None, choices: tuple | None = None,
           parse: str | None = None, low=None, high=None, shown: str | None = None, cli: bool = True,
           strict: bool = False, default_factory=MISSING):
    """A dataclass field that is a user setting.

    ``help``: one sentence for --help. ``flag``: the option name when it differs from the field's
    (``sk_iters`` for SwAV's ``sinkhorn_iters``). ``choices``: the allowed values, or a function
    returning them (a registry's names, read when the command line is built). ``parse``:
    ``"csv"`` (comma-separated → tuple), ``"pair"`` (``LOW,HIGH`` → two floats), or a function
    taking the text (or a YAML list) and returning the value, raising ValueError (or
    ``medcl.errors.ConfigError``) on bad input. No ``default``: a required option. ``low``/``high``:
    bounds of an int. ``shown``: the default as --help writes it, when the value would mislead
    (``None`` standing for "derived"). ``cli=False``: a field the command line does not set.
    ``strict``: a setting of one method (section) that, given to a run of another method, is an
    error rather than a warning (it would change what the run reads or compares: --pairs).
    """
    if choices is not None and not callable(choices):
        choices = tuple(choices)
    meta = {"help": help, "flag": flag, "choices": choices, "parse": parse,
            "low": low, "high": high, "shown": shown, "cli": cli, "strict": strict, "option": True}
    return dataclasses.field(default=default, default_factory=default_factory, metadata=meta)


@dataclasses.dataclass(frozen=True)
class Leaf:
    """One user setting of a nested config: ``name`` (the option name), ``path`` (attribute names
    from the root config to the field), the dataclass ``field`` and its resolved ``type``."""

    name: str
    path: tuple
    field: dataclasses.Field
    type: object

    @property
    def meta(self) -> dict:
        return self.field.metadata

    @property
    def default(self):
        f = self.field
        return f.default_factory() if f.default is MISSING and f.default_factory is not MISSING else f.default

    def signature(self) -> tuple:
        """What makes two leaves of one name the same setting (sections of several methods may
        share one: SimCLR's and SwAV's --pairs)."""
        m = self.meta
        return (self.name, repr(self.default), m.get("help"), self.choices, m.get("parse"))

    @property
    def choices(self) -> tuple | None:
        c = self.meta.get("choices")
        return tuple(c()) if callable(c) else c


def leaves(cls, path: tuple = ()) -> list[Leaf]:
    """The settings (fields made with :func:`option`, ``cli`` true) of dataclass ``cls`` and of
    its dataclass-typed fields, in declaration order. A section field's own ``flag`` metadata, if
    any, prefixes its settings' names (``genetics`` + ``hidden`` → ``genetics_hidden``)."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        t = hints.get(f.name)
        if not f.metadata.get("cli", True):
            continue
        if dataclasses.is_dataclass(t):
            prefix = f.metadata.get("flag")
            for leaf in leaves(t, (*path, f.name)):
                out.append(dataclasses.replace(leaf, name=f"{prefix}_{leaf.name}") if prefix else leaf)
        elif f.metadata.get("option"):
            out.append(Leaf((f.metadata.get("flag") or f.name).replace("-", "_"), (*path, f.name), f, t))
    return out


def get_path(cfg, path: tuple):
    for name in path:
        cfg = getattr(cfg, name)
    return cfg


def set_paths(cfg, values: dict[tuple, object]):
    """A copy of dataclass ``cfg`` with the fields at ``values``' paths replaced (nested sections
    copied, never changed in place)."""
    here = {p[0]: v for p, v in values.items() if len(p) == 1}
    below: dict[str, dict] = {}
    for p, v in values.items():
        if len(p) > 1:
            below.setdefault(p[0], {})[p[1:]] = v
    for name, sub in below.items():
        here[name] = set_paths(getattr(cfg, name), sub)
    return dataclasses.replace(cfg, **here) if here else cfg


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


def flat_settings(d: dict) -> dict:
    """A run's config.yaml as one mapping: the settings of its sections merged into the top level
    (a config.yaml from before nesting is flat already). For readers that want a few names
    (fit, arch, width, image_size); ``medcl.pretrain.PretrainConfig.from_dict`` reads it whole."""
    out = {}
    for key, value in (d or {}).items():
        if isinstance(value, dict):
            for k, v in value.items():
                if not isinstance(v, dict):
                    out.setdefault(k, v)
        else:
            out[key] = value
    return out
