"""medcl.losses.ContigLoss: per-modality terms, missing modalities, the mean over present
modalities, ContIG's defaults and direction weighting."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from medcl.losses import ContigLoss, ContigLossConfig
from medcl.losses import contrastive_loss

NAMES = ["snp", "prs", "burden"]


def _batch(gen, B=10, D=6, names=NAMES, device="cpu", dtype=torch.float64, min_kept=2):
    image = torch.randn(B, D, generator=gen, dtype=dtype)
    embs = {n: torch.randn(B, D, generator=gen, dtype=dtype) for n in names}
    masks = {}
    for n in names:
        m = torch.rand(B, generator=gen) < 0.7
        m[torch.randperm(B, generator=gen)[:min_kept]] = True
        masks[n] = m
    return (image.to(device), {n: z.to(device) for n, z in embs.items()},
            {n: m.to(device) for n, m in masks.items()})


def test_defaults_are_contigs():
    loss = ContigLoss()
    assert (loss.temperature, loss.alpha, loss.normalize) == (0.1, 0.75, True)
    cfg = ContigLossConfig()
    assert (cfg.temperature, cfg.alpha, cfg.normalize) == (0.1, 0.75, True)
    other = ContigLoss.from_config(ContigLossConfig(temperature=0.2, alpha=0.6, normalize=False))
    assert (other.temperature, other.alpha, other.normalize) == (0.2, 0.6, False)


def test_total_is_mean_of_per_modality_contrastive_losses(device, gen):
    image, embs, masks = _batch(gen, device=device)
    image.requires_grad_(True)
    loss = ContigLoss(temperature=0.15, alpha=0.75)
    total, terms = loss(image, embs, masks)
    assert list(terms) == NAMES
    want_terms = {n: contrastive_loss(image, embs[n], temperature=0.15, alpha=0.75, mask_a=masks[n],
                                      mask_b=masks[n]) for n in NAMES}
    for n in NAMES:
        torch.testing.assert_close(terms[n], want_terms[n], rtol=0, atol=0)
        assert float(terms[n].detach()) > 0
    want = sum(want_terms.values()) / len(NAMES)
    torch.testing.assert_close(total, want, rtol=1e-14, atol=0)
    (g,) = torch.autograd.grad(total, image)
    (g_want,) = torch.autograd.grad(want, image)
    torch.testing.assert_close(g, g_want, rtol=1e-12, atol=1e-15)


def test_alpha_weights_image_to_modality(gen):
    image, embs, _ = _batch(gen, names=["snp"])
    tau = 0.1
    logits = F.normalize(image, dim=1) @ F.normalize(embs["snp"], dim=1).T / tau    # (B, B) image × snp
    labels = torch.arange(image.shape[0])
    image_to_snp, snp_to_image = F.cross_entropy(logits, labels), F.cross_entropy(logits.T, labels)
    assert abs(float(image_to_snp - snp_to_image)) > 1e-6
    for alpha in (0.75, 1.0, 0.0):
        total, _ = ContigLoss(alpha=alpha)(image, embs)
        torch.testing.assert_close(total, alpha * image_to_snp + (1 - alpha) * snp_to_image, rtol=1e-12, atol=0)


def test_missing_person_is_out_of_that_modality_only(gen):
    image, embs, masks = _batch(gen, B=12)
    p = int(torch.randint(0, 12, (), generator=gen))
    masks["snp"][p] = False                                       # p lacks snp ...
    masks["prs"][p] = masks["burden"][p] = True                    # ... but has the others
    loss = ContigLoss()
    total, terms = loss(image, embs, masks)
    # p's snp row may hold anything: nothing changes.
    embs2 = dict(embs, snp=embs["snp"].clone())
    embs2["snp"][p] = float("nan")
    total2, terms2 = loss(image, embs2, masks)
    torch.testing.assert_close(total2, total, rtol=0, atol=0)
    # p's image row: snp's term is unchanged, the others (and the total) change.
    image3 = image.clone()
    image3[p] = torch.randn(image.shape[1], generator=gen, dtype=image.dtype)
    total3, terms3 = loss(image3, embs, masks)
    torch.testing.assert_close(terms3["snp"], terms["snp"], rtol=0, atol=0)
    for n in ("prs", "burden"):
        assert float(terms3[n]) != float(terms[n]), n
    assert float(total3) != float(total)


def test_masking_equals_dropping_the_people_from_that_modality(gen):
    """Outer aggregation (mask) gives each modality's term exactly as if the people lacking it
    were not in the batch for that modality (neither anchors nor negatives)."""
    image, embs, masks = _batch(gen, B=11)
    _, terms = ContigLoss(alpha=0.75)(image, embs, masks)
    for n in NAMES:
        keep = masks[n]
        _, sub = ContigLoss(alpha=0.75)(image[keep], {n: embs[n][keep]})
        torch.testing.assert_close(terms[n], sub[n], rtol=1e-12, atol=0)


@pytest.mark.parametrize("kept", [0, 1])
def test_modality_with_fewer_than_two_people_is_left_out_of_the_mean(gen, kept):
    image, embs, masks = _batch(gen, B=9)
    masks["prs"] = torch.zeros(9, dtype=torch.bool)
    masks["prs"][:kept] = True
    image.requires_grad_(True)
    total, terms = ContigLoss()(image, embs, masks)
    assert float(terms["prs"].detach()) == 0.0
    want = (terms["snp"] + terms["burden"]) / 2
    torch.testing.assert_close(total, want, rtol=1e-14, atol=0)
    assert float(total.detach()) > 0
    (g,) = torch.autograd.grad(total, image)
    assert torch.isfinite(g).all() and float(g.abs().sum()) > 0


def test_no_modality_qualifies_gives_connected_zero(device, gen):
    image, embs, masks = _batch(gen, B=6, device=device, dtype=torch.float32, min_kept=0)
    masks = {n: torch.zeros(6, dtype=torch.bool, device=device) for n in NAMES}
    masks["snp"][2] = True
    image.requires_grad_(True)
    for z in embs.values():
        z.requires_grad_(True)
    total, terms = ContigLoss()(image, embs, masks)
    assert total.item() == 0.0 and total.requires_grad and all(t.item() == 0.0 for t in terms.values())
    grads = torch.autograd.grad(total, [image, *embs.values()])
    assert all(torch.isfinite(g).all() and float(g.abs().max()) == 0.0 for g in grads)


def test_omitted_masks_keep_everyone(gen):
    image, embs, masks = _batch(gen)
    everyone = {n: torch.ones(image.shape[0], dtype=torch.bool) for n in NAMES}
    want_total, want_terms = ContigLoss()(image, embs, everyone)
    for given in (None, {}, {"snp": everyone["snp"]}):
        total, terms = ContigLoss()(image, embs, given)
        torch.testing.assert_close(total, want_total, rtol=0, atol=0)
    partial_total, partial_terms = ContigLoss()(image, embs, {"snp": masks["snp"]})
    torch.testing.assert_close(partial_terms["prs"], want_terms["prs"], rtol=0, atol=0)
    if not bool(masks["snp"].all()):
        assert float(partial_terms["snp"]) != float(want_terms["snp"])


def test_float32_against_float64(gen):
    image, embs, masks = _batch(gen, B=16, D=12)
    image, embs = image.float().double(), {n: z.float().double() for n, z in embs.items()}
    want, _ = ContigLoss()(image, embs, masks)
    got, _ = ContigLoss()(image.float(), {n: z.float() for n, z in embs.items()}, masks)
    assert got.dtype == torch.float32
    assert float((got.double() - want).abs() / want.abs().clamp_min(1.0)) < 1e-5


def test_rejects_bad_arguments(gen):
    image, embs, masks = _batch(gen)
    with pytest.raises(ValueError, match="no genetic modality"):
        ContigLoss()(image, {})
    with pytest.raises(ValueError, match="without embeddings"):
        ContigLoss()(image, {"snp": embs["snp"]}, masks)
    with pytest.raises(ValueError, match="bool"):
        ContigLoss()(image, embs, {"snp": masks["snp"].long()})
    with pytest.raises(ValueError, match="same shape"):
        ContigLoss()(image, {"snp": embs["snp"][:, :3]})
    with pytest.raises(ValueError, match="temperature"):
        ContigLoss(temperature=0.0)
    with pytest.raises(ValueError, match="alpha"):
        ContigLoss(alpha=-0.1)
