"""The geometry of a view, named: the augment op's parameters as fields, output shapes, and
labels that follow an image through a view (masks, boxes).

A view is an affine map from output to input pixels plus a tone (``medcl.ops.augment``'s 13
parameters per view, in the order of the op's own field list ``medcl.ops.augment.PARAMS``):

    p = ViewParams.of(view_affine(top, left, h, w, angle, flip, out_shape=(96, 128)), noise=0.01, seed=7)
    rows = p.to_rows()                          # (13,) float64, what the op reads; many views: (..., 13)
    q = ViewParams.from_rows(rows)              # fields back, q.a02, q.contrast, ... (tensors)

Output pixel (column u, row v) reads the input at (x, y) = (a00 u + a01 v + a02, a10 u + a11 v +
a12); pixel centres are integers in both images. Labels follow the same map:

- images: the op's antialiased sampling (``medcl.ops.augment``);
- masks (label images): :func:`warp_mask`, nearest, so labels are never blended;
- boxes (N, 4) ``x0, y0, x1, y1``: :func:`map_boxes`, the corners mapped through the inverse
  map, their axis-aligned bounds clipped to the output, empty ones dropped.

Sizes are (rows, cols) = (height, width) throughout; an output shape is an int (square) or
(h, w).
"""
from __future__ import annotations

import math
from collections import namedtuple

import torch

from medcl.ops.augment import A12, PARAMS

__all__ = ["ViewParams", "AFFINE", "TONE", "output_shape", "view_affine", "warp_mask", "map_boxes"]

AFFINE = PARAMS[:A12 + 1]          # a00 a01 a02 a10 a11 a12: output → input pixels
TONE = PARAMS[A12 + 1:]            # brightness contrast pivot gamma noise blur seed
_NEUTRAL_TONE = {"brightness": 0.0, "contrast": 1.0, "pivot": 0.5, "gamma": 1.0, "noise": 0.0, "blur": 0.0,
                 "seed": 0.0}      # the view changes no intensity


class ViewParams(namedtuple("ViewParams", PARAMS)):
    """One or many views' op parameters as named fields (floats, or tensors of one shape (...)).

    The fields and their order are ``medcl.ops.augment.PARAMS``; :meth:`to_rows` gives the
    (..., 13) float64 tensor the op reads, :meth:`from_rows` the fields of such a tensor.
    """

    __slots__ = ()

    @classmethod
    def of(cls, affine, **tone) -> "ViewParams":
        """From the six affine coefficients (a sequence, AFFINE order) and tone fields by name
        (missing ones neutral: no brightness, contrast 1 about 0.5, gamma 1, no noise or blur)."""
        unknown = set(tone) - set(TONE)
        if unknown:
            raise ValueError(f"ViewParams.of: unknown tone fields {sorted(unknown)}; the fields are {TONE}")
        return cls(*affine, *(tone.get(name, _NEUTRAL_TONE[name]) for name in TONE))

    @classmethod
    def from_rows(cls, rows: torch.Tensor) -> "ViewParams":
        """(..., 13) rows → fields, each (...) (views of ``rows``, not copies)."""
        rows = torch.as_tensor(rows)
        if rows.shape[-1:] != (len(PARAMS),):
            raise ValueError(f"ViewParams.from_rows: rows must be (..., {len(PARAMS)}), got {tuple(rows.shape)}")
        return cls(*rows.unbind(-1))

    def to_rows(self) -> torch.Tensor:
        """(..., 13) float64: the fields broadcast to one shape and stacked in the op's order."""
        values = torch.broadcast_tensors(*(torch.as_tensor(v, dtype=torch.float64) for v in self))
        return torch.stack(values, -1)

    def with_affine(self, affine) -> "ViewParams":
        """These parameters with the six affine coefficients (AFFINE order) replaced."""
        return self._replace(**dict(zip(AFFINE, affine, strict=True)))

    def affine(self) -> torch.Tensor:
        """(..., 2, 3) float64: [[a00, a01, a02], [a10, a11, a12]]."""
        return self.to_rows()[..., :A12 + 1].unflatten(-1, (2, 3))


def output_shape(shape) -> tuple[int, int]:
    """An output shape, int (square) or (h, w), as (h, w) of positive ints."""
    h, w = (shape, shape) if isinstance(shape, (int, float)) else tuple(shape)
    if int(h) != h or int(w) != w or h < 1 or w < 1:
        raise ValueError(f"an output shape is a positive int or (h, w) of positive ints, got {shape!r}")
    return int(h), int(w)


def view_affine(top: float, left: float, height: float, width: float, angle: float = 0.0, flip: bool = False,
                *, out_shape=224) -> tuple[float, ...]:
    """The affine of a view of the input box (top, left, height, width) (input pixels) onto an
    output of ``out_shape``, rotated by ``angle`` degrees (counter-clockwise) about its centre
    and flipped horizontally when ``flip``: six floats in AFFINE order.

    Output pixel (u, v) is flipped (u about the centre), rotated, then scaled onto the box:
    (x, y) = M (u − c_u, v − c_v) + box centre, c = ((W − 1)/2, (H − 1)/2) for an H × W output,
    M = diag(width/W, height/H) · R(angle) · flip. The whole image at its own size maps u → u
    exactly.
    """
    H, W = output_shape(out_shape)
    a = math.radians(angle)
    cos, sin = (1.0, 0.0) if angle == 0.0 else (math.cos(a), math.sin(a))
    f = -1.0 if flip else 1.0
    sx, sy = width / float(W), height / float(H)
    m00, m01 = sx * cos * f, -sx * sin
    m10, m11 = sy * sin * f, sy * cos
    cu, cv = (W - 1.0) / 2.0, (H - 1.0) / 2.0
    cx, cy = left + (width - 1.0) / 2.0, top + (height - 1.0) / 2.0
    if cu == cv:   # a square output: one factor (the rounding medcl has always used)
        return m00, m01, cx - (m00 + m01) * cu, m10, m11, cy - (m10 + m11) * cu
    return m00, m01, cx - (m00 * cu + m01 * cv), m10, m11, cy - (m10 * cu + m11 * cv)


def _sample_points(params: torch.Tensor, out_h: int, out_w: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Input coordinates (x, y), each (..., out_h, out_w) float64, of every output pixel centre."""
    p = ViewParams.from_rows(params.to(torch.float64))
    ex = lambda t: t[..., None, None]                                       # (...) → (..., 1, 1)
    u = torch.arange(out_w, dtype=torch.float64, device=params.device)
    v = torch.arange(out_h, dtype=torch.float64, device=params.device)[:, None]
    return ex(p.a00) * u + ex(p.a01) * v + ex(p.a02), ex(p.a10) * u + ex(p.a11) * v + ex(p.a12)


def warp_mask(masks: torch.Tensor, params: torch.Tensor, *, out_size, sizes: torch.Tensor | None = None,
              fill=0) -> torch.Tensor:
    """Label images through views, nearest: (B, H, W) any dtype → (B, V, out_h, out_w), same dtype.

    params: (B, V, 13) op parameters (the ones the images' views used; only the affine is read,
    the tone is ignored); out_size: int or (h, w); sizes: (B, 2) valid (rows, cols) of each
    mask, default H × W. Output pixel (u, v) takes the label of the input pixel whose centre is
    nearest to (x, y) = A (u, v, 1), pixel i owning [i − ½, i + ½) (a tie goes to the higher
    index); outside the valid region it is ``fill``, as the op reads 0 outside the image.
    """
    if masks.dim() != 3:
        raise ValueError(f"warp_mask: masks must be (B, H, W), got shape {tuple(masks.shape)}")
    B, H, W = masks.shape
    out_h, out_w = output_shape(out_size)
    params = torch.as_tensor(params, dtype=torch.float64, device=masks.device)
    if params.dim() != 3 or params.shape[0] != B or params.shape[2] != len(PARAMS):
        raise ValueError(f"warp_mask: params must be (B, V, {len(PARAMS)}) with B = {B}, got {tuple(params.shape)}")
    if sizes is None:
        sizes = torch.tensor([H, W], dtype=torch.int64, device=masks.device).expand(B, 2)
    sizes = torch.as_tensor(sizes, dtype=torch.int64, device=masks.device)
    rows = sizes[:, 0].clamp(0, H).view(B, 1, 1, 1)
    cols = sizes[:, 1].clamp(0, W).view(B, 1, 1, 1)
    x, y = _sample_points(params, out_h, out_w)                              # (B, V, oh, ow)
    i, j = torch.floor(y + 0.5), torch.floor(x + 0.5)
    inside = (i >= 0) & (i < rows) & (j >= 0) & (j < cols)
    flat = (torch.arange(B, device=masks.device).view(B, 1, 1, 1) * (H * W)
            + i.clamp(0, H - 1).long() * W + j.clamp(0, W - 1).long())
    picked = masks.reshape(-1)[flat.reshape(-1)].view(flat.shape) if masks.numel() else \
        torch.zeros(flat.shape, dtype=masks.dtype, device=masks.device)
    return torch.where(inside, picked, torch.as_tensor(fill, dtype=masks.dtype, device=masks.device))


def map_boxes(boxes: torch.Tensor, params: torch.Tensor, *, out_size) -> tuple[torch.Tensor, torch.Tensor]:
    """Boxes of one image through one of its views: (N, 4) → ((K, 4) float64, keep (N,) bool).

    boxes: ``x0, y0, x1, y1`` in input pixel edges (pixel column i spans [i, i + 1), so the
    whole H × W image is (0, 0, W, H)); params: the view's 13 op parameters (a (13,) row);
    out_size: int or (h, w). Each box's four corners go through the inverse of the view's
    affine; the result is their axis-aligned bounds (a rotated box grows to hold its corners),
    clipped to the output (0, 0, out_w, out_h). Boxes left empty (no area) are dropped: ``keep``
    says which input boxes the K rows are, in order.
    """
    boxes = torch.as_tensor(boxes, dtype=torch.float64)
    if boxes.dim() != 2 or boxes.shape[1] != 4:
        raise ValueError(f"map_boxes: boxes must be (N, 4) x0, y0, x1, y1, got shape {tuple(boxes.shape)}")
    out_h, out_w = output_shape(out_size)
    A = ViewParams.from_rows(torch.as_tensor(params, dtype=torch.float64).cpu()).affine().to(boxes.device)
    if A.shape != (2, 3):
        raise ValueError(f"map_boxes: params must be one view's ({len(PARAMS)},) row, got {tuple(params.shape)}")
    x0, y0, x1, y1 = boxes.unbind(1)
    corners = torch.stack([torch.stack([x0, y0], 1), torch.stack([x1, y0], 1),
                           torch.stack([x0, y1], 1), torch.stack([x1, y1], 1)], 1)   # (N, 4, 2) edges
    centres = corners - 0.5                                                  # the op's pixel-centre frame
    uv = torch.linalg.solve(A[:, :2], (centres - A[:, 2]).reshape(-1, 2).T).T.reshape(-1, 4, 2) + 0.5
    lo, hi = uv.amin(1), uv.amax(1)                                          # (N, 2) each
    limit = torch.tensor([out_w, out_h], dtype=torch.float64, device=boxes.device)
    lo, hi = torch.minimum(lo.clamp_min(0), limit), torch.minimum(hi.clamp_min(0), limit)
    out = torch.cat([lo, hi], 1)
    keep = (hi > lo).all(1)
    return out[keep], keep
