"""The planted effects are measurable from the written files alone.

The measurements here are deliberately independent of the generator's code:
they read the DICOM files like any user would (rescale applied, MONOCHROME1
undone) and segment the lungs with a per-row half-maximum threshold.
"""
from __future__ import annotations

import csv

import numpy as np
import pydicom
import pytest


def _rows(path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def display(path) -> np.ndarray:
    """(H, W) float display values, bright = dense: rescale applied, MONOCHROME1 inverted."""
    ds = pydicom.dcmread(path)
    v = ds.pixel_array.astype(np.float64) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    return -v if ds.PhotometricInterpretation == "MONOCHROME1" else v


def _runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Starts and (exclusive) ends of the True runs of a 1-D mask."""
    d = np.diff(np.r_[0, mask.astype(np.int8), 0])
    return np.flatnonzero(d == 1), np.flatnonzero(d == -1)


def measure_ctr(img: np.ndarray) -> float:
    """Cardiothoracic ratio: widest heart shadow / widest thorax, from lung edges per row.

    Rows are smoothed vertically over about one rib spacing (ribs then barely
    break the lungs); in each row the lungs are the dark runs either side of
    the centre, dark meaning below halfway between the row's lung level and
    its centre level. Only rows of the lower chest count: thorax >= 90% of its
    widest (not the apices) and the image-left lung >= 60% of its widest (not
    the costophrenic tips).
    """
    h, w = img.shape
    k = max(3, round(0.055 * h))
    x = np.apply_along_axis(lambda r: np.convolve(r, np.ones(k) / k, mode="valid"), 0, img)
    c0 = w // 2
    edges = []  # (left lung start, left lung end, right lung start, right lung end)
    for row in x:
        centre = np.median(row[c0 - w // 10:c0 + w // 10])
        lung = np.percentile(row[w // 8:-w // 8], 5)
        dark = row < (lung + centre) / 2
        if centre <= lung or dark[c0]:
            continue
        s, e = _runs(dark)
        left, right = np.flatnonzero(e <= c0), np.flatnonzero(s > c0)
        if left.size == 0 or right.size == 0:
            continue
        li, ri = left[-1], right[0]
        if s[li] > 0 and e[ri] < w:  # runs touching the border are background
            edges.append((s[li], e[li], s[ri], e[ri]))
    if len(edges) < 3:
        return np.nan
    r = np.array(edges, dtype=float)
    thorax, left_lung = r[:, 3] - r[:, 0], r[:, 1] - r[:, 0]
    use = (thorax >= 0.9 * thorax.max()) & (left_lung >= 0.6 * left_lung.max())
    heart = r[use, 2] - r[use, 1]
    if heart.size < 3:
        return np.nan
    heart = np.median(np.lib.stride_tricks.sliding_window_view(heart, 3), axis=1)  # drop single-row outliers
    return float(heart.max() / thorax.max())


def bone_contrast(img: np.ndarray) -> float:
    """Bright-bone excess over the soft-tissue level, per unit soft-tissue over air (exposure-free)."""
    p1, p50, p99 = np.percentile(img, [1, 50, 99.5])
    return float((p99 - p50) / (p50 - p1))


@pytest.fixture(scope="module")
def measured(cohort):
    labels = {r["IID"]: r for r in _rows(cohort.paths["labels"])}
    rows = []
    for r in _rows(cohort.paths["manifest"]):
        lab = labels[r["IID"]]
        rows.append(dict(iid=r["IID"], visit=int(r["visit"]), ctr=float(lab["ctr"]),
                         bone=float(lab["bone_density"]),
                         ctr_img=measure_ctr(display(cohort.out / r["path"])),
                         bone_img=bone_contrast(display(cohort.out / r["bone_path"]))))
    return rows


def test_heart_width_on_the_image_follows_trait1(cohort, measured):
    m = np.array([r["ctr_img"] for r in measured])
    t = np.array([r["ctr"] for r in measured])  # ctr = 0.45 + 0.05 * trait1 (clipped)
    ok = ~np.isnan(m)
    assert ok.mean() > 0.95, cohort.seed
    r = np.corrcoef(m[ok], t[ok])[0, 1]
    print(f"seed {cohort.seed}: r(image ctr, trait-1 ctr) = {r:.3f} over {ok.sum()} images")
    assert r > 0.5, (cohort.seed, r)
    assert abs(np.median(m[ok]) - 0.45) < 0.05, (cohort.seed, np.median(m[ok]))


def test_heart_width_does_not_follow_bone_density(cohort, measured):
    m = np.array([r["ctr_img"] for r in measured])
    b = np.array([r["bone"] for r in measured])
    ok = ~np.isnan(m)
    assert abs(np.corrcoef(m[ok], b[ok])[0, 1]) < 0.3, cohort.seed


def test_bone_image_follows_bone_density(cohort, measured):
    c = np.array([r["bone_img"] for r in measured])
    b = np.array([r["bone"] for r in measured])
    r = np.corrcoef(c, b)[0, 1]
    print(f"seed {cohort.seed}: r(bone-image contrast, bone_density) = {r:.3f}")
    assert r > 0.5, (cohort.seed, r)


def test_follow_up_keeps_the_anatomy(cohort, measured):
    by = {}
    for r in measured:
        by.setdefault(r["iid"], {})[r["visit"]] = r["ctr_img"]
    pairs = np.array([(v[1], v[2]) for v in by.values() if 2 in v and not np.isnan([v[1], v[2]]).any()])
    assert len(pairs) > 20
    r = np.corrcoef(pairs.T)[0, 1]
    assert r > 0.7, (cohort.seed, r)


def test_follow_up_is_a_new_exposure(cohort):
    man = _rows(cohort.paths["manifest"])
    iid = next(r["IID"] for r in man if r["visit"] == "2")
    paths = [cohort.out / r["path"] for r in man if r["IID"] == iid]
    a, b = (display(p) for p in paths)
    assert not np.allclose(a, b)


def test_bone_image_is_co_registered(cohort):
    man = [r for r in _rows(cohort.paths["manifest"]) if r["visit"] == "1"][:20]

    def z(img):
        smooth = np.apply_along_axis(lambda c: np.convolve(c, np.ones(9) / 9, mode="valid"), 0, img)
        hp = img[4:-4] - smooth  # vertical high-pass (no padded rows): rib and organ edges
        return (hp - hp.mean()) / hp.std()

    std = [z(display(cohort.out / r["path"])) for r in man]
    bone = [z(display(cohort.out / r["bone_path"])) for r in man]
    same = [np.mean(s * b) for s, b in zip(std, bone)]
    other = [np.mean(s * b) for s, b in zip(std, bone[1:] + bone[:1])]
    assert np.median(same) > 0.5 and np.median(same) > np.median(other) + 0.4, (cohort.seed, same, other)


def test_prs_tracks_trait1_and_burden_drives_bone(cohort):
    labels = {r["IID"]: r for r in _rows(cohort.paths["labels"])}
    prs = [(float(r["prs"]), float(labels[r["IID"]]["ctr"])) for r in _rows(cohort.paths["prs"]) if r["prs"]]
    r_prs = np.corrcoef(np.array(prs).T)[0, 1]
    assert 0.4 < r_prs < 0.8, (cohort.seed, r_prs)
    burden = _rows(cohort.paths["burden"])
    bone = np.array([float(labels[r["IID"]]["bone_density"]) for r in burden])
    text = cohort.paths["readme"].read_text()
    driver = next(g for g in list(burden[0])[2:] if f"{g} is the driver gene" in text)
    b = np.array([int(r[driver]) for r in burden])
    r_b = np.corrcoef(b, bone)[0, 1]
    assert r_b < -0.25, (cohort.seed, r_b)
