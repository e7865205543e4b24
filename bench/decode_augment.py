"""Benchmark of radiograph decode + augmentation: DICOM bytes → 2 augmented fp16 views.

Side by side in one run, on synthetic 16-bit radiographs (12 bits stored, native and RLE):
  pydicom+torch  the CPU pipeline users write today, in a DataLoader using every core:
                 pydicom dcmread + pixel_array (RLE through its fastest installed plugin),
                 apply_modality_lut + apply_voi_lut (numpy), then per view a random crop,
                 F.interpolate(antialias=True), a rotation (affine_grid/grid_sample), fp16
  medcl-cpu-op   decode_pixels + augment (C++ kernels) on bytes already in memory
  medcl-cpu-e2e  a DataLoader over `medcl prepare` shards on disk, decode + augment in the workers
  medcl-gpu-op   decode_pixels + augment on the GPU, bytes already in pinned memory   (--device cuda)
  medcl-gpu-e2e  workers read shard bytes only; one pinned batch to the GPU, decoded and augmented there
Reports images/s and effective GB/s (stored 16-bit pixel bytes per second) for each input size,
encoding and output size; writes bench/results/<device>/decode_augment.json.
Usage: python bench/decode_augment.py [--device cuda] [--n 16] [--sizes 2048x2048,3000x2500]
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import save, table, time_once  # noqa: E402


def radiograph(rows: int, cols: int, rng: np.random.Generator) -> np.ndarray:
    """(rows, cols) uint16 in [0, 4095]: smooth anatomy-like field plus detector noise."""
    coarse = rng.normal(size=(9, 9))
    yy = np.linspace(0, 8, rows)[:, None]
    xx = np.linspace(0, 8, cols)[None, :]
    y0, x0 = np.floor(yy).astype(int).clip(0, 7), np.floor(xx).astype(int).clip(0, 7)
    fy, fx = yy - y0, xx - x0
    field = (coarse[y0, x0] * (1 - fy) * (1 - fx) + coarse[y0 + 1, x0] * fy * (1 - fx)
             + coarse[y0, x0 + 1] * (1 - fy) * fx + coarse[y0 + 1, x0 + 1] * fy * fx)
    img = 2000 + 600 * field + rng.normal(0, 12, size=(rows, cols))
    return np.clip(img, 0, 4095).astype(np.uint16)


def write_files(folder: Path, rows: int, cols: int, rle: bool, n: int) -> list[str]:
    from medcl.demo.dicom_write import DicomSpec, uid_from, write_radiograph

    rng = np.random.default_rng(rows * 7 + cols + rle)
    base = radiograph(rows, cols, rng)
    paths = []
    for i in range(n):
        # The same anatomy rolled per file (cheap), each file its own noise-bearing bytes on disk.
        px = np.roll(base, 37 * i, axis=1)
        spec = DicomSpec(patient_id=f"B{i}", study_uid=uid_from("b", i), series_uid=uid_from("s", i),
                         sop_uid=uid_from("i", rows, cols, rle, i), monochrome1=bool(i % 2), rle=rle,
                         rescale=(1.0, 0.0), series_number=1, description="PA", derived=False)
        p = folder / f"{'rle' if rle else 'native'}-{rows}x{cols}-{i}.dcm"
        write_radiograph(p, px, spec)
        paths.append(str(p))
    return paths


# --- the pipeline users write today ----------------------------------------------------------
class PydicomViews(torch.utils.data.Dataset):
    def __init__(self, paths, size: int, length: int | None = None, seed: int = 0):
        self.paths, self.size, self.seed = paths, size, seed
        self.length = length or len(paths)          # the files cycled to this many items

    def __len__(self):
        return self.length

    def __getitem__(self, i):
        import pydicom
        from pydicom.pixels import apply_modality_lut, apply_voi_lut

        ds = pydicom.dcmread(self.paths[i % len(self.paths)])
        v = apply_voi_lut(apply_modality_lut(ds.pixel_array, ds), ds)             # float64 numpy
        lo, hi = float(v.min()), float(v.max())
        x = torch.from_numpy(((v - lo) / max(hi - lo, 1e-6)).astype(np.float32))   # (H, W) in [0, 1]
        if ds.PhotometricInterpretation == "MONOCHROME1":
            x = 1.0 - x
        g = torch.Generator().manual_seed(self.seed + i)
        return torch.stack([_torch_view(x, self.size, g) for _ in range(2)])       # (2, 1, S, S)


def _torch_view(x: torch.Tensor, size: int, g: torch.Generator) -> torch.Tensor:
    H, W = x.shape
    scale = 0.5 + 0.5 * float(torch.rand((), generator=g))
    ratio = math.exp(math.log(3 / 4) + math.log(16 / 9) * float(torch.rand((), generator=g)))
    ch = min(H, int(round(math.sqrt(scale * H * W / ratio))))
    cw = min(W, int(round(math.sqrt(scale * H * W * ratio))))
    top = int(torch.randint(0, H - ch + 1, (), generator=g))
    left = int(torch.randint(0, W - cw + 1, (), generator=g))
    crop = x[top:top + ch, left:left + cw][None, None]
    v = F.interpolate(crop, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    a = math.radians(20 * float(torch.rand((), generator=g)) - 10)
    theta = torch.tensor([[[math.cos(a), -math.sin(a), 0.0], [math.sin(a), math.cos(a), 0.0]]])
    grid = F.affine_grid(theta, [1, 1, size, size], align_corners=False)
    return F.grid_sample(v, grid, align_corners=False)[0].half()                  # (1, S, S)


def _loader(ds, workers: int, batch: int, collate=None, pin: bool = False):
    """Persistent workers: the first (warm-up) pass starts them, the timed passes reuse them."""
    return torch.utils.data.DataLoader(ds, batch_size=batch, num_workers=workers, collate_fn=collate,
                                       persistent_workers=workers > 0, pin_memory=pin, prefetch_factor=4 if workers else None)


def run_loader(loader, device: torch.device, finish=None) -> float:
    """Seconds to drain a loader (finish(batch) on the device for the GPU path)."""
    t0 = time.perf_counter()
    for b in loader:
        if finish is not None:
            finish(b)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - t0


# --- medcl ----------------------------------------------------------------------------------
def medcl_params(raws, size: int, seed: int):
    from medcl.data.augment import AugmentConfig, sample_views

    sizes = torch.tensor([[r.rows, r.columns] for r in raws], dtype=torch.int64)
    return sample_views(AugmentConfig(), sizes, size, 2, torch.Generator().manual_seed(seed))


def medcl_op(packed, params, size: int, device: torch.device):
    from medcl.io.pixels import decode_packed
    from medcl.ops import augment

    images, sizes, status = decode_packed(packed, device)
    return augment(images, params.to(device, non_blocking=True), out_size=size, views=2, sizes=sizes)


class ShardViews(torch.utils.data.Dataset):
    """Recipes from a prepared dataset: 2 views of each image (what ViewsDataset does for simclr)."""

    def __init__(self, dataset, paths, size: int, length: int | None = None):
        from medcl.data.sources import open_source
        _, self.source = open_source(dataset)
        self.paths, self.size = paths, size
        self.length = length or len(paths)          # the files cycled to this many items

    def __len__(self):
        return self.length

    def __getitem__(self, i):
        from medcl.data.recipes import Request

        raw = self.source.read(self.paths[i % len(self.paths)])
        params = medcl_params([raw], self.size, i)[0:1]                             # (1, 2, 13)
        return {"raws": [raw], "info": [(i, self.paths[i % len(self.paths)], 0)], "index": i,
                "requests": {"views": Request(slots=[0], params=params, shape=self.size)}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--n", type=int, default=None, help="images per case (default 16 on CPU, 256 on GPU)")
    ap.add_argument("--sizes", default="2048x2048,3000x2500")
    ap.add_argument("--out-sizes", default="224,512")
    ap.add_argument("--workers", type=int, default=os.cpu_count())
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--e2e-images", type=int, default=1024,
                    help="items per timed pass of the GPU end-to-end loader (the files cycled); the CPU "
                         "loaders take a quarter of it")
    ap.add_argument("--gpu-batch", type=int, default=32, help="batch size of the GPU end-to-end loader")
    ap.add_argument("--out-json", type=Path, help="write here instead of bench/results/<device>/decode_augment.json")
    args = ap.parse_args()
    device = torch.device(args.device)
    n = args.n or (256 if device.type == "cuda" else 16)
    cores = args.workers
    torch.set_num_threads(cores)
    from medcl.data.recipes import collate_raw, render, render_collate
    from medcl.io.pixels import pack_raw, read_raw
    from medcl.prepare import prepare

    rows_out = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for shape in args.sizes.split(","):
            r, c = (int(v) for v in shape.split("x"))
            for rle in (False, True):
                folder = tmp / f"{shape}-{'rle' if rle else 'native'}"
                folder.mkdir()
                files = write_files(folder, r, c, rle, n)
                dataset = tmp / f"ds-{folder.name}"
                prepare(folder, dataset, workers=1)
                raws = [read_raw(f)[0] for f in files]
                packed = pack_raw(raws)
                if device.type == "cuda":
                    packed = {k: v.pin_memory() if isinstance(v, torch.Tensor) else v for k, v in packed.items()}
                nbytes = sum(x.rows * x.columns * 2 for x in raws)
                for size in (int(s) for s in args.out_sizes.split(",")):
                    params = medcl_params(raws, size, 0)
                    res = {}

                    def best(fn):
                        fn()                                                        # warm-up
                        return min(fn() for _ in range(args.repeat))

                    cpu_len, gpu_len = max(n, args.e2e_images // 4), max(n, args.e2e_images)
                    counts = {"medcl-cpu-op": n, "medcl-gpu-op": n, "pydicom+torch": cpu_len,
                              "medcl-cpu-e2e": cpu_len, "medcl-gpu-e2e": gpu_len}
                    loader = _loader(PydicomViews(files, size, cpu_len), cores, 4)
                    res["pydicom+torch"] = best(lambda: run_loader(loader, torch.device("cpu")))
                    res["medcl-cpu-op"] = best(lambda: time_once(lambda: medcl_op(packed, params, size, torch.device("cpu")),
                                                                   torch.device("cpu")))
                    loader = _loader(ShardViews(dataset, files, size, cpu_len), cores, 4, render_collate)
                    res["medcl-cpu-e2e"] = best(lambda: run_loader(loader, torch.device("cpu")))
                    del loader
                    if device.type == "cuda":
                        res["medcl-gpu-op"] = best(lambda: time_once(lambda: medcl_op(packed, params, size, device), device))
                        loader = _loader(ShardViews(dataset, files, size, gpu_len), cores, args.gpu_batch, collate_raw,
                                         pin=True)
                        res["medcl-gpu-e2e"] = best(lambda: run_loader(
                            loader, device, lambda b: render(b, device, dtype=torch.float16)))
                        del loader
                    base = res["pydicom+torch"]
                    for name, t in res.items():
                        k = counts[name] / n               # images per timed pass, over the file count
                        rows_out.append({"input": shape, "encoding": "rle" if rle else "native", "out": f"2x{size}",
                                         "pipeline": name, "images": counts[name],
                                         "images_per_s": round(counts[name] / t, 2),
                                         "GB_per_s": round(k * nbytes / t / 1e9, 4),
                                         "speedup_vs_pydicom": round((counts[name] / t) / (cpu_len / base), 2)})
                    print(table([x for x in rows_out if x["input"] == shape and x["out"] == f"2x{size}"
                                 and x["encoding"] == ("rle" if rle else "native")],
                                ["input", "encoding", "out", "pipeline", "images_per_s", "GB_per_s",
                                 "speedup_vs_pydicom"]), flush=True)
    out = save("decode_augment", device, {"images_per_case": n, "workers": cores, "rows": rows_out}, args.out_json)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
