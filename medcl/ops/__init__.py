"""medcl's ops: each a public function over ``torch.ops.medcl.<op>`` with a pure-PyTorch
reference beside it (see medcl/_extension.py for how the backend is chosen)."""
from medcl.ops.augment import augment, augment_reference
from medcl.ops.decode_pixels import decode_pixels, decode_pixels_reference
from medcl.ops.intensity import intensity, intensity_reference
from medcl.ops.sinkhorn_log import hungarian, sinkhorn
from medcl.ops.sinkhorn_knopp import sinkhorn_knopp

__all__ = ["augment", "augment_reference", "decode_pixels", "decode_pixels_reference", "hungarian", "intensity",
           "intensity_reference", "sinkhorn", "sinkhorn_knopp"]
