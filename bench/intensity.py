"""Benchmark of medcl.ops.intensity (rescale → window → MONOCHROME1 inversion).

Side by side in one process, on a batch of 16-bit radiographs (12 bits stored):
  numpy-pydicom  pydicom's apply_modality_lut + apply_voi_lut + inversion, image by image
  torch-eager    the op's pure-PyTorch reference (float64, as medcl falls back to)
  torch-fp32     the same formulas written naively in float32 PyTorch
  medcl          torch.ops.medcl.intensity (C++ kernel on CPU, CUDA kernel on GPU)
Writes bench/results/<device>/intensity.json. Usage: python bench/intensity.py [--device cuda]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import save, table, timeit  # noqa: E402

from medcl import _extension  # noqa: E402
from medcl.ops.intensity import intensity_reference, pack_params  # noqa: E402


def naive_fp32(px, center, width, slope, intercept, invert):
    x = px.float() * slope[:, None, None] + intercept[:, None, None]
    c, w = center[:, None, None] - 0.5, width[:, None, None] - 1
    y = ((x - c) / w + 0.5).clamp(0, 1)
    return torch.where(invert[:, None, None], 1 - y, y)


def pydicom_numpy(arrs, dss):
    from pydicom.pixels import apply_modality_lut, apply_voi_lut
    out = []
    for a, ds in zip(arrs, dss):
        v = apply_voi_lut(apply_modality_lut(a, ds), ds)
        out.append(4095 - v if ds.PhotometricInterpretation == "MONOCHROME1" else v)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--size", type=int, default=2048)
    args = ap.parse_args()
    dev = torch.device(args.device)
    from pydicom.dataset import Dataset

    g = torch.Generator().manual_seed(0)
    B, S = args.batch, args.size
    px = torch.randint(0, 4096, (B, S, S), generator=g, dtype=torch.int16)
    slope = torch.full((B,), 1.0, dtype=torch.float64)
    intercept = torch.full((B,), -1024.0, dtype=torch.float64)
    center = torch.rand(B, generator=g, dtype=torch.float64) * 1000 + 500
    width = torch.rand(B, generator=g, dtype=torch.float64) * 2000 + 500
    invert = torch.rand(B, generator=g) < 0.5
    params, codes, inv = pack_params(B, slope=slope, intercept=intercept, center=center, width=width,
                                     function="linear", invert=invert)
    dss = []
    for i in range(B):
        ds = Dataset()
        ds.BitsStored, ds.PixelRepresentation = 12, 0
        ds.RescaleSlope, ds.RescaleIntercept = 1.0, -1024.0
        ds.WindowCenter, ds.WindowWidth = float(center[i]), float(width[i])
        ds.PhotometricInterpretation = "MONOCHROME1" if bool(invert[i]) else "MONOCHROME2"
        dss.append(ds)
    arrs = [a.numpy().astype(np.uint16) for a in px]

    pxd = px.to(dev)
    pd, cd, idv = params.to(dev), codes.to(dev), inv.to(dev)
    cases = {
        "torch-eager (reference, fp64)": lambda: intensity_reference(pxd, pd, cd, idv, torch.float32),
        "torch-fp32 (naive)": lambda: naive_fp32(pxd, center.to(dev), width.to(dev), slope.to(dev),
                                                 intercept.to(dev), invert.to(dev)),
    }
    if dev.type == "cpu":
        cases["numpy-pydicom"] = lambda: pydicom_numpy(arrs, dss)
    if _extension.use_kernel("intensity", dev):
        cases["medcl"] = lambda: torch.ops.medcl.intensity(pxd, pd, cd, idv, torch.float32)
    mpix = B * S * S / 1e6
    rows = []
    for name, fn in cases.items():
        t = timeit(fn, dev)
        rows.append({"impl": name, "ms": round(t * 1e3, 2), "Mpix/s": round(mpix / t, 1)})
    base = next((r for r in rows if r["impl"] == "medcl"), None)
    for r in rows:
        r["medcl speed-up"] = round(r["ms"] / base["ms"], 2) if base else ""
    print(f"intensity: {B} x {S}x{S} int16 -> float32 on {dev} ({torch.get_num_threads()} threads)")
    print(table(rows, ["impl", "ms", "Mpix/s", "medcl speed-up"]))
    out = save("intensity", dev, {"batch": B, "size": S, "rows": rows})
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
