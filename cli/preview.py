"""``medcl preview``: a PNG grid of augmented views, to check the augmentation before a long run."""
from __future__ import annotations

import click

from medcl.cli.options import augment_options, common_options, fit_option


@click.command("preview")
@click.option("--data", type=click.Path(),
              help="A DICOM or PNG/JPEG image (a multi-frame file: its first frames), a manifest, a prepared "
                   "dataset or its manifest.csv (default: the demo cohort).")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="PNG file to write.")
@click.option("--images", type=click.IntRange(1, 64), default=4, show_default=True,
              help="Images (rows) from a manifest or dataset.")
@click.option("--views", type=click.IntRange(1, 32), default=6, show_default=True, help="Augmented views per image.")
@click.option("--image-size", type=click.IntRange(8, 2048), default=224, show_default=True,
              help="View size in pixels.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--augment/--no-augment", default=True, show_default=True, help="--no-augment: resized views only.")
@augment_options
@fit_option()
@common_options
def command(data, out, images, views, image_size, seed, augment, fit, device, **settings) -> None:
    """Write a grid to OUT: per image its resized original (framed), then VIEWS augmented views
    drawn with the augmentation options (the same ones `medcl pretrain` takes)."""
    import logging

    from medcl.data.augment import augment_config
    from medcl.preview import write_preview

    if data is None:
        from medcl.demo.cache import demo_cohort
        data = str(demo_cohort() / "manifest.csv")
        logging.getLogger("medcl").info("no --data: previewing the demo cohort (%s)", data)
    write_preview(data, out, augment_config(augment, **settings), images=images, size=image_size, views=views, seed=seed,
                  fit=fit)
