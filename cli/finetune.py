"""``medcl finetune``: label-efficiency evaluation of pretrained weights against random init."""
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


@click.command("finetune")
@click.argument("weights", type=click.Path(dir_okay=False))
@click.option("--labels", required=True, type=click.Path(dir_okay=False), help="Table with FID, IID and the target.")
@click.option("--target", required=True, help="Column of the labels table to predict.")
@click.option("--task", type=click.Choice(["binary", "multiclass", "ordinal", "regression"]), default="binary",
              show_default=True)
@click.option("--mode", type=click.Choice(["linear", "full"]), default="linear", show_default=True,
              help="linear: frozen features + linear model; full: fine-tune the encoder end to end.")
@click.option("--fractions", default="0.01,0.1,1", show_default=True, callback=_fractions,
              help="Fractions of the training individuals that keep their labels.")
@click.option("--repeats", type=int, default=3, show_default=True, help="Draws (seeds) per fraction.")
@click.option("--baseline", type=click.Choice(["random", "none"]), default="random", show_default=True,
              help="random: the same with a randomly initialised encoder, side by side.")
@click.option("--data", type=click.Path(dir_okay=False), help="Manifest (default: the demo cohort).")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Folder for metrics.json.")
@click.option("--batch-size", type=int, default=64, show_default=True)
@click.option("--epochs", type=int, default=10, show_default=True, help="Full mode: epochs.")
@click.option("--lr", type=float, default=1e-4, show_default=True, help="Full mode: learning rate.")
@click.option("--workers", type=int, default=2, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@fit_option(inherit=True)
@common_options
def command(weights, labels, target, task, mode, fractions, repeats, baseline, data, out, batch_size, epochs,
            lr, workers, seed, fit, device) -> None:
    """Train on the train split, select on val, report on test; mean ± sd over repeats for each
    label fraction. Writes OUT/metrics.json and prints the table."""
    from medcl.finetune import FinetuneConfig, format_table, run_finetune

    cfg = FinetuneConfig(weights=weights, labels=labels, target=target, out=out, data=data, task=task, mode=mode,
                         fractions=fractions, repeats=repeats, baseline=None if baseline == "none" else baseline,
                         batch_size=batch_size, epochs=epochs, lr=lr, workers=workers, device=device, seed=seed,
                         fit=fit)
    click.echo(format_table(run_finetune(cfg)))
