"""--fit: non-square images padded (default), cropped or squashed into the square input, measured on
a disc drawn on a non-square frame; training views keep their drawn aspect ratio; the choice reaches
the run's config.yaml and the weights, and embed uses it."""
from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from PIL import Image

from medcl.data import AugmentConfig, ImageDataset, load_cohort, make_loader
from medcl.data.augment import resize_views, sample_views
from medcl.data.fit import DEFAULT_FIT, FITS, crop_frame, fit_box, run_fit
from medcl.data.datasets.puzzle import PuzzleDataset
from medcl.data.datasets.views import ViewsDataset
from oracles import rendered

S = 96
BACKGROUND, DISC = 0.3, 1.0


def _frame(gen, portrait=False):
    """(rows, cols) of a frame whose sides differ by 15–30%, landscape unless ``portrait``."""
    short = int(torch.randint(150, 260, (), generator=gen))
    long_ = int(round(short * float(1.15 + 0.15 * torch.rand((), generator=gen))))
    return (long_, short) if portrait else (short, long_)


def _disc_png(path, rows, cols, gen, radius_fraction=0.3):
    """A 16-bit PNG: a bright disc near the centre of a grey frame; returns (cy, cx, r) in pixels."""
    r = radius_fraction * min(rows, cols)
    cy = rows / 2 + float(torch.empty(()).uniform_(-0.05, 0.05, generator=gen)) * rows
    cx = cols / 2 + float(torch.empty(()).uniform_(-0.05, 0.05, generator=gen)) * cols
    yy, xx = np.mgrid[0:rows, 0:cols]
    img = np.where((yy - cy) ** 2 + (xx - cx) ** 2 <= r * r, DISC, BACKGROUND)
    Image.fromarray((img * 65535).round().astype(np.uint16)).save(path)
    return cy, cx, r


def _manifest(tmp_path, shapes, gen, split=None, radius_fraction=0.3):
    rows = []
    for k, (h, w) in enumerate(shapes):
        name = f"img{k}.png"
        _disc_png(tmp_path / name, h, w, gen, radius_fraction)
        rows.append({"FID": f"F{k}", "IID": f"I{k}", "path": name, **({"split": split[k]} if split else {})})
    path = tmp_path / "manifest.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def _blob(img: torch.Tensor):
    """(width / height, height in px) of the disc in a rendered (S, S) image: from the second
    moments of the pixels brighter than halfway between background and disc."""
    m = (img > (BACKGROUND + DISC) / 2).numpy()
    ys, xs = np.nonzero(m)
    return float(xs.std() / ys.std()), 4 * float(ys.std())           # a disc's std is r/2


@pytest.mark.parametrize("portrait", [False, True])
def test_pad_and_crop_keep_a_disc_round_squash_stretches_it(tmp_path, gen, portrait):
    h, w = _frame(gen, portrait)
    manifest = _manifest(tmp_path, [(h, w)], gen)
    out = {f: rendered(ImageDataset(manifest, S, fit=f))[0]["image"][0] for f in FITS}          # (S, S) each
    ratio = {f: _blob(img)[0] for f, img in out.items()}
    assert ratio["pad"] == pytest.approx(1.0, abs=0.03)
    assert ratio["crop"] == pytest.approx(1.0, abs=0.03)
    assert ratio["squash"] == pytest.approx(h / w, rel=0.03)                           # the old behaviour
    assert abs(ratio["squash"] - 1.0) > 0.1
    along = 0 if portrait else 1                     # a landscape frame gets black rows, a portrait one columns
    band = round(S * (1 - min(h, w) / max(h, w)) / 2)
    empty = {f: int((img.abs().sum(along) == 0).sum()) for f, img in out.items()}      # all-black lines
    assert abs(empty["pad"] - 2 * band) <= 2 and empty["crop"] == 0 and empty["squash"] == 0
    assert out["pad"].min() == 0 and float(out["crop"].min()) == pytest.approx(BACKGROUND, abs=0.01)
    # pad shows the whole frame at scale S / long side; crop fills the square at S / short side
    d_pad, d_crop = _blob(out["pad"])[1], _blob(out["crop"])[1]
    assert d_crop / d_pad == pytest.approx(max(h, w) / min(h, w), rel=0.04)


def test_square_images_are_the_same_in_every_mode(gen):
    side = int(torch.randint(40, 300, (), generator=gen))
    sizes = torch.tensor([[side, side]])
    seed = int(torch.randint(0, 2 ** 31, (), generator=gen))
    base = resize_views(sizes, S, "squash")
    views = sample_views(AugmentConfig(), sizes, S, 3, torch.Generator().manual_seed(seed), "squash")
    for f in FITS:
        assert torch.equal(resize_views(sizes, S, f), base)
        assert torch.equal(sample_views(AugmentConfig(), sizes, S, 3, torch.Generator().manual_seed(seed), f), views)
        assert fit_box(side, side, f) == (0.0, 0.0, float(side), float(side))


@pytest.mark.parametrize("fit", FITS)
def test_training_views_have_the_drawn_aspect_ratio(tmp_path, gen, fit):
    shapes = [_frame(gen, portrait=bool(k % 2)) for k in range(6)]
    manifest = _manifest(tmp_path, shapes, gen, radius_fraction=0.12)
    cohort = load_cohort(str(manifest), modalities=("image",), log_summary=False)
    cfg = AugmentConfig(crop_scale=(0.5, 0.7), rotation=0.0, jitter_p=0.0, noise=0.0)
    seed = int(torch.randint(0, 1000, (), generator=gen))
    ds = rendered(ViewsDataset(cohort, None, image_size=S, augment=cfg, seed=seed, fit=fit))
    lo, hi = cfg.crop_ratio
    checked = 0
    for i in range(len(ds)):
        recipe = ds.recipe(i)
        params = recipe["requests"]["views"].params[0]                                 # (2, 13)
        item = ds[i]
        rows, cols = recipe["raws"][0].rows, recipe["raws"][0].columns
        top, left, fh, fw = crop_frame(rows, cols, fit)
        for v in range(2):
            a00, a02, a11, a12 = (float(params[v, j]) for j in (0, 2, 4, 5))
            cw, ch = a00 * S, a11 * S                                                  # the crop box in pixels
            assert lo - 0.02 <= cw / ch <= hi + 0.02                                   # its drawn aspect ratio
            x_lo, x_hi = a02 - 0.5 * a00 + 0.5, a02 + (S - 0.5) * a00 + 0.5           # box: left, left + width
            y_lo, y_hi = a12 - 0.5 * a11 + 0.5, a12 + (S - 0.5) * a11 + 0.5
            assert left - 1e-6 <= x_lo and x_hi <= left + fw + 1e-6 and top - 1e-6 <= y_lo and y_hi <= top + fh + 1e-6
            # a disc the view shows whole has the box's aspect ratio: width / height = (S / cw) / (S / ch)
            img = item["views"][v, 0]
            edge = torch.cat([img[0], img[-1], img[:, 0], img[:, -1]])
            if bool((edge > (BACKGROUND + DISC) / 2).any()):
                continue
            assert _blob(img)[0] == pytest.approx(ch / cw, rel=0.04)
            checked += 1
    assert checked >= 2


def test_the_largest_padded_view_is_the_embedding_view(tmp_path, gen):
    manifest = _manifest(tmp_path, [_frame(gen), _frame(gen, portrait=True)], gen)
    cohort = load_cohort(str(manifest), modalities=("image",), log_summary=False)
    whole = AugmentConfig(crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), rotation=0.0, jitter_p=0.0, noise=0.0)
    views = rendered(ViewsDataset(cohort, None, image_size=S, augment=whole, seed=1, fit="pad"))
    embed = rendered(ImageDataset(cohort, S, fit="pad"))
    for i in range(len(views)):
        item = views[i]
        want = embed[int(np.flatnonzero(embed.rows == views.rows[i])[0])]["image"]
        assert torch.equal(item["views"][0], want) and torch.equal(item["views"][1], want)


def test_puzzle_images_are_fitted(tmp_path, gen):
    manifest = _manifest(tmp_path, [_frame(gen)], gen)
    cohort = load_cohort(str(manifest), modalities=("image",), log_summary=False)
    scale = {}
    for f in FITS:
        params = PuzzleDataset(cohort, None, grid=3, image_size=S, fit=f).recipe(0)["requests"]["tiles"].params
        scale[f] = (float(params[0, 0, 0]), float(params[0, 0, 4]))                    # (a00, a11) of a tile
    assert scale["pad"][0] == scale["pad"][1] and scale["crop"][0] == scale["crop"][1]
    assert scale["squash"][0] != pytest.approx(scale["squash"][1], rel=0.05)


def test_one_log_line_for_non_square_images_none_for_square(tmp_path, gen, caplog, monkeypatch):
    import medcl.data.fit as fit_module

    monkeypatch.setattr(fit_module, "_said", set())
    square = tmp_path / "sq"
    square.mkdir()
    ds = ImageDataset(_manifest(square, [(64, 64)] * 3, gen), 32)
    with caplog.at_level(logging.INFO, logger="medcl"):
        list(make_loader(ds, 2, shuffle=False))
    assert "non-square" not in caplog.text
    ds = ImageDataset(_manifest(tmp_path, [(64, 64), _frame(gen), (64, 64)], gen), 32, fit="crop")
    with caplog.at_level(logging.INFO, logger="medcl"):
        loader = make_loader(ds, 2, shuffle=False)
        for epoch in range(2):
            loader.set_epoch(epoch)
            batches = list(loader)
    assert caplog.text.count("non-square images are centre-cropped") == 1
    assert all("nonsquare" not in b for b in batches)                                   # popped by the loader


def test_run_fit_reads_the_weights_then_the_run_config(tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    weights, ckpt = run / "encoder.safetensors", run / "checkpoints" / "last.pt"
    assert run_fit({"preprocessing": {"fit": "crop"}}, weights) == ("crop", "the weights' metadata")
    assert run_fit({}, weights) == (DEFAULT_FIT, "the default")
    assert run_fit({"preprocessing": {"image_size": 32}}, weights)[0] == "squash"       # medcl before --fit
    (run / "config.yaml").write_text(yaml.safe_dump({"image_size": 32, "fit": "crop"}))
    assert run_fit({"preprocessing": {"image_size": 32}}, weights)[0] == "crop"
    assert run_fit({}, ckpt)[0] == "crop"                                              # RUN/checkpoints/*.pt
    (run / "config.yaml").write_text(yaml.safe_dump({"image_size": 32, "fit": "sideways"}))
    assert run_fit({}, ckpt)[0] == DEFAULT_FIT


def test_cli_default_is_the_library_default():
    from medcl.cli.options import FITS as CLI_FITS
    assert CLI_FITS == FITS and CLI_FITS[0] == DEFAULT_FIT


@pytest.mark.slow
def test_pretrain_records_fit_and_embed_and_finetune_use_it(tmp_path, gen, capsys, monkeypatch):
    import medcl.data.fit as fit_module
    from medcl.cli import main
    from medcl.train.export import load_weights

    monkeypatch.setattr(fit_module, "_said", set())

    n = 24
    shapes = [_frame(gen, portrait=bool(k % 3 == 0)) for k in range(n)]
    split = ["train"] * 16 + ["val"] * 4 + ["test"] * 4
    manifest = _manifest(tmp_path, shapes, gen, split=split)
    run = tmp_path / "run"
    assert main(["pretrain", "--method", "simclr", "--data", str(manifest), "--out", str(run), "--fit", "crop",
                 "--epochs", "1", "--arch", "resnet18", "--width", "0.125", "--image-size", "32", "--batch-size", "8",
                 "--workers", "0", "--head-hidden", "16", "--proj-dim", "8", "--device", "cpu"]) == 0
    assert "non-square images are centre-cropped" in capsys.readouterr().err
    assert yaml.safe_load((run / "config.yaml").read_text())["fit"] == "crop"
    assert load_weights(run / "encoder.safetensors")[1]["preprocessing"]["fit"] == "crop"
    emb = {}
    for name, extra in (("inherit", []), ("crop", ["--fit", "crop"])):     # crop and pad differ (tests above)
        out = tmp_path / f"emb_{name}.npy"
        assert main(["embed", str(run / "encoder.safetensors"), "--data", str(manifest), "--out", str(out),
                     "--format", "npy", "--workers", "0", "--device", "cpu", *extra]) == 0
        emb[name] = np.load(out)
    assert np.array_equal(emb["inherit"], emb["crop"])
    labels = tmp_path / "labels.csv"
    pd.DataFrame({"FID": [f"F{k}" for k in range(n)], "IID": [f"I{k}" for k in range(n)],
                  "y": [k % 2 for k in range(n)]}).to_csv(labels, index=False)
    out = tmp_path / "ft"
    assert main(["finetune", str(run / "checkpoints" / "last.pt"), "--data", str(manifest), "--labels", str(labels),
                 "--target", "y", "--fractions", "1", "--repeats", "1", "--baseline", "none", "--out", str(out),
                 "--workers", "0", "--device", "cpu"]) == 0
    import json
    assert json.loads((out / "metrics.json").read_text())["config"]["fit"] == "crop"
