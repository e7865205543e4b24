"""Pretraining runs: data → cohort → method → Trainer → RUN/encoder.safetensors.

``run_pretrain(PretrainConfig.from_options(...))`` is what `medcl pretrain` calls; it works on one
process or under torchrun / srun (one process per GPU, DDP). The methods (``METHODS``, from
``medcl.pretrain.registry``):

    contig   images aligned with genetic modalities (medcl.methods.contig)
    simclr   two views, NT-Xent; ``pairs`` picks where the views come from (medcl.data.datasets.views)
    swav     multi-crop views, swapped prediction of Sinkhorn-Knopp codes
    puzzle   multimodal jigsaw puzzles solved through the Sinkhorn operator (medcl.methods.puzzle)

Each method's builder (``medcl/pretrain/<method>.py``) returns its module, the datasets of the
train and val splits and the metadata saved with the weights; everything else (loaders,
Trainer, export) is shared (``medcl.pretrain.run``).
"""
from medcl.pretrain.config import PretrainConfig
from medcl.pretrain.registry import METHODS, MethodSpec, register_method
from medcl.pretrain.resume import resume_settings
from medcl.pretrain.run import run_pretrain

__all__ = ["METHODS", "MethodSpec", "PretrainConfig", "register_method", "resume_settings", "run_pretrain"]
