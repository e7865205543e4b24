"""Named view geometry (medcl.data.geometry): the op's parameters as fields, (h, w) outputs, and
masks and boxes that follow an image through the augment op's affine."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from medcl.data.geometry import AFFINE, TONE, ViewParams, map_boxes, output_shape, view_affine, warp_mask
from medcl.ops import augment as augment_op
from medcl.ops.augment import PARAMS


def _u(g, lo, hi):
    return float(lo + (hi - lo) * torch.rand((), generator=g, dtype=torch.float64))


def _random_view(g, rows, cols, out_shape, tone=False):
    """A (13,) row: a random crop (maybe reaching past the image), rotation and flip."""
    h, w = _u(g, 0.3, 1.1) * rows, _u(g, 0.3, 1.1) * cols
    top, left = _u(g, -0.1 * rows, rows - 0.9 * h), _u(g, -0.1 * cols, cols - 0.9 * w)
    affine = view_affine(top, left, h, w, _u(g, -40, 40), bool(torch.rand((), generator=g) < 0.5),
                         out_shape=out_shape)
    extra = {"brightness": 0.1, "contrast": 1.2, "gamma": 0.9} if tone else {}
    return ViewParams.of(affine, **extra).to_rows()


# --- named parameters ------------------------------------------------------------------------
def test_fields_come_from_the_op_and_round_trip(gen):
    assert ViewParams._fields == PARAMS and AFFINE + TONE == PARAMS
    rows = torch.rand(4, 3, len(PARAMS), generator=gen, dtype=torch.float64)
    p = ViewParams.from_rows(rows)
    for k, name in enumerate(PARAMS):
        assert torch.equal(getattr(p, name), rows[..., k])
    assert torch.equal(p.to_rows(), rows)
    assert torch.equal(p.affine(), rows[..., :6].reshape(4, 3, 2, 3))
    one = ViewParams.of((1.0, 0.0, 0.0, 0.0, 1.0, 0.0), seed=5.0, noise=0.1)
    assert one.to_rows().shape == (13,) and one.seed == 5.0 and one.contrast == 1.0 and one.pivot == 0.5
    mixed = ViewParams.of((torch.zeros(2),) + (0.0,) * 5)._replace(gamma=torch.tensor([1.0, 2.0]))
    assert mixed.to_rows().shape == (2, 13) and mixed.to_rows()[1, PARAMS.index("gamma")] == 2.0
    with pytest.raises(ValueError, match="unknown tone"):
        ViewParams.of((0.0,) * 6, sharpness=1.0)
    with pytest.raises(ValueError, match=r"\(\.\.\., 13\)"):
        ViewParams.from_rows(torch.zeros(3, 12))


def test_output_shape():
    assert output_shape(96) == (96, 96) and output_shape((32, 48)) == (32, 48)
    for bad in (0, (0, 4), (4.5, 4), -1):
        with pytest.raises(ValueError):
            output_shape(bad)


def test_view_affine_maps_the_box_onto_the_output(gen):
    """Output pixel edges land on the box's edges; its centre on the box's centre (float64)."""
    for out in [(37, 61), (64, 64), (50, 20)]:
        H, W = out
        top, left, h, w = _u(gen, -5, 20), _u(gen, -5, 20), _u(gen, 10, 90), _u(gen, 10, 90)
        angle = _u(gen, -90, 90)
        A = np.array(view_affine(top, left, h, w, angle, True, out_shape=out)).reshape(2, 3)
        centre = A @ np.array([(W - 1) / 2, (H - 1) / 2, 1.0])
        np.testing.assert_allclose(centre, [left + (w - 1) / 2, top + (h - 1) / 2], rtol=0, atol=1e-9)
        plain = np.array(view_affine(top, left, h, w, out_shape=out)).reshape(2, 3)
        corners = plain @ np.array([[-0.5, -0.5, 1.0], [W - 0.5, H - 0.5, 1.0]]).T   # output edges
        np.testing.assert_allclose(corners.T, [[left - 0.5, top - 0.5], [left + w - 0.5, top + h - 0.5]], atol=1e-9)
        # the rotation turns the output's pixel axes by the angle, scaled per axis (w/W, h/H)
        turned = np.diag([W / w, H / h]) @ A[:, :2]                            # R(angle) · flip
        a = math.radians(angle)
        np.testing.assert_allclose(turned, [[-math.cos(a), -math.sin(a)], [-math.sin(a), math.cos(a)]], atol=1e-12)


def test_whole_image_at_its_own_shape_copies_exactly(gen):
    """Non-square output: the whole image at its own (h, w) is an exact copy through the op."""
    x = torch.rand(1, 30, 44, generator=gen)
    rows = ViewParams.of(view_affine(0, 0, 30, 44, out_shape=(30, 44))).to_rows().view(1, 1, 13)
    out = augment_op(x, rows, out_size=(30, 44), views=1, dtype=torch.float32)
    assert torch.equal(out[0, 0], x[0])


# --- masks -------------------------------------------------------------------------------------
def _mask_reference(masks, params, out_shape, sizes):
    """Nearest sampling by torch's grid_sample in float64 over each mask's valid region."""
    out_h, out_w = out_shape
    B, V = params.shape[:2]
    res = torch.zeros(B, V, out_h, out_w, dtype=torch.float64)
    for b in range(B):
        r, c = sizes[b].tolist()
        m = masks[b, :r, :c].double()[None, None]                                # (1, 1, r, c)
        for v in range(V):
            a = params[b, v].tolist()
            uu, vv = torch.meshgrid(torch.arange(out_w, dtype=torch.float64),
                                    torch.arange(out_h, dtype=torch.float64), indexing="xy")
            x = a[0] * uu + a[1] * vv + a[2]
            y = a[3] * uu + a[4] * vv + a[5]
            grid = torch.stack([(2 * x + 1) / c - 1, (2 * y + 1) / r - 1], -1)[None]   # align_corners=False
            res[b, v] = F.grid_sample(m, grid, mode="nearest", padding_mode="zeros", align_corners=False)[0, 0]
    return res.to(masks.dtype)


@pytest.mark.parametrize("out_shape", [(40, 40), (24, 56), (70, 33)])
def test_warp_mask_matches_a_float64_reference(gen, out_shape):
    B, V, H, W = 3, 4, 50, 64
    masks = torch.randint(0, 5, (B, H, W), generator=gen, dtype=torch.int64)
    sizes = torch.tensor([[50, 64], [41, 64], [50, 23]])
    for b, (r, c) in enumerate(sizes.tolist()):
        masks[b, r:], masks[b, :, c:] = 9, 9                                    # padding: never read
    params = torch.stack([torch.stack([_random_view(gen, *sizes[b].tolist(), out_shape, tone=True)
                                       for _ in range(V)]) for b in range(B)])
    out = warp_mask(masks, params, out_size=out_shape, sizes=sizes)
    assert out.shape == (B, V, *out_shape) and out.dtype == torch.int64
    assert not (out == 9).any()
    assert torch.equal(out, _mask_reference(masks, params, out_shape, sizes)), gen.initial_seed()


def test_warp_mask_exact_cases(gen):
    m = torch.randint(0, 255, (1, 12, 17), generator=gen, dtype=torch.uint8)
    quarter = torch.rot90(m[0], 1, (0, 1))                                   # out[v, u] = m[u, 16 - v]
    cases = [((0, 0, 12, 17), 0.0, False, (12, 17), m[0]), ((0, 0, 12, 17), 0.0, True, (12, 17), m[0].flip(1)),
             ((-2.5, 2.5, 17, 12), 90.0, False, (17, 12), quarter)]   # a quarter turn: the box turned too
    for box, angle, flip, shape, want in cases:
        rows = ViewParams.of(view_affine(*box, angle, flip, out_shape=shape)).to_rows().view(1, 1, 13)
        got = warp_mask(m, rows, out_size=shape)[0, 0]
        assert torch.equal(got, want), (angle, flip)
        img = augment_op(m.float() / 255, rows, out_size=shape, views=1, dtype=torch.float32)[0, 0]
        torch.testing.assert_close(img, got.float() / 255, rtol=0, atol=1e-6)   # where the op puts each pixel
    shrink = ViewParams.of(view_affine(0, 0, 12, 16, out_shape=(6, 8))).to_rows().view(1, 1, 13)
    assert torch.equal(warp_mask(m, shrink, out_size=(6, 8))[0, 0], m[0, 1::2, 1:16:2])   # ties: higher index
    far = ViewParams.of(view_affine(100, 100, 12, 17, out_shape=(12, 17))).to_rows().view(1, 1, 13)
    assert (warp_mask(m, far, out_size=(12, 17), fill=7) == 7).all()


def _blob_image(gen, H=96, W=80):
    """An image dark but for a bright ellipse and a bright rectangle."""
    yy, xx = torch.meshgrid(torch.arange(H, dtype=torch.float32), torch.arange(W, dtype=torch.float32), indexing="ij")
    cy, cx = _u(gen, 25, 60), _u(gen, 20, 40)
    img = 0.1 + 0.05 * torch.rand(H, W, generator=gen)
    img[((yy - cy) / 18) ** 2 + ((xx - cx) / 12) ** 2 < 1] = 0.9
    box = (60, 74, 76, 92)                  # x0, y0, x1, y1 (edges), apart from the ellipse (x < 52)
    img[box[1]:box[3], box[0]:box[2]] = 0.95
    return img, box


@pytest.mark.parametrize("out_shape", [(64, 64), (48, 80), (90, 40)])
def test_a_mask_of_the_bright_region_lands_where_the_op_puts_it(gen, out_shape):
    img, _ = _blob_image(gen)
    mask = (img > 0.5).to(torch.int64) * 3
    H, W = img.shape
    params = torch.stack([_random_view(gen, H, W, out_shape) for _ in range(6)])[None]   # (1, 6, 13)
    views = augment_op(img[None], params, out_size=out_shape, views=6, dtype=torch.float32)[0]
    labels = warp_mask(mask[None], params, out_size=out_shape)[0]
    bright, dark = views > 0.7, views < 0.3
    assert bright.any() and dark.any()
    # bilinear taps: an output pixel whose nearest source pixel is dark still reads up to ~0.75 when
    # its three other neighbours are bright, so only clearly bright or dark pixels must agree
    assert (labels[views > 0.8] == 3).all(), gen.initial_seed()
    assert (labels[views < 0.2] == 0).all(), gen.initial_seed()
    assert (~(bright | dark)).float().mean() < 0.1                             # only the edges blur


# --- boxes -------------------------------------------------------------------------------------
def _boxes_reference(boxes, row, out_shape):
    """Each corner solved in float64 numpy, then bounds, clipping and the empty test."""
    out_h, out_w = out_shape
    a = np.array(row[:6].tolist()).reshape(2, 3)
    inv = np.linalg.inv(a[:, :2])
    res, keep = [], []
    for x0, y0, x1, y1 in boxes.tolist():
        pts = [inv @ (np.array([x, y]) - 0.5 - a[:, 2]) + 0.5 for x in (x0, x1) for y in (y0, y1)]
        lo = np.clip(np.min(pts, 0), 0, [out_w, out_h])
        hi = np.clip(np.max(pts, 0), 0, [out_w, out_h])
        keep.append(bool((hi > lo).all()))
        if keep[-1]:
            res.append(np.concatenate([lo, hi]))
    return np.array(res).reshape(-1, 4), np.array(keep)


def test_boxes_match_a_float64_reference(gen):
    H, W = 60, 90
    for out_shape in [(48, 48), (30, 70), (80, 50)]:
        for _ in range(5):
            row = _random_view(gen, H, W, out_shape, tone=True)
            xy = torch.rand(40, 2, generator=gen, dtype=torch.float64) * torch.tensor([W, H])
            wh = torch.rand(40, 2, generator=gen, dtype=torch.float64) * 25
            boxes = torch.cat([xy, xy + wh], 1)
            out, keep = map_boxes(boxes, row, out_size=out_shape)
            want, want_keep = _boxes_reference(boxes, row, out_shape)
            assert keep.tolist() == want_keep.tolist()
            np.testing.assert_allclose(out.numpy(), want, rtol=0, atol=1e-9)
            assert (out[:, 2:] > out[:, :2]).all() and (out >= 0).all()
            assert (out[:, 2] <= out_shape[1]).all() and (out[:, 3] <= out_shape[0]).all()


def test_boxes_exact_cases():
    W, H = 20, 10
    ident = ViewParams.of(view_affine(0, 0, H, W, out_shape=(H, W))).to_rows()
    flip = ViewParams.of(view_affine(0, 0, H, W, flip=True, out_shape=(H, W))).to_rows()
    half = ViewParams.of(view_affine(0, 0, H, W, out_shape=(5, 10))).to_rows()
    crop = ViewParams.of(view_affine(2, 4, 6, 8, out_shape=(6, 8))).to_rows()
    b = torch.tensor([[0.0, 0.0, 1.0, 1.0], [3.0, 2.0, 9.0, 7.0], [0.0, 0.0, 20.0, 10.0]], dtype=torch.float64)
    assert torch.equal(map_boxes(b, ident, out_size=(H, W))[0], b)
    assert torch.equal(map_boxes(b, flip, out_size=(H, W))[0],
                       torch.tensor([[19.0, 0.0, 20.0, 1.0], [11.0, 2.0, 17.0, 7.0], [0.0, 0.0, 20.0, 10.0]]))
    torch.testing.assert_close(map_boxes(b, half, out_size=(5, 10))[0], b / 2, rtol=0, atol=1e-12)
    out, keep = map_boxes(b, crop, out_size=(6, 8))                          # pixel 0 is outside the crop
    assert keep.tolist() == [False, True, True]
    torch.testing.assert_close(out, torch.tensor([[0.0, 0.0, 5.0, 5.0], [0.0, 0.0, 8.0, 6.0]], dtype=torch.float64))
    empty, keep = map_boxes(torch.zeros(0, 4), ident, out_size=(H, W))
    assert empty.shape == (0, 4) and keep.shape == (0,)
    with pytest.raises(ValueError, match=r"\(N, 4\)"):
        map_boxes(torch.zeros(3, 5), ident, out_size=H)


@pytest.mark.parametrize("out_shape", [(64, 64), (40, 96)])
def test_a_box_holds_the_op_view_of_its_region(gen, out_shape):
    """The op's bright pixels of a rectangle, and its mask through warp_mask, lie in the mapped box."""
    img, box = _blob_image(gen)
    H, W = img.shape
    mask = torch.zeros(1, H, W, dtype=torch.int64)
    mask[0, box[1]:box[3], box[0]:box[2]] = 1
    for _ in range(6):
        row = _random_view(gen, H, W, out_shape)
        mapped, keep = map_boxes(torch.tensor([box], dtype=torch.float64), row, out_size=out_shape)
        view = augment_op(img[None], row.view(1, 1, 13), out_size=out_shape, views=1, dtype=torch.float32)[0, 0]
        labels = warp_mask(mask, row.view(1, 1, 13), out_size=out_shape)[0, 0]
        if not keep.any():
            assert not (labels == 1).any() and not (view > 0.93).any()
            continue
        (x0, y0, x1, y1) = mapped.T
        vv, uu = torch.meshgrid(torch.arange(out_shape[0]) + 0.5, torch.arange(out_shape[1]) + 0.5, indexing="ij")
        eps = 1e-9
        inside = (uu >= x0[0] - eps) & (uu <= x1[0] + eps) & (vv >= y0[0] - eps) & (vv <= y1[0] + eps)
        assert not (labels == 1)[~inside].any(), gen.initial_seed()
        assert not (view > 0.93)[~inside].any(), gen.initial_seed()        # only the rectangle is that bright


# --- views onto (h, w) outputs -----------------------------------------------------------------
@pytest.mark.parametrize("fit", ["pad", "crop", "squash"])
def test_resize_views_fit_a_non_square_output(gen, fit):
    from medcl.data.augment import resize_views

    img = torch.rand(1, 40, 40, generator=gen) * 0.8 + 0.1                  # a square image into 20 × 60
    out = augment_op(img, resize_views(torch.tensor([[40, 40]]), (20, 60), fit), out_size=(20, 60), views=1,
                     dtype=torch.float32)[0, 0]
    if fit == "pad":      # the whole image, 20 × 20 in the middle, black bands beside it
        assert out[:, :20].abs().max() == 0 and out[:, 40:].abs().max() == 0 and out[:, 20:40].min() > 0
    else:                 # crop: the middle 40 × 13.3 band; squash: the whole image stretched; no band
        assert out.min() > 0
    p = ViewParams.from_rows(resize_views(torch.tensor([[40, 40]]), (20, 60), fit))
    stretch = float(p.a00 / p.a11)                                          # input px per output px, x over y
    assert stretch == pytest.approx(1.0 if fit != "squash" else 1 / 3)
    same = resize_views(torch.tensor([[30, 90]]), (20, 60), fit)          # the output's aspect: the whole image
    assert ViewParams.from_rows(same).a00.item() == pytest.approx(1.5) and same[0, 0, 2] == pytest.approx(0.25)


@pytest.mark.parametrize("fit", ["pad", "crop"])
def test_random_views_keep_their_drawn_ratio_on_a_non_square_output(gen, fit):
    from medcl.data import AugmentConfig
    from medcl.data.augment import sample_views

    cfg = AugmentConfig(rotation=0.0, crop_ratio=(0.8, 1.25))
    sizes = torch.tensor([[120, 90], [64, 200], [100, 100]])
    p = ViewParams.from_rows(sample_views(cfg, sizes, (32, 96), 20, gen, fit))    # (3, 20) fields
    stretch = (p.a00 / p.a11).abs()                                         # the drawn ratio, rounding aside
    assert (stretch > 0.8 * 0.9).all() and (stretch < 1.25 * 1.1).all(), gen.initial_seed()
    assert torch.equal(sample_views(cfg, sizes, 96, 2, torch.Generator().manual_seed(3), fit),
                       sample_views(cfg, sizes, (96, 96), 2, torch.Generator().manual_seed(3), fit))


# --- recipes: (h, w) outputs and masks rendered in batches -------------------------------------
def test_render_outputs_of_any_shape_and_masks(paths, gen):
    from medcl.data import ImageDataset, load_cohort
    from medcl.data.recipes import Request, collate_raw, render
    from medcl.io.pixels import decode_raw

    cohort = load_cohort(paths["manifest"], modalities=("image",), log_summary=False)
    item = ImageDataset(cohort, 32, split="train").recipe(0)
    images, sizes, _ = decode_raw(item["raws"])
    H, W = sizes[0].tolist()
    params = torch.stack([_random_view(gen, H, W, (24, 40), tone=True) for _ in range(3)])[None]   # (1, 3, 13)
    item["requests"] = {"image": Request([0], params, (24, 40)), "mask": Request([0], params, (24, 40), mode="mask"),
                        "square": Request([0], params[:, :1], 16, squeeze=True)}
    assert item["requests"]["square"].shape == (16, 16)
    batch = render(collate_raw([item, item]), "cpu")
    want = augment_op(images, params, out_size=(24, 40), views=3, sizes=sizes, dtype=torch.float32)   # (1, 3, h, w)
    labels = warp_mask(images, params, out_size=(24, 40), sizes=sizes)
    assert batch["image"].shape == (2, 3, 1, 24, 40) and batch["mask"].shape == (2, 3, 1, 24, 40)
    assert batch["square"].shape == (2, 1, 16, 16)
    for b in range(2):
        assert torch.equal(batch["image"][b, :, 0], want[0]) and torch.equal(batch["mask"][b, :, 0], labels[0])
    assert torch.isin(batch["mask"], torch.cat([images[0, :H, :W].flatten(), torch.zeros(1)])).all()   # never blended
    with pytest.raises(ValueError, match="mode"):
        Request([0], params, 8, mode="blur")
