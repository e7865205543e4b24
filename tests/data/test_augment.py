"""Augmentation: identity parameters, reproducibility from the generator, ranges and shapes."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from medcl.data import AugmentConfig, AugmentParams, sample_params
from oracles import apply_params, augment, eval_transform
from medcl.data.augment import resize_views
from medcl.ops import augment as augment_op


def _image(gen, h=90, w=70):
    return torch.rand(h, w, generator=gen)  # (H, W) in [0, 1]


@pytest.mark.parametrize("fit", ["pad", "crop", "squash"])
def test_fitted_parameters_give_the_resized_image(gen, fit):
    x = _image(gen)
    out = apply_params(x, AugmentParams.fitted(90, 70, fit), 48)
    ref = augment_op(x[None], resize_views(torch.tensor([[90, 70]]), 48, fit), out_size=48, views=1,
                     dtype=torch.float32)[0]                                  # the op's eval transform
    assert out.shape == (1, 48, 48) and out.dtype == torch.float32
    torch.testing.assert_close(out, ref, rtol=0, atol=0)
    torch.testing.assert_close(eval_transform(x, 48, fit), out, rtol=0, atol=0)
    torch.testing.assert_close(augment(x, AugmentConfig(enabled=False), 48, gen, fit), out, rtol=0, atol=0)
    torch.testing.assert_close(augment(x, None, 48, gen, fit), out, rtol=0, atol=0)
    if fit == "squash":
        assert AugmentParams.fitted(90, 70, fit) == AugmentParams.identity(90, 70)
        smooth = F.interpolate(x[None, None], size=(48, 48), mode="bilinear", antialias=True, align_corners=False)[0]
        assert (out - smooth).abs().mean() < 0.05                             # close to torch's antialiased resize
    if fit == "pad":                                                          # 90 rows → 48: 70 columns → 37.3
        torch.testing.assert_close(eval_transform(x, 48), out, rtol=0, atol=0)   # the default
        assert out[0, :, :5].abs().max() == 0 and out[0, :, -5:].abs().max() == 0 and out[0, :, 7:-7].min() > 0
    square = _image(gen, 40, 40)
    assert torch.equal(apply_params(square, AugmentParams.identity(40, 40), 40)[0], square)   # exact copy


def test_crop_and_flip_parameters(gen):
    x = _image(gen)
    p = AugmentParams(top=10, left=5, height=32, width=32, flip=True)
    out = apply_params(x, p, 32)                                              # a crop at its own size: no resampling
    torch.testing.assert_close(out, x[10:42, 5:37].flip(-1)[None], rtol=0, atol=0)


def test_rotation_turns_the_image(gen):
    x = torch.zeros(64, 64)
    x[:, 40:44] = 1.0  # a vertical bar right of centre
    out = apply_params(x, AugmentParams(top=0, left=0, height=64, width=64, angle=90.0), 64)[0]
    assert out[:, 40:44].mean() < 0.2  # it no longer stands there ...
    assert float(out.sum()) == pytest.approx(float(x.sum()), rel=0.05)  # ... but lies across, hardly clipped


def test_same_seed_same_view_and_global_rng_untouched(gen):
    x = _image(gen)
    seed = int(torch.randint(0, 2**31, (), generator=gen))
    state = torch.get_rng_state()
    a = augment(x, AugmentConfig(hflip=0.5), 40, torch.Generator().manual_seed(seed))
    b = augment(x, AugmentConfig(hflip=0.5), 40, torch.Generator().manual_seed(seed))
    c = augment(x, AugmentConfig(hflip=0.5), 40, torch.Generator().manual_seed(seed + 1))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(state, torch.get_rng_state())


@pytest.mark.parametrize("shape", [(90, 70), (1, 50, 120), (64, 64)])
def test_shapes_and_range(gen, shape):
    x = torch.rand(*shape, generator=gen)
    cfg = AugmentConfig(hflip=0.5, noise=0.1, brightness=0.3, contrast=0.5, jitter_p=1.0)
    for _ in range(20):
        out = augment(x, cfg, 33, gen)
        assert out.shape == (1, 33, 33) and out.dtype == torch.float32
        assert torch.isfinite(out).all() and out.min() >= 0 and out.max() <= 1
    with pytest.raises(ValueError):
        augment(torch.rand(2, 2, 8, 8), cfg, 8, gen)


def test_sampled_parameters_stay_in_range(gen):
    cfg = AugmentConfig()
    for _ in range(200):
        p = sample_params(cfg, 120, 80, gen, "crop")                             # crops inside the image
        assert 0 <= p.top and p.top + p.height <= 120 and 0 <= p.left and p.left + p.width <= 80
        area = p.height * p.width / (120 * 80)
        assert 0.45 <= area <= 1.0 + 1e-9 or (p.height, p.width) in ((107, 80), (120, 80))  # fallback
        assert abs(p.angle) <= cfg.rotation and not p.flip  # radiographs are not flipped by default
        assert cfg.gamma[0] - 1e-9 <= p.gamma <= cfg.gamma[1] + 1e-9
        assert 0 <= p.noise <= cfg.noise
        q = sample_params(cfg, 120, 80, gen, "pad")                              # crops of the 120² letterbox
        assert 0 <= q.top and q.top + q.height <= 120 and -20 <= q.left and q.left + q.width <= 100
        assert 0.45 <= q.height * q.width / 120 ** 2 <= 1.0 + 1e-9
