"""Losses: one per file, each an nn.Module over medcl.ops (infonce.py and ntxent.py also hold the
functional ``contrastive_loss`` and ``ntxent_loss``)."""
import torch


def loss_input(t: torch.Tensor) -> torch.Tensor:
    """Embeddings as a loss takes them: half types widened to float32 (the loss accumulates in
    float32 under autocast), float32 and float64 kept as they are."""
    return t.to(torch.promote_types(t.dtype, torch.float32))


from medcl.losses.contig import ContigLoss, ContigLossConfig  # noqa: E402
from medcl.losses.infonce import contrastive_loss, contrastive_loss_reference  # noqa: E402
from medcl.losses.ntxent import NTXentLoss, ntxent_loss  # noqa: E402
from medcl.losses.puzzle import PuzzleLoss  # noqa: E402
from medcl.losses.swav import SwAVLoss  # noqa: E402

__all__ = ["ContigLoss", "ContigLossConfig", "NTXentLoss", "PuzzleLoss", "SwAVLoss", "contrastive_loss",
           "contrastive_loss_reference", "loss_input", "ntxent_loss"]
