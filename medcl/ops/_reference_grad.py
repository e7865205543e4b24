"""Gradients through an op's pure-PyTorch reference, for what the compiled backward kernels
do not cover (double backward, gradients of auxiliary outputs)."""
from __future__ import annotations

from typing import Callable, Optional, Sequence

import torch


def reference_vjp(reference: Callable, inputs: Sequence[torch.Tensor], grads: Sequence[Optional[torch.Tensor]],
                  *args) -> tuple:
    """Vector-Jacobian product of ``reference(*inputs, *args)`` (a tuple of outputs) with
    ``grads`` (None: that output is unused). Under grad mode (a backward with create_graph) the
    result stays attached to ``inputs`` so it can be differentiated again."""
    create = torch.is_grad_enabled()
    with torch.enable_grad():
        xs = [x if create and x.requires_grad else x.detach().requires_grad_(True) for x in inputs]
        pairs = [(o, g) for o, g in zip(reference(*xs, *args), grads) if g is not None]
        return torch.autograd.grad([o for o, _ in pairs], xs, [g for _, g in pairs], create_graph=create)
