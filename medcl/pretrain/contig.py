"""--method contig: images aligned with genetic modalities (ContIG; medcl.methods.contig).

Options: the module's (``ContigConfig``: projection, genetic encoders, α) and where the genetics
come from (``GeneticData``: --modalities, --genotypes, --prs, --burden, the SNP selection).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, replace

from medcl.config import DictConfig, option
from medcl.errors import ConfigError
from medcl.methods.contig import ContigConfig, ContigMethod
from medcl.pretrain.common import image_cohort_args
from medcl.pretrain.spec import Built, MethodSpec

log = logging.getLogger("medcl")

GENETIC = ("snp", "prs", "burden")


@dataclass
class GeneticData(DictConfig):
    modalities: tuple = option(("image", "snp"), "Image plus genetic modalities snp, prs, burden (comma-separated).",
                               parse="csv", strict=True)
    genotypes: str | None = option(None, "PLINK 1 prefix (PREFIX.bed/.bim/.fam) for snp.")
    prs: str | None = option(None, "PRS table (FID, IID, scores) for prs.")
    burden: str | None = option(None, "Burden table (FID, IID, genes) for burden.")
    aggregate: str = option("outer", "outer: everyone, missing modalities masked; inner: complete cases only.",
                            choices=("outer", "inner"))
    snp_stride: int = option(1, "Keep every k-th SNP (ContIG: 100).")
    snp_chromosomes: tuple | None = option(None, "Keep SNPs on these chromosomes (comma-separated).", parse="csv")
    snp_ids: str | None = option(None, "File of SNP ids to keep.")
    counted_allele: str = option("a1", "Allele the genotypes count (a1: the .bim's first allele, PLINK standard).",
                                 choices=("a1", "a2"))

    def genetic_modalities(self) -> tuple:
        mods = tuple(m for m in self.modalities if m != "image")
        if "image" not in self.modalities:
            raise ConfigError("--modalities must include image (ContIG aligns images with genetics)")
        bad = [m for m in mods if m not in GENETIC]
        if bad or not mods:
            raise ConfigError(f"--modalities {','.join(self.modalities)}: need image and at least one of "
                              f"{', '.join(GENETIC)}")
        return mods


def check(cfg):
    cfg.sections["genetic_data"].genetic_modalities()
    return cfg


def build(cfg, info, source) -> Built:
    from medcl.data import ContigDataset, load_cohort
    from medcl.io.plink import SnpSelection

    gd: GeneticData = cfg.sections["genetic_data"]
    mods = gd.genetic_modalities()
    snps = SnpSelection(chromosomes=list(gd.snp_chromosomes) if gd.snp_chromosomes else None,
                        ids=gd.snp_ids, stride=gd.snp_stride)
    cohort = load_cohort(cfg.data.path, genotypes=gd.genotypes if "snp" in mods else None,
                         prs=gd.prs if "prs" in mods else None, burden=gd.burden if "burden" in mods else None,
                         snps=snps, counted_allele=gd.counted_allele, modalities=mods, aggregate=gd.aggregate,
                         **image_cohort_args(cfg, info, source))
    method_cfg = replace(cfg.sections["contig"], modalities=mods, image=cfg.encoder)
    dims = {m: cohort.genetics[m].dim for m in mods}
    method = ContigMethod(method_cfg, dims)
    common = dict(image_size=cfg.data.image_size, seed=cfg.train.seed, source=source, fit=cfg.data.fit)
    train = ContigDataset(cohort, "train", augment=cfg.augment, **common)
    val = ContigDataset(cohort, "val", augment=None, **common)
    meta = {"config": method_cfg.to_dict(), "genetic_dims": dims, "counted_allele": gd.counted_allele,
            "genetics_stats": cohort.stats()}
    return Built(method, train, val, meta)


SPEC = MethodSpec("contig", ContigMethod, {"contig": ContigConfig, "genetic_data": GeneticData}, build,
                  "images with genetics (ContIG)", check=check)
