"""``medcl demo-data OUT``: write the synthetic demo cohort (see medcl/demo)."""
from __future__ import annotations

import logging

import click

from medcl.cli.options import common_options

log = logging.getLogger("medcl")


@click.command("demo-data")
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--n", "n", type=int, default=1000, show_default=True, help="Individuals.")
@click.option("--snps", type=int, default=2000, show_default=True, help="Common SNPs in the PLINK files.")
@click.option("--size", type=int, default=256, show_default=True, help="Radiograph rows and columns.")
@click.option("--seed", type=int, default=0, show_default=True, help="Same seed, byte-identical files.")
@click.option("--workers", type=int, default=None, help="Processes for the images (default: up to 4).")
@common_options
def command(out: str, n: int, snps: int, size: int, seed: int, workers: int | None, device: str) -> None:
    """Write the synthetic demo cohort to OUT (a new or empty folder).

    DICOM CR chest radiographs (MONOCHROME1/2, some RLE Lossless) with follow-up visits and a
    co-registered bone-enhanced rendering, PLINK genotypes, PRS/burden/label tables and a
    manifest; OUT/README.md states the generative model. --device is accepted for uniformity
    (generation runs on the CPU).
    """
    from medcl.demo import generate_cohort
    from medcl.progress import StagedProgress

    progress = StagedProgress()
    try:
        s = generate_cohort(out, n=n, snps=snps, size=size, seed=seed, progress=progress, workers=workers)
    finally:
        progress.close()
    log.info("demo cohort written to %s in %.1f s: %d individuals, %d radiographs (%d follow-ups, each with a "
             "bone-enhanced rendering), %d genotyped x %d SNPs, %d imaged without genotypes",
             s.out, s.elapsed_s, s.n_individuals, s.n_images, s.n_followups, s.n_genotyped, s.n_snps,
             s.n_imaged_without_genotype)
    click.echo(s.paths["manifest"])
