"""``medcl finetune``: label-efficiency evaluation of pretrained weights against random init and raw pixels.

The command is built when asked for (``make_command``), so ``--task`` offers the tasks registered
then (medcl.downstream.tasks)."""
from __future__ import annotations

import click

from medcl.cli.options import GroupedCommand, common_options, fit_option, options_from

GROUPS = (("Task", ("labels", "target", "task", "mode", "fractions", "repeats", "baseline")),
          ("Data and output", ("data", "out", "overwrite")),
          ("Training (full mode; batches in both)", ("batch_size", "epochs", "lr", "workers", "seed")))


def make_command() -> click.Command:
    """The command: its options from :class:`medcl.downstream.config.FinetuneConfig`'s fields,
    --task offering the tasks registered now."""
    from medcl.config import leaves
    from medcl.downstream.config import FinetuneConfig

    settings = {leaf.name: leaf for leaf in leaves(FinetuneConfig)}
    grouped = {name for _, names in GROUPS for name in names}
    if grouped != set(settings):
        raise RuntimeError(f"finetune settings and --help groups differ: {sorted(set(settings) ^ grouped)}")

    def command(**given) -> None:
        """Train on the train split, select on val, report on test; mean ± sd over repeats for each
        label fraction, beside random init, raw pixels and a constant predictor. Writes
        OUT/metrics.json and OUT/label_efficiency.png, prints the table and whether pretraining helped."""
        run(FinetuneConfig(**{k: v for k, v in given.items() if v is not None}))

    for group, names in reversed(GROUPS):
        command = options_from([settings[n] for n in names], group)(command)
    command = click.argument("weights", type=click.Path(dir_okay=False))(fit_option(inherit=True)(
        common_options(command)))
    return click.command("finetune", cls=GroupedCommand)(command)


def run(cfg) -> None:
    """Runs the evaluation and prints the table, the verdict and where the picture is."""
    from medcl.downstream.report import format_table
    from medcl.downstream.run import run_finetune

    report = run_finetune(cfg)
    click.echo(format_table(report))
    for line in report["verdict"]:
        click.echo(line)
    click.echo(f"picture: {report['picture']}")
