"""``medcl embed``: image embeddings (and GWAS phenotype tables) from pretrained weights."""
from __future__ import annotations

import click

from medcl.cli.options import common_options, fit_option


@click.command("embed")
@click.argument("weights", type=click.Path(dir_okay=False))
@click.option("--data", type=click.Path(),
              help="Manifest (FID,IID,path[,frame]; csv/tsv/parquet), prepared dataset or its manifest.csv to embed "
                   "(default: the demo cohort).")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Output file (new, or with --overwrite).")
@click.option("--overwrite", is_flag=True, help="Replace an existing --out file.")
@click.option("--format", "fmt", type=click.Choice(["parquet", "csv", "npy", "pheno"]), default="parquet",
              show_default=True, help="pheno: 'FID IID PC_0 ... PC_{K-1}' for plink2 --pheno / REGENIE / BOLT-LMM.")
@click.option("--pca", "pca_k", type=int, default=10, show_default=True,
              help="PCs in the pheno table: 1 to min(people, embedding size), checked before embedding.")
@click.option("--batch-size", type=int, default=64, show_default=True)
@click.option("--workers", type=int, default=2, show_default=True)
@fit_option(inherit=True)
@common_options
def command(weights, data, out, overwrite, fmt, pca_k, batch_size, workers, fit, device) -> None:
    """Embed every image of a manifest with the encoder in WEIGHTS (encoder.safetensors or a checkpoint).

    One row per image with FID, IID, path and the embedding; --format pheno writes one row per
    individual with the first K principal components of their (averaged) embeddings.
    """
    from medcl.embed import run_embed

    run_embed(weights, data=data, out=out, fmt=fmt, pca_k=pca_k, batch_size=batch_size, device=device,
              workers=workers, fit=fit, overwrite=overwrite)
