"""Losses: one per file, each an nn.Module over medcl.ops."""
from medcl.losses.contig import ContigLoss, ContigLossConfig

__all__ = ["ContigLoss", "ContigLossConfig"]
from medcl.losses.puzzle import PuzzleLoss  # noqa: E402

__all__ += ["PuzzleLoss"]
