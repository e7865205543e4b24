"""Pretraining methods: views + encoders + heads + loss → a dict of losses."""
from medcl.methods.contig import ContigConfig, ContigMethod

__all__ = ["ContigConfig", "ContigMethod"]
