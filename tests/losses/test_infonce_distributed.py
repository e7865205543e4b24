"""contrastive_loss and ntxent_loss with distributed=True under 2 gloo processes equal the
single-process loss on the concatenated batch (values and gradients, unequal rows per rank,
masks, learnable τ)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from medcl.losses import contrastive_loss, ntxent_loss

WORKER = Path(__file__).with_name("ddp_infonce_worker.py")


@pytest.mark.parametrize("loss", ["contrastive", "ntxent"])
@pytest.mark.parametrize("bounds", [(0, 6, 12), (0, 5, 13)])
def test_two_gloo_processes_equal_one_process(tmp_path, gen, bounds, loss):
    B, D, W = bounds[-1], 7, 2
    a = torch.randn(B, D, generator=gen, dtype=torch.float64)
    b = torch.randn(B, D, generator=gen, dtype=torch.float64)
    mask_a, mask_b = torch.rand(B, generator=gen) < 0.8, torch.rand(B, generator=gen) < 0.8
    mask_a[0] = mask_b[0] = True
    tau = torch.tensor(0.2, dtype=torch.float64)
    torch.save({"a": a, "b": b, "mask_a": mask_a, "mask_b": mask_b, "tau": tau, "alpha": 0.75,
                "bounds": list(bounds), "loss": loss}, tmp_path / "inputs.pt")
    procs = [subprocess.Popen([sys.executable, str(WORKER), str(r), str(W), str(tmp_path)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for r in range(W)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * W, outs
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(W)]

    x, y = a.clone().requires_grad_(True), b.clone().requires_grad_(True)
    t = tau.clone().requires_grad_(True)
    if loss == "ntxent":
        want = ntxent_loss(x, y, temperature=t)
    else:
        want = contrastive_loss(x, y, temperature=t, alpha=0.75, mask_a=mask_a, mask_b=mask_b)
    want.backward()
    for r in ranks:                      # every rank reports the global loss
        assert abs(float(r["loss"]) - float(want.detach())) < 1e-10
    # Each rank's gradient is W x the global gradient of its rows (DDP then averages).
    ga = torch.cat([r["a"] for r in ranks]) / W
    gb = torch.cat([r["b"] for r in ranks]) / W
    gt = sum(r["tau"] for r in ranks) / W
    assert torch.allclose(ga, x.grad, rtol=1e-5, atol=1e-10)
    assert torch.allclose(gb, y.grad, rtol=1e-5, atol=1e-10)
    assert torch.allclose(gt, t.grad, rtol=1e-5, atol=1e-10)
