"""``medcl finetune``: label-efficiency evaluation of pretrained weights against random init and raw pixels.

The command is built when asked for (``make_command``), so ``--task`` offers the tasks registered
then (medcl.downstream.tasks)."""
from __future__ import annotations

import click

from medcl.cli.options import common_options, fit_option


def _fractions(ctx, param, value):
    if isinstance(value, (tuple, list)):
        return tuple(float(v) for v in value)
    try:
        return tuple(float(v) for v in str(value).split(",") if v.strip())
    except ValueError:
        raise click.BadParameter("use comma-separated numbers, e.g. 0.01,0.1,1") from None


def _baselines(ctx, param, value):
    from medcl.errors import ConfigError
    from medcl.downstream.config import parse_baselines

    try:
        return parse_baselines(value)
    except ConfigError as exc:
        raise click.BadParameter(str(exc)) from None


def make_command() -> click.Command:
    """The command, its --task choices the tasks registered now."""
    from medcl.downstream.tasks import TASKS

    @click.command("finetune")
    @click.argument("weights", type=click.Path(dir_okay=False))
    @click.option("--labels", required=True, type=click.Path(dir_okay=False),
                  help="Table with FID, IID and the target.")
    @click.option("--target", required=True, help="Column of the labels table to predict.")
    @click.option("--task", type=click.Choice(list(TASKS)),
                  help="Default: inferred from the column (2 distinct values: binary; text, or whole numbers >= 0 "
                       "with at most 10 distinct values: multiclass (ordinal: grades scored by kappa); other numbers: "
                       "regression). A --task that does not fit the column is refused.")
    @click.option("--mode", type=click.Choice(["linear", "full"]), default="linear", show_default=True,
                  help="linear: frozen features + linear model; full: fine-tune the encoder end to end.")
    @click.option("--fractions", default="0.01,0.1,1", show_default=True, callback=_fractions,
                  help="Fractions of the training individuals that keep their labels.")
    @click.option("--repeats", type=int, default=3, show_default=True, help="Draws (seeds) per fraction.")
    @click.option("--baseline", default="random,pixels", show_default=True, callback=_baselines,
                  help="Comma list beside the pretrained encoder: random (a randomly initialised encoder of the same "
                       "architecture), pixels (the linear probe on raw pixels at a quarter of the input size); "
                       "none: no baseline.")
    @click.option("--data", type=click.Path(),
                  help="Manifest (FID,IID,path[,frame]; csv/tsv/parquet), prepared dataset or its manifest.csv "
                       "(default: the demo cohort).")
    @click.option("--out", required=True, type=click.Path(file_okay=False),
                  help="Folder for metrics.json and label_efficiency.png (new or empty).")
    @click.option("--overwrite", is_flag=True, help="Write into an --out folder that is not empty.")
    @click.option("--batch-size", type=int, default=64, show_default=True)
    @click.option("--epochs", type=int, default=10, show_default=True, help="Full mode: epochs.")
    @click.option("--lr", type=float, default=1e-4, show_default=True, help="Full mode: learning rate.")
    @click.option("--workers", type=int, default=2, show_default=True)
    @click.option("--seed", type=int, default=0, show_default=True)
    @fit_option(inherit=True)
    @common_options
    def command(weights, labels, target, task, mode, fractions, repeats, baseline, data, out, overwrite, batch_size,
                epochs, lr, workers, seed, fit, device) -> None:
        """Train on the train split, select on val, report on test; mean ± sd over repeats for each
        label fraction, beside random init, raw pixels and a constant predictor. Writes
        OUT/metrics.json and OUT/label_efficiency.png, prints the table and whether pretraining helped."""
        from medcl.downstream.run import FinetuneConfig

        run(FinetuneConfig(weights=weights, labels=labels, target=target, out=out, data=data, task=task, mode=mode,
                           fractions=fractions, repeats=repeats, baseline=baseline, batch_size=batch_size,
                           epochs=epochs, lr=lr, workers=workers, device=device, seed=seed, overwrite=overwrite,
                           fit=fit))

    return command


def run(cfg) -> None:
    """Runs the evaluation and prints the table, the verdict and where the picture is."""
    from medcl.downstream.report import format_table
    from medcl.downstream.run import run_finetune

    report = run_finetune(cfg)
    click.echo(format_table(report))
    for line in report["verdict"]:
        click.echo(line)
    click.echo(f"picture: {report['picture']}")
