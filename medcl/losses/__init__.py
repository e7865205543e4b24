"""Losses: one per file, each an nn.Module over medcl.ops."""
import torch


def loss_input(t: torch.Tensor) -> torch.Tensor:
    """Embeddings as a loss takes them: half types widened to float32 (the loss accumulates in
    float32 under autocast), float32 and float64 kept as they are."""
    return t.to(torch.promote_types(t.dtype, torch.float32))


from medcl.losses.contig import ContigLoss, ContigLossConfig

__all__ = ["ContigLoss", "ContigLossConfig", "loss_input"]
from medcl.losses.puzzle import PuzzleLoss  # noqa: E402

__all__ += ["PuzzleLoss"]
