"""ContIG method: loss terms, masks, retrieval, and 2 gloo processes == 1 process."""
from __future__ import annotations

import importlib.util
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch

from medcl.methods.retrieval import topk_accuracy

WORKER = Path(__file__).with_name("ddp_contig_worker.py")
_spec = importlib.util.spec_from_file_location("ddp_contig_worker", WORKER)
_worker_module = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_worker_module)
_method = _worker_module.make_method


def _batch(B, gen):
    present_prs = torch.rand(B, generator=gen) > 0.3
    present_prs[:2] = True
    return {"image": torch.rand(B, 1, 32, 32, generator=gen, dtype=torch.float64),
            "genetics": {"snp": torch.randn(B, 12, generator=gen, dtype=torch.float64),
                         "prs": torch.randn(B, 1, generator=gen, dtype=torch.float64)},
            "present": {"snp": torch.ones(B, dtype=torch.bool), "prs": present_prs},
            "index": torch.arange(B), "person": torch.arange(B)}


def test_forward_terms_and_mean(gen):
    m = _method()
    out = m(_batch(8, gen))
    assert set(out) == {"loss", "loss_snp", "loss_prs"}
    torch.testing.assert_close(out["loss"].detach(), (out["loss_snp"] + out["loss_prs"]) / 2)
    out["loss"].backward()
    assert all(p.grad is not None for p in m.image_encoder.parameters() if p.requires_grad)


def test_retrieval_topk():
    keys = torch.eye(4)
    q = torch.eye(4)[[0, 1, 2, 3, 0]]
    acc = topk_accuracy(q, keys, torch.tensor([0, 1, 2, 3, 1]), ks=(1, 5))
    assert acc["top1"] == pytest.approx(0.8) and acc["top5"] == 1.0
    assert acc["chance_top1"] == 0.25 and acc["chance_top5"] == 1.0


def test_evaluate_reports_retrieval_and_chance(gen):
    m = _method().eval()
    second = _batch(6, gen)
    second["person"] = second["person"] + 6              # 12 individuals in all
    res = m.evaluate([_batch(6, gen), second])
    assert "val_loss" in res and "val_snp_top1" in res and res["val_snp_chance_top1"] == pytest.approx(1 / 12)


def test_two_gloo_processes_equal_one_process(gen):
    full = _batch(8, gen)
    m = _method().eval()
    out = m(full)
    out["loss"].backward()
    want = {n: p.grad for n, p in m.named_parameters()}
    with tempfile.TemporaryDirectory() as tmp:
        torch.save(full, f"{tmp}/batch.pt")
        procs = [subprocess.Popen([sys.executable, str(WORKER), str(r), "2", tmp], stderr=subprocess.PIPE, text=True)
                 for r in range(2)]
        errs = [p.communicate(timeout=300)[1] for p in procs]
        assert all(p.returncode == 0 for p in procs), errs
        got = torch.load(f"{tmp}/rank0.pt", weights_only=True)
    torch.testing.assert_close(got["loss"], out["loss"].detach(), rtol=1e-5, atol=1e-7)
    for n, g in want.items():
        if g is None:
            continue
        torch.testing.assert_close(got["grads"][n], g, rtol=1e-5, atol=1e-7, msg=n)
