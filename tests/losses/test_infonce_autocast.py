"""The fused contrastive kernel is what a training step under autocast runs: no B × B matrix.

A dispatch recorder (a TorchDispatchMode: every op that reaches the kernels' dispatch level,
with its output shapes) watches a real SimCLR training step (forward, backward, AdamW step)
under ``torch.autocast`` in bfloat16: the compiled contrastive_lse op and its backward ran,
and no op produced a matrix with both sides as large as the 2B views. On CUDA the same test
runs under the ``gpu`` marker. Also: TF32 switched off between forward and backward."""
from __future__ import annotations

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from medcl import _extension
from medcl.methods.simclr import SimCLRConfig, SimCLRMethod
from medcl.models import ImageEncoderConfig
from medcl.losses import contrastive_loss
from medcl.ops.contrastive_lse import contrastive_lse_reference

needs_kernel = pytest.mark.skipif(not _extension.state().loaded, reason="medcl._C not built")


class Recorder(TorchDispatchMode):
    """Names and output shapes of every op dispatched while active."""

    def __init__(self):
        super().__init__()
        self.calls: list[tuple[str, list[tuple[int, ...]]]] = []
        self.dtypes: dict[str, list[torch.dtype]] = {}           # medcl ops: their tensor inputs' dtypes

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        flat = out if isinstance(out, (tuple, list)) else (out,)
        name = str(func.overloadpacket)
        self.calls.append((name, [tuple(t.shape) for t in flat if isinstance(t, torch.Tensor)]))
        if name.startswith("medcl."):
            self.dtypes[name] = [t.dtype for t in args[:2] if isinstance(t, torch.Tensor)]
        return out

    def ran(self, name: str) -> int:
        return sum(1 for op, _ in self.calls if op == name)

    def square_outputs(self, n: int) -> list[tuple[str, tuple[int, ...]]]:
        return [(op, s) for op, shapes in self.calls for s in shapes if len(s) == 2 and min(s) >= n]


@needs_kernel
def test_training_step_under_bf16_autocast_runs_the_kernel(device, gen):
    if device.type == "cuda" and not _extension.use_kernel("contrastive_lse", device):
        pytest.skip("no compiled contrastive kernel for this GPU")
    torch.manual_seed(0)
    B = 64                                                     # 2B = 128 views in NT-Xent
    cfg = SimCLRConfig(image=ImageEncoderConfig(arch="resnet18", width=0.125), head_hidden=32, proj_dim=16)
    method = SimCLRMethod(cfg).to(device).train()
    opt = torch.optim.AdamW(method.parameters(), lr=1e-3)
    batch = {"views": torch.rand(B, 2, 1, 32, 32, generator=gen).to(device), "index": torch.arange(B),
             "person": torch.arange(B), "n": B}
    rec = Recorder()
    with rec:
        with torch.autocast(device.type, dtype=torch.bfloat16):
            loss = method(batch)["loss"]
        loss.backward()
        opt.step()
    assert torch.isfinite(loss) and loss.dtype == torch.float32
    assert rec.ran("medcl.contrastive_lse") == 1, [op for op, _ in rec.calls if "medcl" in op]
    assert rec.ran("medcl.contrastive_lse_backward") == 1
    assert rec.dtypes["medcl.contrastive_lse"] == [torch.bfloat16, torch.bfloat16]   # the autocast dtype
    assert rec.square_outputs(2 * B) == []                    # no (2B, 2B) logits, forward or backward
    assert all(p.grad is None or torch.isfinite(p.grad).all() for p in method.parameters())


@needs_kernel
def test_autocast_loss_and_gradients_match_the_bf16_reference(device, gen):
    """Under autocast the op sees bf16 inputs and returns float32 gradients to float32 leaves."""
    if device.type == "cuda" and not _extension.use_kernel("contrastive_lse", device):
        pytest.skip("no compiled contrastive kernel for this GPU")
    a = torch.randn(96, 24, generator=gen).to(device).requires_grad_(True)
    b = torch.randn(96, 24, generator=gen).to(device).requires_grad_(True)
    with torch.autocast(device.type, dtype=torch.bfloat16):
        loss = contrastive_loss(a, b, temperature=0.2)
    ga, gb = torch.autograd.grad(loss, (a, b))
    assert loss.dtype == torch.float32 and ga.dtype == torch.float32
    # The same on bf16-rounded inputs in float64 (the reference's definition).
    a64 = torch.nn.functional.normalize(a.detach().double(), dim=1).to(torch.bfloat16).double()
    b64 = torch.nn.functional.normalize(b.detach().double(), dim=1).to(torch.bfloat16).double()
    keep = torch.ones(96, dtype=torch.bool, device=device)
    r, c, d = contrastive_lse_reference(a64, b64, keep, keep, 5.0, 0, False)
    want = (0.5 * (r - d) + 0.5 * (c - d)).mean()
    assert abs(float(loss) - float(want)) < 2e-2 * max(1.0, abs(float(want)))
    assert float(ga.abs().max()) > 0 and float(gb.abs().max()) > 0


@needs_kernel
@pytest.mark.gpu
def test_tf32_off_between_forward_and_backward(gen):
    """The backward follows its forward: TF32 switched off after a TF32 forward must not raise."""
    dev = torch.device("cuda")
    if not _extension.use_kernel("contrastive_lse", dev):
        pytest.skip("no compiled contrastive kernel for this GPU")
    before = torch.backends.cuda.matmul.fp32_precision
    a = torch.randn(200, 48, generator=gen).to(dev).requires_grad_(True)
    b = torch.randn(200, 48, generator=gen).to(dev).requires_grad_(True)
    try:
        torch.backends.cuda.matmul.fp32_precision = "tf32"
        rec = Recorder()
        with rec:
            loss = contrastive_loss(a, b, temperature=0.1)
        torch.backends.cuda.matmul.fp32_precision = "ieee"
        ga, gb = torch.autograd.grad(loss, (a, b))
        assert rec.ran("medcl.contrastive_lse") == 1
        torch.backends.cuda.matmul.fp32_precision = "ieee"   # and the other way round: reference, then TF32 on
        loss2 = contrastive_loss(a, b, temperature=0.1)
        torch.backends.cuda.matmul.fp32_precision = "tf32"
        ga2, gb2 = torch.autograd.grad(loss2, (a, b))
    finally:
        torch.backends.cuda.matmul.fp32_precision = before
    for g, g2 in ((ga, ga2), (gb, gb2)):
        assert float((g - g2).norm() / g2.norm()) < 2e-2                   # TF32 against full float32
