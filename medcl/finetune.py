"""Kept for one release: ``medcl.finetune`` moved to the package :mod:`medcl.downstream`
(``from medcl.downstream.run import FinetuneConfig, run_finetune``)."""
from medcl.downstream.run import FinetuneConfig, run_finetune

__all__ = ["FinetuneConfig", "run_finetune"]
