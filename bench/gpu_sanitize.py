"""One small CUDA call of every medcl op (forward and, where there is one, backward), for
compute-sanitizer (bench/gpu_check.sh runs it under memcheck and racecheck).

Each call's result is compared with the op's reference on the same inputs, so a kernel that
reads garbage without faulting is caught too. Prints one line per call and exits 1 when a
result is off. Sizes are small (sanitizers slow kernels 10-100x) but cross every tile edge:
odd row counts, D not a multiple of the tile, RLE runs crossing rows.
Usage: python bench/gpu_sanitize.py [--only contrastive,augment,...]
"""
from __future__ import annotations

import argparse
import sys

import numpy as np
import torch

from medcl import _extension
from medcl.demo.rle import rle_encode_frame
from medcl.ops import augment, augment_reference, decode_pixels, decode_pixels_reference, intensity
from medcl.ops import intensity_reference, sinkhorn_knopp
from medcl.ops.contrastive_lse import contrastive_lse_reference
from medcl.ops.decode_pixels import ENCODINGS, FUNCTIONS
from medcl.ops.intensity import pack_params
from medcl.ops.sinkhorn_log import sinkhorn_log_reference
from medcl.ops.sinkhorn_knopp import sinkhorn_knopp_reference

DEV = torch.device("cuda")       # --device cpu runs the same calls on the C++ kernels (checks this script)
failures: list[str] = []


def report(name: str, err: float, tol: float) -> None:
    ok = err <= tol            # NaN fails
    print(f"  {name:44s} rel err {err:.2e} (tol {tol:.0e}) {'ok' if ok else 'FAIL'}", flush=True)
    if not ok:
        failures.append(name)


def rel(x: torch.Tensor, ref: torch.Tensor) -> float:
    x, ref = x.detach().double().cpu(), ref.detach().double().cpu()
    return float((x - ref).norm() / ref.norm().clamp_min(1e-30))


def run_intensity(g):
    px = torch.randint(0, 4096, (3, 37, 45), generator=g, dtype=torch.int32)
    kw = dict(slope=[1.0, 2.0, 0.5], intercept=[0.0, -100.0, 3.0], center=[2000.0, 1500.0, 800.0],
              width=[4000.0, 1000.0, 300.0], function=["linear", "linear_exact", "sigmoid"], invert=[False, True, False])
    p, f, inv = pack_params(3, **kw)
    out = intensity(px.to(DEV), **kw)
    report("intensity", rel(out, intensity_reference(px, p, f, inv, torch.float64)), 1e-6)


def run_contrastive(g):
    for dtype, tol in ((torch.bfloat16, 2e-2), (torch.float16, 5e-3), (torch.float32, 5e-3)):
        if DEV.type == "cpu" and dtype != torch.float32:
            continue
        if dtype == torch.float32:
            torch.backends.cuda.matmul.fp32_precision = "tf32"
        M, N, D = 77, 131, 72
        a = torch.nn.functional.normalize(torch.randn(M, D, generator=g), dim=1)
        b = torch.nn.functional.normalize(torch.randn(N, D, generator=g), dim=1)
        keep_a, keep_b = torch.rand(M, generator=g) > 0.1, torch.rand(N, generator=g) > 0.1
        args = (keep_a.to(DEV), keep_b.to(DEV), 10.0, 3, True)
        ad, bd = a.to(DEV, dtype).requires_grad_(), b.to(DEV, dtype).requires_grad_()
        row, col, diag = torch.ops.medcl.contrastive_lse(ad, bd, *args)
        w = torch.randn(3, M + N, generator=g).double()
        loss = (row.double() * w[0, :M].to(DEV)).sum() + (col.double() * w[1, :N].to(DEV)).sum() \
            + (diag.double() * w[2, :M].to(DEV)).sum()
        da, db = torch.autograd.grad(loss, (ad, bd))
        a64, b64 = ad.detach().cpu().double().requires_grad_(), bd.detach().cpu().double().requires_grad_()
        r, c, d = contrastive_lse_reference(a64, b64, keep_a, keep_b, 10.0, 3, True)
        ref_loss = (r * w[0, :M]).sum() + (c * w[1, :N]).sum() + (d * w[2, :M]).sum()
        ra, rb = torch.autograd.grad(ref_loss, (a64, b64))
        fin = torch.isfinite(r)
        report(f"contrastive_lse fwd {dtype}", rel(row.cpu()[fin], r[fin]), tol)
        report(f"contrastive_lse bwd {dtype}", max(rel(da, ra), rel(db, rb)), 4 * tol)
        torch.backends.cuda.matmul.fp32_precision = "ieee"


def run_sinkhorn(g):
    for N in (4, 9, 33):
        x = torch.randn(5, N, N, generator=g)
        xd = x.to(DEV).requires_grad_()
        out = torch.ops.medcl.sinkhorn_log(xd, 7)[0]
        gout = torch.randn(5, N, N, generator=g)
        (gx,) = torch.autograd.grad(out, xd, gout.to(DEV))
        x64 = x.double().requires_grad_()
        ref = sinkhorn_log_reference(x64, 7)[0]
        (rx,) = torch.autograd.grad(ref, x64, gout.double())
        report(f"sinkhorn_log fwd+bwd N={N}", max(rel(out, ref), rel(gx, rx)), 1e-4)


def run_sinkhorn_knopp(g):
    s = torch.rand(300, 97, generator=g) * 2 - 1
    report("sinkhorn_knopp", rel(sinkhorn_knopp(s.to(DEV), eps=0.05, n_iters=3, distributed=False),
                                 sinkhorn_knopp_reference(s.double(), 0.05, 3, False)), 1e-4)


def run_decode(g):
    rng = np.random.default_rng(int(torch.randint(0, 2**31, (1,), generator=g)))
    frames, desc = [], []
    for rows, cols, enc in ((61, 83, "native_le"), (40, 129, "rle"), (7, 300, "native_be"), (33, 65, "rle")):
        raw = rng.integers(0, 4096, size=(rows, cols)).astype(np.uint16)
        raw[:, : cols // 3] = raw[:, :1]                                   # replicate runs too
        if enc == "rle":
            data = rle_encode_frame(raw)
        else:
            data = raw.astype("<u2" if enc == "native_le" else ">u2").tobytes()
        frames.append(data)
        desc.append([rows, cols, 16, 12, 11, 0, ENCODINGS[enc]])
    offsets = torch.tensor(np.cumsum([0] + [len(f) for f in frames]), dtype=torch.int64)
    data = torch.frombuffer(bytearray(b"".join(frames)), dtype=torch.uint8)
    B = len(frames)
    params = torch.tensor([[1.0, 0.0, 2048.0, 4096.0]] * B, dtype=torch.float64)
    function = torch.tensor([FUNCTIONS["linear"], FUNCTIONS["minmax"], FUNCTIONS["sigmoid"], FUNCTIONS["minmax"]],
                            dtype=torch.int32)
    invert = torch.tensor([False, True, False, False])
    desc = torch.tensor(desc, dtype=torch.int64)
    args = (data, offsets, desc, params, function, invert)
    out, status = decode_pixels(*(t.to(DEV) for t in args), height=64, width=300)
    ref, rstatus = decode_pixels_reference(*args, 64, 300, torch.float64)
    assert status.cpu().tolist() == rstatus.tolist() == [0] * B, (status, rstatus)
    report("decode_pixels native/RLE, LINEAR/MINMAX/SIGMOID", rel(out, ref), 1e-6)


def run_augment(g):
    from medcl.data.augment import AugmentConfig, sample_views

    images = torch.rand(3, 300, 260, generator=g)
    sizes = torch.tensor([[300, 260], [211, 99], [64, 250]])
    params = sample_views(AugmentConfig(), sizes, 48, 2, g)
    out = augment(images.to(DEV), params.to(DEV), out_size=48, views=2, sizes=sizes.to(DEV), dtype=torch.float32)
    ref = augment_reference(images.double(), sizes, params, 48, 48, 0.0, 1.0, torch.float64)
    report("augment 3 images x 2 views", rel(out, ref), 1e-4)


RUNS = {"intensity": run_intensity, "contrastive": run_contrastive, "sinkhorn": run_sinkhorn,
        "sinkhorn_knopp": run_sinkhorn_knopp, "decode": run_decode, "augment": run_augment}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default=",".join(RUNS))
    ap.add_argument("--device", default="cuda")
    args = ap.parse_args()
    global DEV
    DEV = torch.device(args.device)
    if DEV.type == "cuda" and not torch.cuda.is_available():
        print("gpu_sanitize: no CUDA device visible", file=sys.stderr)
        return 2
    missing = [op for op in _extension.OPS if not _extension.has_kernel(op, DEV.type)]
    if missing:
        print(f"gpu_sanitize: no CUDA kernel for {missing} ({_extension.state().reason or 'built without CUDA?'})",
              file=sys.stderr)
        return 2
    g = torch.Generator().manual_seed(1234)
    for name in args.only.split(","):
        RUNS[name](g)
    if DEV.type == "cuda":
        torch.cuda.synchronize()
    print(f"gpu_sanitize: {len(failures)} result(s) off" + (f": {failures}" if failures else ""))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
