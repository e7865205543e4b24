"""``medcl pretrain``: self-supervised pretraining (contig, simclr, swav, puzzle)."""
from __future__ import annotations

import click

from medcl.cli.options import augment_options, common_options, fit_option


def _csv(ctx, param, value):
    if value is None or isinstance(value, tuple):
        return value
    items = tuple(v.strip() for v in str(value).split(",") if v.strip())
    return items or None


@click.command("pretrain")
@click.option("--method", type=click.Choice(["contig", "simclr", "swav", "puzzle"]), default="contig",
              show_default=True, help="contig: images with genetics; simclr, swav: image views; "
              "puzzle: multimodal jigsaw puzzles.")
@click.option("--modalities", callback=_csv,
              help="contig: image plus genetic modalities snp, prs, burden (comma-separated; default image,snp).")
@click.option("--data", type=click.Path(), help="Manifest (FID,IID,path[,view,split]) or a dataset "
              "written by `medcl prepare`; default: the demo cohort, generated on first use.")
@click.option("--genotypes", help="PLINK 1 prefix (PREFIX.bed/.bim/.fam) for snp.")
@click.option("--prs", type=click.Path(dir_okay=False), help="PRS table (FID, IID, scores) for prs.")
@click.option("--burden", type=click.Path(dir_okay=False), help="Burden table (FID, IID, genes) for burden.")
@click.option("--out", default="runs/contig", show_default=True, type=click.Path(file_okay=False),
              help="Run folder (config.yaml, metrics.csv, checkpoints/, encoder.safetensors).")
@click.option("--arch", type=click.Choice(["resnet18", "resnet34", "resnet50"]), default="resnet18",
              show_default=True, help="Image encoder.")
@click.option("--width", type=float, default=1.0, show_default=True, help="Channel width factor (0.25 for CPU).")
@click.option("--image-size", type=int, default=224, show_default=True, help="Input size in pixels.")
@fit_option()
@click.option("--batch-size", type=int, default=64, show_default=True,
              help="Images per process per micro-batch (contig: 2 or more; simclr, swav: 2 or more in all).")
@click.option("--epochs", type=int, default=10, show_default=True, help="Passes over the training split (1 or more).")
@click.option("--lr", type=float, default=1e-3, show_default=True, help="Peak learning rate.")
@click.option("--weight-decay", type=float, default=1e-4, show_default=True)
@click.option("--warmup-epochs", type=float, default=1.0, show_default=True)
@click.option("--accumulate", type=int, default=1, show_default=True, help="Micro-batches per optimizer step.")
@click.option("--clip-grad", type=float, default=1.0, show_default=True, help="Max gradient norm (0: off).")
@click.option("--precision", type=click.Choice(["auto", "bf16", "fp16", "fp32"]), default="auto",
              show_default=True, help="auto: bf16 autocast on GPU, fp32 on CPU.")
@click.option("--temperature", type=float, default=0.1, show_default=True,
              help="Temperature τ of InfoNCE (contig), NT-Xent (simclr) and the prototype softmax (swav).")
@click.option("--alpha", type=float, default=0.75, show_default=True, help="Weight of image→genetics.")
@click.option("--aggregate", type=click.Choice(["outer", "inner"]), default="outer", show_default=True,
              help="outer: everyone, missing modalities masked; inner: complete cases only.")
@click.option("--snp-stride", type=int, default=1, show_default=True, help="Keep every k-th SNP.")
@click.option("--snp-chromosomes", callback=_csv, help="Keep SNPs on these chromosomes (comma-separated).")
@click.option("--snp-ids", type=click.Path(dir_okay=False), help="File of SNP ids to keep.")
@click.option("--counted-allele", type=click.Choice(["a1", "a2"]), default="a1", show_default=True,
              help="Allele the genotypes count (a1: the .bim's first allele, PLINK standard).")
@click.option("--genetics-hidden-layers", type=click.IntRange(0, 2), default=1, show_default=True)
@click.option("--genetics-hidden", type=int, default=2048, show_default=True)
@click.option("--head-hidden", type=int, default=2048, show_default=True)
@click.option("--proj-dim", type=int, default=128, show_default=True)
@click.option("--augment/--no-augment", default=True, show_default=True)
@augment_options
@click.option("--pairs", type=click.Choice(["views", "patient", "views+patient"]), default="views", show_default=True,
              help="simclr/swav positives: views (two augmentations of one image), patient (two images of "
              "the same individual, resized only), views+patient (two images, each augmented); individuals "
              "with one image fall back to views.")
@click.option("--prototypes", type=int, default=3000, show_default=True, help="swav: number of prototypes K.")
@click.option("--small-crops", type=int, default=6, show_default=True,
              help="swav: small crops besides the 2 large views (size scaled as 96/224 of --image-size).")
@click.option("--queue-length", type=int, default=0, show_default=True,
              help="swav: embeddings of past batches joining Sinkhorn-Knopp once filled (0: no queue).")
@click.option("--sk-eps", type=float, default=0.05, show_default=True, help="swav: Sinkhorn-Knopp ε.")
@click.option("--sk-iters", type=int, default=3, show_default=True, help="swav: Sinkhorn-Knopp rounds.")
@click.option("--freeze-prototypes-iters", type=int, default=300, show_default=True,
              help="swav: training forwards before the prototypes are updated.")
@click.option("--grid", type=click.IntRange(2, 10), default=3, show_default=True, help="puzzle: n × n tiles.")
@click.option("--puzzle-columns", callback=_csv,
              help="puzzle: manifest columns of co-registered images mixed in each puzzle "
              "(default: path and every *_path column).")
@click.option("--sinkhorn-iters", type=int, default=20, show_default=True, help="puzzle: Sinkhorn iterations.")
@click.option("--puzzle-loss", type=click.Choice(["mse", "ce"]), default="mse", show_default=True,
              help="puzzle: mse against the permutation matrix (the paper) or ce on the log-matrix.")
@click.option("--workers", type=int, default=2, show_default=True, help="DataLoader workers per process.")
@click.option("--decode", type=click.Choice(["auto", "gpu", "cpu"]), default="auto", show_default=True,
              help="Where DICOM decode and augmentation run: gpu (workers only read bytes; the default on a "
              "CUDA device) or cpu (medcl's C++ kernels in the DataLoader workers).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--log-every", type=int, default=10, show_default=True,
              help="Steps between metrics.csv rows (and step log lines with -v; else one line per epoch).")
@click.option("--checkpoint-every", type=int, default=0, show_default=True,
              help="Steps between checkpoints (0: end of each epoch).")
@click.option("--resume", help="auto (newest checkpoint in OUT) or a checkpoint path; options not given "
              "are the run's (config.yaml).")
@click.option("--init-from", type=click.Path(dir_okay=False), help="Start a new run from these weights.")
@click.option("--max-bad-fraction", type=float, default=0.01, show_default=True,
              help="Stop when more than this fraction of samples cannot be read.")
@common_options
def command(**opts) -> None:
    """Pretrain an image encoder and write OUT/encoder.safetensors.

    contig aligns images with genetics; simclr and swav learn from views of images (--pairs);
    puzzle solves multimodal jigsaw puzzles through the Sinkhorn operator.

    Runs on one process, or one per GPU under torchrun or srun (DDP; negatives span the global
    batch). Ctrl-C (SIGINT) checkpoints after the step and exits 130 (twice: at once, no
    checkpoint); SIGTERM/SIGUSR1 checkpoint and exit 143. --resume auto --out RUN continues
    exactly with the run's config.yaml; options given again must match it, except --epochs
    (the schedule is recomputed and recorded), --batch-size (same global batch), --device,
    --workers, --decode, --log-every, --checkpoint-every and --max-bad-fraction.
    Writes OUT/curves.png (loss and validation curves) at each epoch's end.
    """
    from medcl.pretrain import PretrainConfig, run_pretrain

    ctx = click.get_current_context()
    given = {k for k in opts if ctx.get_parameter_source(k) is not click.core.ParameterSource.DEFAULT}
    run_pretrain(PretrainConfig.from_options(**opts), given=given)
