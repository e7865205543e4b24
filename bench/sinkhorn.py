"""Benchmark of medcl.ops.sinkhorn (log-domain Sinkhorn, forward + backward).

Side by side in one process, B matrices of N × N, n_iters iterations, τ = 1:
  eager      the reference loop (medcl/ops/sinkhorn.py: sinkhorn_log_reference) under autograd
  compiled   the same under torch.compile (CUDA only: --compile to try it on CPU)
  medcl      torch.ops.medcl.sinkhorn_log (whole loop in one kernel, potentials only)
Time: median of --repeat forward + backward calls after warm-up. Backward memory: the bytes of
the tensors autograd saves for the backward (counted with torch.autograd.graph.saved_tensors_hooks),
which is what the loop's graph holds against the op's x + potentials.
Writes bench/results/<device>/sinkhorn.json. Usage: python bench/sinkhorn.py [--device cuda]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import save, table, timeit  # noqa: E402

from medcl import _extension  # noqa: E402
from medcl.ops.sinkhorn import sinkhorn_log_reference  # noqa: E402


def saved_bytes(fn, x) -> int:
    """Bytes of every tensor autograd saves while fn(x) builds its graph (each storage once)."""
    seen: dict[int, int] = {}

    def pack(t):
        seen[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn(x)
    return sum(seen.values())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--sizes", default="4,9,16,36,64,100")
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--compile", action="store_true", help="also time torch.compile on CPU")
    args = ap.parse_args()
    device = torch.device(args.device)
    backend = _extension.backend("sinkhorn_log", device.type)
    print(f"sinkhorn: B={args.batch}, {args.iters} iterations, float32 on {device}, medcl backend {backend}")
    T = args.iters
    eager = lambda x: sinkhorn_log_reference(x, T)[0]                      # noqa: E731
    ours = lambda x: torch.ops.medcl.sinkhorn_log(x, T)[0]                 # noqa: E731
    impls = {"eager": eager, "medcl": ours}
    if device.type == "cuda" or args.compile:
        impls["compiled"] = torch.compile(eager)
    rows = []
    for N in [int(n) for n in args.sizes.split(",")]:
        x = torch.randn(args.batch, N, N, device=device).requires_grad_(True)
        g = torch.randn(args.batch, N, N, device=device)
        ref = {}
        for name, fn in impls.items():
            def step(fn=fn):
                out = fn(x)
                return out, torch.autograd.grad(out, x, g)[0]
            out, grad = step()
            ref[name] = (out.detach(), grad)
            ms = timeit(step, device, repeat=args.repeat) * 1e3
            rows.append({"impl": name, "N": N, "ms": round(ms, 2), "saved_MB": round(saved_bytes(fn, x) / 2 ** 20, 2)})
        err = float((ref["medcl"][1] - ref["eager"][1]).abs().max() / ref["eager"][1].abs().max())
        by = {r["impl"]: r for r in rows if r["N"] == N}
        m = by["medcl"]
        m["speedup_vs_eager"] = round(by["eager"]["ms"] / m["ms"], 2)
        m["memory_ratio"] = round(m["saved_MB"] / by["eager"]["saved_MB"], 4)
        m["grad_rel_err"] = f"{err:.1e}"
        if "compiled" in by:
            m["speedup_vs_compiled"] = round(by["compiled"]["ms"] / m["ms"], 2)
        print(table([r for r in rows if r["N"] == N], ["impl", "N", "ms", "saved_MB"]))
    cols = ["impl", "N", "ms", "saved_MB", "speedup_vs_eager", "speedup_vs_compiled", "memory_ratio", "grad_rel_err"]
    print(table(rows, cols))
    path = save("sinkhorn", device, {"batch": args.batch, "iters": T, "dtype": "float32", "backend": backend,
                                     "rows": rows, "swav_codes": "not measured: sinkhorn_knopp is not built yet"})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
