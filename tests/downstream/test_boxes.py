"""downstream.boxes: IoU and NMS against plain-Python float64 references, FROC on hand-made cases
and against a brute-force sweep of score thresholds."""
import pytest
import torch

from medcl.downstream.boxes import box_iou, froc, nms


def _random_boxes(gen, n, size=100.0):
    xy = torch.rand(n, 2, generator=gen, dtype=torch.float64) * size
    wh = torch.rand(n, 2, generator=gen, dtype=torch.float64) * size / 3
    wh[torch.rand(n, generator=gen) < 0.1] = 0.0                          # some empty boxes
    return torch.cat([xy, xy + wh], 1)


def _iou_ref(a, b):
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def test_iou_matches_the_float64_reference(gen):
    a, b = _random_boxes(gen, 17), _random_boxes(gen, 9)
    got = box_iou(a.float(), b.float())
    want = torch.tensor([[_iou_ref(x.tolist(), y.tolist()) for y in b] for x in a], dtype=torch.float64)
    torch.testing.assert_close(got.double(), want, rtol=1e-5, atol=1e-6)
    assert torch.equal(box_iou(a, a).diagonal() > 0, (a[:, 2:] > a[:, :2]).all(1))   # a real box overlaps itself


def _nms_ref(boxes, scores, thr):
    order = sorted(range(len(scores)), key=lambda i: (-float(scores[i]), i))
    keep = []
    for i in order:
        if all(_iou_ref(boxes[i].tolist(), boxes[k].tolist()) <= thr for k in keep):
            keep.append(i)
    return keep


@pytest.mark.parametrize("thr", [0.0, 0.3, 0.5, 0.9])
def test_nms_matches_the_reference(gen, thr):
    boxes = _random_boxes(gen, 40, size=40.0)
    scores = torch.randint(0, 8, (40,), generator=gen).double()          # ties too
    assert nms(boxes, scores, thr).tolist() == _nms_ref(boxes, scores, thr), gen.initial_seed()
    assert nms(boxes[:0], scores[:0], thr).tolist() == []
    with pytest.raises(ValueError, match="nms: expected"):
        nms(boxes[:, :3], scores, thr)


def test_froc_on_a_hand_made_case():
    t = torch.tensor([[0, 0, 10, 10], [20, 20, 30, 30]], dtype=torch.float64)
    preds = [(torch.tensor([[0, 0, 10, 10], [1, 1, 10, 10], [50, 50, 60, 60], [20, 20, 30, 30]], dtype=torch.float64),
              torch.tensor([0.9, 0.8, 0.7, 0.2])),                 # TP, duplicate, FP, TP
             (torch.tensor([[5, 5, 9, 9]], dtype=torch.float64), torch.tensor([0.95]))]   # FP on an image without truth
    truths = [t, t[:0]]
    # thresholds: 0.95 → 0 found, 0.5 FP/img; 0.9 → 1/2, 0.5; 0.7 → 1/2, 1.0; 0.2 → 2/2, 1.0
    assert froc(preds, truths, rates=(0.25, 0.5, 1.0, 4.0)) == {0.25: 0.0, 0.5: 0.5, 1.0: 1.0, 4.0: 1.0}
    assert froc([(t[:0], torch.zeros(0))], [t])[1.0] == 0.0
    assert all(v != v for v in froc([(t, torch.ones(2))], [t[:0]]).values())  # no true box: NaN


def _froc_brute(preds, truths, thr, rates):
    total = sum(len(t) for t in truths)
    best = {r: 0.0 for r in rates}
    for cut in sorted({float(s) for _, sc in preds for s in sc}):
        found = fps = 0
        for (boxes, scores), truth in zip(preds, truths):
            taken = set()
            for i in sorted(range(len(scores)), key=lambda i: -float(scores[i])):
                if float(scores[i]) < cut:
                    continue
                hit = [j for j in range(len(truth)) if _iou_ref(boxes[i].tolist(), truth[j].tolist()) >= thr]
                free = [j for j in hit if j not in taken]
                if free:
                    taken.add(free[0])
                    found += 1
                elif not hit:
                    fps += 1
        for r in rates:
            if fps / len(truths) <= r:
                best[r] = max(best[r], found / total)
    return best


def test_froc_matches_a_brute_force_sweep(gen):
    truths = [_random_boxes(gen, int(torch.randint(0, 4, (), generator=gen)), 60.0) for _ in range(6)]
    preds = []
    for t in truths:
        jitter = t + torch.randn(t.shape, generator=gen, dtype=torch.float64)
        extra = _random_boxes(gen, 5, 60.0)
        boxes = torch.cat([jitter, extra])
        preds.append((boxes, torch.rand(len(boxes), generator=gen, dtype=torch.float64)))
    if sum(len(t) for t in truths) == 0:
        truths[0] = _random_boxes(gen, 1, 60.0)
    rates = (0.5, 1.0, 2.0, 4.0)
    got = froc(preds, truths, iou_threshold=0.4, rates=rates)
    want = _froc_brute(preds, truths, 0.4, rates)
    assert got == pytest.approx(want), gen.initial_seed()
