"""Pretraining methods: views + encoders + heads + loss → a dict of losses."""
from medcl.methods.contig import ContigConfig, ContigMethod

__all__ = ["ContigConfig", "ContigMethod"]
from medcl.methods.puzzle import PuzzleConfig, PuzzleMethod  # noqa: E402

__all__ += ["PuzzleConfig", "PuzzleMethod"]
