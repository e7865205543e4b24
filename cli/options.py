"""Options shared by every subcommand: --config FILE.yaml and --device.

--config is eager: its YAML becomes the command's default map before the other options are
read, so the precedence is command line > MEDCL_* environment > YAML > defaults (Click's own
order). The YAML holds option names as keys (dashes or underscores), either at top level or
under the command's name, e.g. ``demo-data: {n: 500, seed: 3}``; a list value is taken as the
command line writes it (``crop_scale: [0.5, 1]`` → ``--crop-scale 0.5,1``).
"""
from __future__ import annotations

import functools
from pathlib import Path

import click

from medcl.errors import ConfigError


def _load_config(ctx: click.Context, param: click.Parameter, value: str | None):
    if not value:
        return value
    import yaml

    path = Path(value)
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read the config file ({exc.strerror})", path=path,
                          fix="check the --config path") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"not valid YAML{where}", path=path, fix="fix the YAML syntax") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError("must be a mapping of option names to values", path=path,
                          fix="write e.g. 'seed: 3' or 'demo-data: {seed: 3}'")
    name = ctx.info_name or ""
    section = data.get(name, data.get(name.replace("-", "_"), data))
    if not isinstance(section, dict):
        raise ConfigError(f"the '{name}' section must be a mapping", path=path)
    nested = getattr(ctx.command, "options_of_mapping", None)  # e.g. a run's nested config.yaml
    if nested is not None:
        section = nested(section)
    known = {p.name for p in ctx.command.params if p.name}
    from medcl.cli import COMMANDS
    other_commands = set(COMMANDS) | {c.replace("-", "_") for c in COMMANDS}
    defaults = {}
    for key, v in section.items():
        k = str(key).replace("-", "_")
        if section is data and str(key) in other_commands:
            continue  # another command's section
        if k not in known or k == "config":
            raise ConfigError(f"unknown option '{key}' for 'medcl {name}'", path=path,
                              fix=f"valid keys: {', '.join(sorted(known - {'config'}))}")
        defaults[k] = ",".join(map(str, v)) if isinstance(v, (list, tuple)) else v  # a YAML list: as A,B
    ctx.default_map = {**(ctx.default_map or {}), **defaults}
    return value


def common_options(func):
    """Adds --config and --device to a command."""

    @click.option("--config", type=click.Path(dir_okay=False), callback=_load_config, is_eager=True,
                  expose_value=False, envvar="MEDCL_CONFIG",
                  help="YAML file of option values (CLI and MEDCL_* env override it).")
    @click.option("--device", default="auto", show_default=True, envvar="MEDCL_DEVICE",
                  help="cpu, cuda, cuda:N, or auto (cuda when a GPU is visible).")
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        return func(*args, **kwargs)

    return wrapper


def _split_pair(value) -> tuple:
    if isinstance(value, (tuple, list)):
        return tuple(value)
    try:
        lo, hi = (float(v) for v in str(value).split(","))
    except ValueError:
        raise ValueError("expected two numbers, LOW,HIGH (e.g. 0.5,1)") from None
    return (lo, hi)


def _split_csv(value) -> tuple | None:
    if isinstance(value, tuple):
        return value
    return tuple(v.strip() for v in str(value).split(",") if v.strip()) or None


PARSERS = {"pair": _split_pair, "csv": _split_csv}  # option(parse=...) by name; a function is its own parser


def _parsed_by(parse):
    """A click callback through a config field's parser (its errors as usage errors)."""
    def callback(ctx, param, value):
        if value is None:
            return None
        try:
            return parse(value)
        except (ValueError, ConfigError) as exc:
            raise click.BadParameter(str(exc)) from None

    return callback


def _shown(value) -> str:
    return ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value) if isinstance(value, tuple) else value


def _click_type(leaf):
    import types
    import typing

    if leaf.choices:
        return click.Choice(leaf.choices)
    t = leaf.type
    if isinstance(t, types.UnionType) or typing.get_origin(t) is typing.Union:
        t = next(a for a in typing.get_args(t) if a is not type(None))
    if t is int and (leaf.meta.get("low") is not None or leaf.meta.get("high") is not None):
        return click.IntRange(leaf.meta.get("low"), leaf.meta.get("high"))
    return t if t in (int, float, str) else None


class GroupedOption(click.Option):
    """An option with the --help section it is listed under (GroupedCommand)."""

    def __init__(self, *args, help_group: str | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.help_group = help_group


def option_of(leaf, group: str):
    """The click option decorator of a config setting (medcl.config.option): flag, type, default
    and help come from the field; ``group`` is the --help section it is listed under."""
    from dataclasses import MISSING

    flag = "--" + leaf.name.replace("_", "-")
    default, meta = leaf.default, leaf.meta
    if default is MISSING:  # no default: the option must be given
        default = None
        kw = dict(required=True, help=meta.get("help") or None)
    else:
        kw = dict(default=default, help=meta.get("help") or None, show_default=default is not None)
    if default is False:  # off unless given
        decls = [flag]
        kw.update(is_flag=True, show_default=False)
    elif isinstance(default, bool):
        decls = [f"{flag}/--no-{flag[2:]}"]
    else:
        decls = [flag]
        parse = meta.get("parse")
        if parse:  # unset (None) on the command line: the config keeps its default
            kw.update(default=None, callback=_parsed_by(PARSERS.get(parse, parse)), type=str,
                      metavar="LOW,HIGH" if parse == "pair" else "A,B,...",
                      show_default=_shown(default) if default is not None else False)
        else:
            kw["type"] = _click_type(leaf)
    if meta.get("shown"):
        kw["show_default"] = meta["shown"]
    return click.option(*decls, cls=GroupedOption, help_group=group, **kw)


def options_from(leaves, group: str, skip=()):
    """A decorator adding the options of these settings, in their order, under one --help section."""
    made = [option_of(leaf, group) for leaf in leaves if leaf.name not in skip]

    def decorate(func):
        for option in reversed(made):
            func = option(func)
        return func

    return decorate


class GroupedCommand(click.Command):
    """A command whose --help lists its options in sections (an option's ``help_group``;
    options without one under "Other options"). ``options_of_mapping``, when set, turns a
    --config mapping with sections into option names (a run's config.yaml)."""

    options_of_mapping = None

    def format_options(self, ctx, formatter):
        groups: dict[str, list] = {}
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx) if isinstance(param, click.Option) else None
            if record:
                groups.setdefault(getattr(param, "help_group", None) or "Other options", []).append(record)
        for name, rows in sorted(groups.items(), key=lambda kv: kv[0] == "Other options"):
            with formatter.section(name):
                formatter.write_dl(rows)


def augment_options(func):
    """The augmentation settings (medcl.data.augment.AugmentConfig) but its on/off switch."""
    from medcl.config import leaves
    from medcl.data.augment import AugmentConfig

    return options_from(leaves(AugmentConfig), "Augmentation", skip=("augment",))(func)


FITS = ("pad", "crop", "squash")  # medcl.data.fit.FITS (written here too: --help loads no torch)


def fit_option(inherit: bool = False):
    """--fit: how a non-square image fills the square input (medcl.data.fit). ``inherit`` (embed,
    finetune): unset means the pretraining run's value, found with the weights."""
    default = "the pretraining run's --fit (weights' metadata or RUN/config.yaml), else pad" if inherit else "pad"
    return click.option("--fit", type=click.Choice(FITS), default=None if inherit else FITS[0],
                        help="Non-square images: pad (letterbox: whole image, aspect kept, black bands), crop "
                        "(centre square, aspect kept, ends cut) or squash (stretch, aspect lost) "
                        f"[default: {default}].")


def resolve_device(spec: str):
    """--device value → torch.device; a device that is not there is a usage error (exit 2)."""
    from medcl.device import resolve_device as resolve

    try:
        return resolve(spec)
    except ConfigError as exc:
        raise click.BadParameter(str(exc), param_hint="--device") from None


# MEDCL_* variables medcl reads that are not command options: the demo cohort's cache, the op
# backend, the build's CUDA switch, the key of hashed patient IDs. Add a name here when code
# starts reading one, or users who set it get a warning.
NON_OPTION_ENV = ("MEDCL_CACHE_DIR", "MEDCL_BACKEND", "MEDCL_CUDA", "MEDCL_ID_KEY")


def option_env_names(ctx: click.Context) -> set[str]:
    """Every environment variable Click reads for an option of the group or of any command
    (an option's own envvar, else MEDCL_<COMMAND>_<OPTION> from auto_envvar_prefix)."""
    group = ctx.command
    names: set[str] = set()

    def add(params, prefix: str) -> None:
        for p in params:
            if not isinstance(p, click.Option) or not p.name:
                continue
            if p.envvar:
                names.update([p.envvar] if isinstance(p.envvar, str) else p.envvar)
            elif p.allow_from_autoenv:
                names.add(f"{prefix}_{p.name.upper()}")

    add(group.params, "MEDCL")
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        if command is not None:
            add(command.params, f"MEDCL_{name.upper().replace('-', '_')}")
    return names


def warn_unknown_env(ctx: click.Context, environ=None) -> list[str]:
    """One warning per MEDCL_* variable that nothing reads (a misspelt option, most likely),
    naming the closest valid name. Returns the unknown names."""
    import difflib
    import logging
    import os

    environ = os.environ if environ is None else environ
    candidates = sorted(k for k in environ if k.startswith("MEDCL_") and k not in NON_OPTION_ENV)
    if not candidates:
        return []
    valid = option_env_names(ctx) | set(NON_OPTION_ENV)
    unknown = [k for k in candidates if k not in valid]
    log = logging.getLogger("medcl")
    for name in unknown:
        close = difflib.get_close_matches(name, sorted(valid), n=1, cutoff=0.8)
        hint = f"; did you mean {close[0]}?" if close else " (options are MEDCL_<COMMAND>_<OPTION>, e.g. MEDCL_PRETRAIN_EPOCHS)"
        log.warning("environment variable %s is not a medcl setting and is ignored%s", name, hint)
    return unknown
