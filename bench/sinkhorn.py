"""Benchmark of medcl.ops.sinkhorn (log-domain Sinkhorn, forward + backward) and of
medcl.ops.sinkhorn_knopp (SwAV codes), in one run.

Sinkhorn, side by side in one process, B matrices of N × N, n_iters iterations, τ = 1:
  eager      the reference loop (medcl/ops/sinkhorn_log.py: sinkhorn_log_reference) under autograd
  compiled   the same under torch.compile (CUDA only: --compile to try it on CPU)
  medcl      torch.ops.medcl.sinkhorn_log (whole loop in one kernel, potentials only)
Time: median of --repeat forward + backward calls after warm-up. Backward memory: the bytes of
the tensors autograd saves for the backward (counted with torch.autograd.graph.saved_tensors_hooks),
which is what the loop's graph holds against the op's x + potentials.

SwAV codes (the "swav_codes" entry), float32 scores in [-1, 1] of B samples × K prototypes,
ε = 0.05, 3 iterations, no distribution:
  swav_eager     SwAV's exp-domain loop written eagerly (exp(scores/ε), then in-place row and
                 column normalisations, as SwAV's code does)
  log_reference  medcl's log-domain reference (sinkhorn_knopp_reference)
  medcl          medcl.ops.sinkhorn_knopp (torch.ops.medcl.sinkhorn_knopp: one read of the
                 scores per round, potentials only)
Time: the implementations run in turn, round after round (--swav-repeat rounds after a warm-up
round), so a load change on the machine hits all of them; the median per implementation is
reported, with its max error against the float64 reference (over the largest code).
Writes bench/results/<device>/sinkhorn.json. Usage: python bench/sinkhorn.py [--device cuda]
[--threads N] (on a shared machine, --threads 1: OpenMP barriers of several threads wait on
descheduled threads and time small ops 100x too slow).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import save, table, time_once, timeit  # noqa: E402

from medcl import _extension  # noqa: E402
from medcl.ops.sinkhorn_log import sinkhorn_log_reference  # noqa: E402
from medcl.ops.sinkhorn_knopp import sinkhorn_knopp, sinkhorn_knopp_reference  # noqa: E402


def saved_bytes(fn, x) -> int:
    """Bytes of every tensor autograd saves while fn(x) builds its graph (each storage once)."""
    seen: dict[int, int] = {}

    def pack(t):
        seen[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn(x)
    return sum(seen.values())


def swav_eager(scores: torch.Tensor, eps: float, n_iters: int) -> torch.Tensor:
    """SwAV's exp-domain Sinkhorn-Knopp for one process: (B, K) scores → (B, K) codes."""
    Q = torch.exp(scores / eps).t()                                     # (K, B)
    K, B = Q.shape
    Q /= Q.sum()
    for _ in range(n_iters):
        Q /= Q.sum(dim=1, keepdim=True)
        Q /= K
        Q /= Q.sum(dim=0, keepdim=True)
        Q /= B
    Q *= B
    return Q.t()


def bench_swav_codes(device: torch.device, B: int, K: int, eps: float, n_iters: int, repeat: int) -> dict:
    scores = 2 * torch.rand(B, K, device=device) - 1                     # cosine-like, float32
    impls = {"swav_eager": lambda: swav_eager(scores, eps, n_iters),
             "log_reference": lambda: sinkhorn_knopp_reference(scores, eps, n_iters, False),
             "medcl": lambda: sinkhorn_knopp(scores, eps=eps, n_iters=n_iters, distributed=False)}
    want = sinkhorn_knopp_reference(scores.double(), eps, n_iters, False)
    scale = float(want.abs().max())
    errors = {name: float((fn().double() - want).abs().max()) / scale for name, fn in impls.items()}  # + warm-up
    times: dict[str, list[float]] = {name: [] for name in impls}
    for _ in range(repeat):
        for name, fn in impls.items():
            times[name].append(time_once(fn, device))
    rows = []
    for name in impls:
        ts = sorted(times[name])
        rows.append({"impl": name, "ms": round(ts[len(ts) // 2] * 1e3, 2), "max_rel_err": f"{errors[name]:.1e}"})
    by = {r["impl"]: r for r in rows}
    by["medcl"]["speedup_vs_swav_eager"] = round(by["swav_eager"]["ms"] / by["medcl"]["ms"], 2)
    by["medcl"]["speedup_vs_log_reference"] = round(by["log_reference"]["ms"] / by["medcl"]["ms"], 2)
    return {"B": B, "K": K, "eps": eps, "iters": n_iters, "dtype": "float32", "repeat": repeat,
            "backend": _extension.backend("sinkhorn_knopp", device.type), "rows": rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--sizes", default="4,9,16,36,64,100")
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--compile", action="store_true", help="also time torch.compile on CPU")
    ap.add_argument("--swav-shape", default="4096,3000", help="B,K of the SwAV-codes benchmark")
    ap.add_argument("--swav-repeat", type=int, default=9)
    ap.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    ap.add_argument("--out-json", type=Path, help="write here instead of bench/results/<device>/sinkhorn.json")
    args = ap.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
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
    B, K = (int(n) for n in args.swav_shape.split(","))
    swav = bench_swav_codes(device, B, K, 0.05, 3, args.swav_repeat)
    print(f"\nSwAV codes: B={B}, K={K}, eps=0.05, 3 iterations, float32 on {device}, "
          f"medcl backend {swav['backend']}")
    print(table(swav["rows"], ["impl", "ms", "max_rel_err", "speedup_vs_swav_eager", "speedup_vs_log_reference"]))
    path = save("sinkhorn", device, {"batch": args.batch, "iters": T, "dtype": "float32", "backend": backend,
                                     "rows": rows, "swav_codes": swav}, args.out_json)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
