"""Training throughput of `medcl pretrain --method simclr` with DICOM decode + augmentation on the
GPU (`--decode gpu`: workers only read bytes) against the CPU (`--decode cpu`: medcl's C++
kernels in the DataLoader workers), side by side in one run on one demo cohort.

A demo cohort of --n people at --size pixels (12-bit CR DICOMs, native and RLE) is written once;
each run is `medcl pretrain --method simclr --arch resnet50 --image-size 224` for one epoch with
--workers DataLoader workers, logging every step. Throughput: the median samples/s of the logged
steps after the first two (start-up, cuDNN autotuning). Writes bench/results/<device>/
pretrain_decode.json (or --out-json).
Usage: python bench/pretrain_decode.py [--device cuda] [--n 512] [--size 1024] [--workers N]
"""
from __future__ import annotations

import argparse
import csv
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import save, table  # noqa: E402


def medcl(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """`medcl …` in a folder outside the source tree (its medcl/ would shadow the installed one)."""
    return subprocess.run([sys.executable, "-m", "medcl.cli", *args], cwd=cwd, capture_output=True, text=True)


def run(cohort: Path, out: Path, decode: str, args, cwd: Path) -> dict:
    t0 = time.perf_counter()
    p = medcl(["pretrain", "--method", "simclr", "--data", str(cohort / "manifest.csv"), "--out", str(out),
               "--arch", args.arch, "--image-size", "224", "--batch-size", str(args.batch_size), "--epochs", "1",
               "--workers", str(args.workers), "--decode", decode, "--device", args.device, "--log-every", "1",
               "--checkpoint-every", "0"], cwd)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        return {"decode": decode, "error": (p.stderr.strip().splitlines() or ["?"])[-1][:300], "wall_s": round(wall, 1)}
    with open(out / "metrics.csv") as f:
        rates = [float(r["samples_per_s"]) for r in csv.DictReader(f) if r.get("samples_per_s")]
    steady = rates[2:] if len(rates) > 3 else rates
    return {"decode": decode, "steps_logged": len(rates), "images_per_s": round(statistics.median(steady), 1),
            "wall_s": round(wall, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--n", type=int, default=512, help="people in the demo cohort")
    ap.add_argument("--size", type=int, default=1024, help="radiograph size in pixels")
    ap.add_argument("--arch", default="resnet50")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--workers", type=int, default=os.cpu_count())
    ap.add_argument("--out-json", type=Path)
    args = ap.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("pretrain_decode: --device cuda, but no CUDA device is visible")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        p = medcl(["demo-data", str(tmp / "cohort"), "--n", str(args.n), "--size", str(args.size), "--snps", "100",
                   "--workers", str(args.workers)], tmp)
        if p.returncode != 0:
            raise SystemExit(f"pretrain_decode: demo-data failed: {p.stderr.strip()[-500:]}")
        print(f"demo cohort: {args.n} people at {args.size}px in {time.perf_counter() - t0:.0f} s", flush=True)
        decodes = ("gpu", "cpu") if args.device.startswith("cuda") else ("cpu",)
        rows = [run(tmp / "cohort", tmp / f"run-{d}", d, args, tmp) for d in decodes]
    print(table(rows, ["decode", "images_per_s", "steps_logged", "wall_s", "error"]))
    by = {r["decode"]: r.get("images_per_s") for r in rows}
    ratio = round(by["gpu"] / by["cpu"], 2) if by.get("gpu") and by.get("cpu") else None
    payload = {"method": "simclr", "arch": args.arch, "image_size": 224, "batch_size": args.batch_size,
               "workers": args.workers, "cohort": {"n": args.n, "size": args.size}, "rows": rows,
               "gpu_images_per_s": by.get("gpu"), "cpu_images_per_s": by.get("cpu"), "ratio": ratio}
    print(f"--decode gpu / --decode cpu images/s: {ratio}")
    print(f"wrote {save('pretrain_decode', torch.device(args.device), payload, args.out_json)}")


if __name__ == "__main__":
    main()
