"""The ``medcl`` command line (installed as ``medcl.cli``; console script ``medcl``).

One module per subcommand, imported only when that subcommand runs, so ``medcl --help``
stays fast. Exit codes: 0 done; 2 bad usage or bad input (one clear line, no traceback);
1 internal error.
"""
from __future__ import annotations

import importlib
import logging
import os
import sys

import click

# name -> (module under medcl.cli, one-line help). Commands appear here once they work.
COMMANDS = {
    "info": ("info", "Versions, build, which backend each op uses, GPUs seen."),
    "demo-data": ("demo_data", "Write the synthetic demo cohort (DICOMs, PLINK, tables) to OUT."),
    "manifest": ("manifest", "Write an editable manifest (hashed patient IDs, frames, splits) for a DICOM folder."),
    "prepare": ("prepare", "Pack DICOM pixels into shards (resumable, parallel) for fast loading."),
    "pretrain": ("pretrain", "Self-supervised pretraining: ContIG (images with genetics), SimCLR, SwAV, puzzles."),
    "preview": ("preview", "Write a PNG grid of augmented views, to check the augmentation before a run."),
    "embed": ("embed", "Image embeddings and GWAS phenotype tables from pretrained weights."),
    "finetune": ("finetune", "Label-efficiency curves of pretrained weights against random init and raw pixels."),
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use."""

    def list_commands(self, ctx):
        return list(COMMANDS)

    def get_command(self, ctx, name):
        if name not in COMMANDS:
            return None
        module = importlib.import_module(f"{__name__}.{COMMANDS[name][0]}")
        make = getattr(module, "make_command", None)  # built now: its options follow a registry
        return make() if make else module.command

    def format_commands(self, ctx, formatter):
        rows = [(name, help_) for name, (_, help_) in COMMANDS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


class _Formatter(logging.Formatter):
    def format(self, record):
        msg = record.getMessage()
        if record.levelno >= logging.ERROR:
            return f"medcl: error: {msg}"
        if record.levelno >= logging.WARNING:
            return f"medcl: warning: {msg}"
        return f"medcl: {msg}"


def _setup_logging(verbosity: int) -> None:
    level = {-1: logging.WARNING, 0: logging.INFO}.get(verbosity, logging.DEBUG)
    logger = logging.getLogger("medcl")
    logger.handlers.clear()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter())
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False


_verbosity = 0  # set by the group's callback; -vv shows tracebacks of internal errors


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"],
                                              "auto_envvar_prefix": "MEDCL"})
@click.version_option(version=None, package_name="medcl", prog_name="medcl",
                      message="%(prog)s %(version)s")
@click.option("-v", "--verbose", "verbose", count=True, help="More output (-vv: debug, tracebacks).")
@click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors.")
@click.pass_context
def app(ctx: click.Context, verbose: int, quiet: bool) -> None:
    """medcl: self-supervised pretraining on medical images, alone or paired with genetics.

    Every command takes --config FILE.yaml and --device. Values come from, in order: the
    command line, MEDCL_* environment variables (MEDCL_<COMMAND>_<OPTION>, e.g.
    MEDCL_DEMO_DATA_SEED; --device also as MEDCL_DEVICE), the YAML file, the defaults.
    """
    global _verbosity
    _verbosity = -1 if quiet else verbose
    ctx.obj = {"verbosity": _verbosity}
    _setup_logging(_verbosity)
    if os.environ.get("RANK", "0") == "0":  # once, not from every process of a DDP run
        from medcl.cli.options import warn_unknown_env
        warn_unknown_env(ctx)


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point; returns (and exits with) the exit code."""
    from medcl.errors import MedclError

    try:
        rv = app.main(args=argv, prog_name="medcl", standalone_mode=False)
        code = rv if isinstance(rv, int) else 0
    except click.exceptions.Exit as exc:
        code = exc.exit_code
    except click.ClickException as exc:       # bad usage: click's own message, exit 2
        exc.show()
        code = 2 if exc.exit_code == 1 else exc.exit_code
    except click.exceptions.Abort:
        click.echo("medcl: aborted", err=True)
        code = 130
    except MedclError as exc:                 # bad input: one line naming the file and the fix
        click.echo(f"medcl: error: {exc}", err=True)
        code = 2
    except KeyboardInterrupt:
        click.echo("medcl: interrupted", err=True)
        code = 130
    except Exception as exc:  # noqa: BLE001
        if isinstance(getattr(exc, "exit_code", None), int):  # carries its own code (preemption: 143)
            click.echo(f"medcl: {exc}", err=True)
            return _finish(exc.exit_code, argv)
        if _verbosity >= 2:  # internal error: short message, traceback with -vv
            import traceback
            traceback.print_exc()
        click.echo(f"medcl: internal error: {type(exc).__name__}: {exc} (run with -vv for the traceback)",
                   err=True)
        code = 1
    return _finish(code, argv)


def _finish(code: int, argv) -> int:
    if argv is None:
        sys.exit(code)
    return code
