"""Benchmark of medcl.ops.contrastive_loss: CLIP's symmetric InfoNCE (α = 0.5), forward + backward.

Side by side on the same L2-normalised leaf embeddings a, b (B, D) that require grad, τ = 0.07:
  naive      logits = (a @ b.T) / τ materialised, F.cross_entropy over rows and columns, averaged
  open_clip  open_clip's ClipLoss (open_clip/loss.py loaded alone, no package __init__), logit_scale 1/τ
  inf-cl     Inf-CL's Triton tiled loss, cal_inf_loss a→b and b→a averaged (CUDA only)
  medcl      medcl.ops.contrastive_loss(a, b, temperature=τ, normalize=False): the inputs are
             already unit rows, as the others take them
One timed call is loss + torch.autograd.grad(loss, (a, b)). Time: median of --repeat after two
warm-up calls (bench/_common.timeit), every implementation of a case in the same process.

Peak extra memory of one forward + backward, in MiB, the input gradients included:
  CUDA  torch.cuda.max_memory_allocated() after reset_peak_memory_stats() minus
        memory_allocated() before the call (the inputs and whatever else is resident).
  CPU   one fresh subprocess per (implementation, case): inputs built, the implementation run
        once on a tiny batch (loads libraries, thread pools), then "5" written to
        /proc/self/clear_refs resets the peak-RSS mark VmHWM to the current RSS; the result is
        VmHWM after the call minus VmRSS before it. A calibration child that allocates and
        frees a known 64 MiB checks the method on every run (JSON "memory_check").
GPU cases also time a large bf16 torch.mm (TFLOP/s) and give each case's FLOP floor,
4 · 2·B²·D / rate (logits forward, recomputed in backward, two gradient products).
Writes bench/results/<device>/contrastive.json (or --out-json).
Usage: python bench/contrastive.py [--device cuda] [--repeat 5] [--cases 4096x128,16384x128]
"""
from __future__ import annotations

import argparse
import ctypes
import gc
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import save, table, timeit  # noqa: E402

from medcl import _extension  # noqa: E402
from medcl.losses import contrastive_loss  # noqa: E402

TAU = 0.07
MiB = 2 ** 20
IMPLS = ("naive", "open_clip", "inf-cl", "medcl")
CASES = {"cpu": [(4096, 128), (16384, 128)],
         "cuda": [(B, 512) for B in (4096, 16384, 65536)]}


def naive(a, b, tau):
    logits = (a @ b.T) / tau                                   # (B, B)
    labels = torch.arange(a.shape[0], device=a.device)
    return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2


def load_cliploss():
    """ClipLoss from open_clip/loss.py alone: the package __init__ imports its models and
    transforms (torchvision); loss.py imports only torch (distributed, horovod in try blocks)."""
    spec = importlib.util.find_spec("open_clip")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "loss.py"
    file_spec = importlib.util.spec_from_file_location("_open_clip_loss", path)
    module = importlib.util.module_from_spec(file_spec)
    file_spec.loader.exec_module(module)
    return module.ClipLoss


def load_inf_cl(dev):
    """cal_inf_loss, or why not: Inf-CL's kernels are Triton (CUDA only), tried only on CUDA."""
    if dev.type != "cuda":
        return None, "not available: CUDA only"
    try:
        from inf_cl import cal_inf_loss
    except Exception as exc:  # noqa: BLE001 - ImportError, or Triton failing to initialise
        return None, f"not available: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    return cal_inf_loss, ""


def loss_fns(dev, D):
    """{impl: loss(a, b) or a string saying why it cannot run}."""
    fns = {"naive": lambda a, b: naive(a, b, TAU)}
    ClipLoss = load_cliploss()
    if ClipLoss is None:
        fns["open_clip"] = "not available: open_clip_torch not installed"
    else:
        clip, logit_scale = ClipLoss(), torch.tensor(1 / TAU, device=dev)
        fns["open_clip"] = lambda a, b: clip(a, b, logit_scale)
    cal_inf_loss, why = load_inf_cl(dev)
    if cal_inf_loss is None:
        fns["inf-cl"] = why
    else:
        s, head_dim = torch.tensor(1 / TAU, device=dev), min(D, 256)       # head_dim must divide D
        fns["inf-cl"] = lambda a, b: (cal_inf_loss(a, b, scale=s, head_dim=head_dim)
                                      + cal_inf_loss(b, a, scale=s, head_dim=head_dim)) / 2
    fns["medcl"] = lambda a, b: contrastive_loss(a, b, temperature=TAU, alpha=0.5, normalize=False)
    return fns


def inputs(dev, B, D, dtype, seed=0):
    g = torch.Generator(dev).manual_seed(seed)
    a = F.normalize(torch.randn(B, D, device=dev, generator=g), dim=1).to(dtype).requires_grad_(True)
    b = F.normalize(torch.randn(B, D, device=dev, generator=g), dim=1).to(dtype).requires_grad_(True)
    return a, b


AUTOCAST: torch.dtype | None = None      # --autocast: float32 leaves, the step under CUDA autocast


def step(fn, a, b):
    with torch.autocast("cuda", dtype=AUTOCAST, enabled=AUTOCAST is not None):
        loss = fn(a, b)
    torch.autograd.grad(loss, (a, b))
    return loss


def _status_kib(field):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def rss_peak_extra_mib(call):
    """Peak RSS increase during call(), in MiB (see the module docstring); None if the
    peak mark cannot be reset here. malloc_trim first: heap memory freed earlier and kept by
    glibc would otherwise be reused without raising RSS."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
    before = _status_kib("VmRSS")
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return None
    if _status_kib("VmHWM") > before + 1024:                  # the reset did not take
        return None
    call()
    return (_status_kib("VmHWM") - before) / 1024


def memory_child(spec):
    """Runs in a fresh subprocess: one CPU measurement, printed as one JSON line."""
    torch.manual_seed(0)
    dev, dtype = torch.device("cpu"), getattr(torch, spec["dtype"])
    if spec["impl"] == "calibrate":                           # allocate, touch and free 64 MiB
        torch.ones(MiB).sum()                                 # thread pool up, as after a warm-up
        whole = rss_peak_extra_mib(lambda: torch.ones(64 * MiB // 4).sum())
        pieces = rss_peak_extra_mib(lambda: [torch.ones(MiB // 4) for _ in range(64)])
        print(json.dumps({"peak_extra_MiB": [whole, pieces]}))
        return
    fn = loss_fns(dev, spec["D"])[spec["impl"]]
    step(fn, *inputs(dev, 64, spec["D"], dtype, seed=1))      # warm-up on a tiny batch
    a, b = inputs(dev, spec["B"], spec["D"], dtype)
    print(json.dumps({"peak_extra_MiB": rss_peak_extra_mib(lambda: step(fn, a, b))}))


def cpu_peak(impl, B, D, dtype):
    spec = json.dumps({"impl": impl, "B": B, "D": D, "dtype": str(dtype).removeprefix("torch.")})
    proc = subprocess.run([sys.executable, __file__, "--memory-child", spec], capture_output=True, text=True)
    if proc.returncode != 0:
        return f"error: exit {proc.returncode}: {proc.stderr.strip().splitlines()[-1:]}"
    peak = json.loads(proc.stdout.strip().splitlines()[-1])["peak_extra_MiB"]
    if isinstance(peak, list):                                # the calibration child
        return [None if p is None else round(p, 1) for p in peak]
    return "unmeasured: VmHWM reset not supported" if peak is None else round(peak, 1)


def cuda_peak(fn, a, b, dev):
    torch.cuda.synchronize(dev)
    gc.collect()
    torch.cuda.empty_cache()
    base = torch.cuda.memory_allocated(dev)
    torch.cuda.reset_peak_memory_stats(dev)
    step(fn, a, b)
    torch.cuda.synchronize(dev)
    return round((torch.cuda.max_memory_allocated(dev) - base) / MiB, 1)


def matmul_tflops(dev, dtype, n=8192):
    x = torch.randn(n, n, device=dev, dtype=dtype)
    y = torch.randn(n, n, device=dev, dtype=dtype)
    t = timeit(lambda: torch.mm(x, y), dev, warmup=3, repeat=10)
    return 2 * n ** 3 / t / 1e12


def run_case(dev, B, D, dtype, impls, repeat):
    """Rows for one (B, D): time every implementation in this process, then memory."""
    a, b = inputs(dev, B, D, dtype)
    rows = []
    for impl, fn in loss_fns(dev, D).items():
        if impl not in impls:
            continue
        row = {"impl": impl, "B": B, "D": D, "dtype": str(dtype).removeprefix("torch.")}
        if impl == "medcl":
            row["backend"] = _extension.backend("contrastive_lse", dev.type)
        rows.append(row)
        if isinstance(fn, str):
            row["ms"] = row["peak_extra_MB"] = fn
            continue
        failed = None
        try:
            row["loss"] = float(f"{float(step(fn, a, b).detach()):.7g}")
            row["ms"] = round(timeit(lambda: step(fn, a, b), dev, warmup=1, repeat=repeat) * 1e3, 2)
            if dev.type == "cuda":
                row["peak_extra_MB"] = cuda_peak(fn, a, b, dev)
        except torch.OutOfMemoryError:
            failed = "OOM"
        except Exception as exc:  # noqa: BLE001 - a library failing on this case is a result, not a crash
            msg = str(exc).splitlines()[0] if str(exc) else ""
            failed = "OOM" if "can't allocate memory" in msg else f"error: {type(exc).__name__}: {msg}"[:200]
        if failed:                                            # outside the except: its frame held tensors
            row.setdefault("ms", failed)
            row["peak_extra_MB"] = failed
        if dev.type == "cuda":                                # each implementation starts from a clean cache
            gc.collect()
            torch.cuda.empty_cache()
        elif not failed:
            row["peak_extra_MB"] = cpu_peak(impl, B, D, dtype)
        print(f"  {impl:10s} B={B:<7d} D={D:<4d} ms={row['ms']}  peak_extra_MB={row['peak_extra_MB']}", flush=True)
    return rows


def num(row, key):
    return row.get(key) if row is not None and isinstance(row.get(key), (int, float)) else None


def ratios(rows, rate):
    for B, D in {(r["B"], r["D"]) for r in rows}:
        case = {r["impl"]: r for r in rows if (r["B"], r["D"]) == (B, D)}
        med, base = case.get("medcl"), case.get("naive")
        if med is None or num(med, "ms") is None:
            continue
        if num(base, "ms") is not None:
            med["speedup_vs_naive"] = round(base["ms"] / med["ms"], 2)
        if num(base, "peak_extra_MB") and num(med, "peak_extra_MB"):
            med["mem_ratio_naive_over_medcl"] = round(base["peak_extra_MB"] / med["peak_extra_MB"], 1)
        if num(case.get("inf-cl"), "ms") is not None:
            med["speedup_vs_inf_cl"] = round(case["inf-cl"]["ms"] / med["ms"], 2)
        if rate:
            med["floor_ms"] = round(4 * 2 * B * B * D / (rate * 1e12) * 1e3, 2)
            med["ms_over_floor"] = round(med["ms"] / med["floor_ms"], 2)


def targets(rows, dev):
    def find(impl, B, D):
        return next((r for r in rows if (r["impl"], r["B"], r["D"]) == (impl, B, D)), None)

    def check(name, value, op, bound):
        met = None if value is None else {"<": value < bound, "<=": value <= bound, ">": value > bound,
                                          ">=": value >= bound}[op]
        return {"target": name, "value": value, "bound": f"{op} {bound}", "met": met}

    if dev.type == "cpu":
        med, nai = find("medcl", 16384, 128), find("naive", 16384, 128)
        mem = (num(med, "peak_extra_MB") / num(nai, "peak_extra_MB")
               if num(med, "peak_extra_MB") and num(nai, "peak_extra_MB") else None)
        t = num(med, "ms") / num(nai, "ms") if num(med, "ms") and num(nai, "ms") else None
        return [check("B=16384 D=128: medcl peak extra memory / naive's", mem and round(mem, 4), "<=", 1 / 20),
                check("B=16384 D=128: medcl time / naive's", t and round(t, 3), "<=", 1.0)]
    out = [check("B=65536 D=512: medcl time / 4-GEMM floor", num(find("medcl", 65536, 512), "ms_over_floor"), "<=", 3)]
    for B in (4096, 16384):
        out.append(check(f"B={B} D=512: naive time / medcl's", num(find("medcl", B, 512), "speedup_vs_naive"), ">", 1))
    med, nai = find("medcl", 65536, 512), find("naive", 65536, 512)
    if num(med, "peak_extra_MB") is not None:
        inputs_mib = 2 * 65536 * 512 * (2 if AUTOCAST is None else 4) / MiB
        out.append(check("B=65536 D=512: medcl peak extra MiB / input MiB (O(B): a few)",
                         round(num(med, "peak_extra_MB") / inputs_mib, 2), "<=", 8))
    if num(med, "peak_extra_MB") and num(nai, "peak_extra_MB"):
        out[-1]["naive_over_medcl"] = round(num(nai, "peak_extra_MB") / num(med, "peak_extra_MB"), 1)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeat", type=int, default=5, help="timed repeats per implementation (median)")
    ap.add_argument("--cases", help="comma-separated BxD, e.g. 4096x128 (default: the device's full set)")
    ap.add_argument("--impls", default=",".join(IMPLS), help=f"comma-separated subset of {','.join(IMPLS)}")
    ap.add_argument("--out-json", type=Path, help="write here instead of bench/results/<device>/contrastive.json")
    ap.add_argument("--autocast", action="store_true",
                    help="CUDA: float32 leaves and the step under torch.autocast(bfloat16), as pretraining runs "
                         "(default: bfloat16 leaves, no autocast)")
    ap.add_argument("--memory-child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.memory_child:
        return memory_child(json.loads(args.memory_child))
    dev = torch.device(args.device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("contrastive: --device cuda, but no CUDA device is visible")
    dtype = torch.bfloat16 if dev.type == "cuda" else torch.float32
    if args.autocast:
        if dev.type != "cuda":
            raise SystemExit("contrastive: --autocast is for --device cuda")
        global AUTOCAST
        AUTOCAST, dtype = torch.bfloat16, torch.float32
    cases = ([tuple(int(x) for x in c.lower().split("x")) for c in args.cases.split(",")] if args.cases
             else CASES[dev.type])
    impls = args.impls.split(",")
    backend = _extension.backend("contrastive_lse", dev.type)
    print(f"contrastive: {dtype}{' under bf16 autocast' if AUTOCAST else ''} on {dev} ({torch.get_num_threads()} threads), τ = {TAU}, medcl backend {backend}")
    if backend == "reference":
        print("WARNING: medcl runs its pure-PyTorch reference here, not a fused kernel")
    rate = matmul_tflops(dev, AUTOCAST or dtype) if dev.type == "cuda" else None
    if rate:
        print(f"bf16 torch.mm 8192³: {rate:.0f} TFLOP/s")
    check = None
    if dev.type == "cpu":
        whole, pieces = cpu_peak("calibrate", 0, 0, torch.float32)
        check = {"allocated_MiB": 64, "measured_MiB_one_block": whole, "measured_MiB_64_blocks_of_1": pieces}
        print(f"memory check: 64 MiB allocated and freed in a child, measured {whole} MiB as one block, "
              f"{pieces} MiB as 64 blocks of 1 MiB")
    rows = [r for B, D in cases for r in run_case(dev, B, D, dtype, impls, args.repeat)]
    ratios(rows, rate)
    goals = targets(rows, dev)
    cols = ["impl", "B", "D", "dtype", "ms", "peak_extra_MB", "backend", "speedup_vs_naive",
            "mem_ratio_naive_over_medcl", "speedup_vs_inf_cl", "floor_ms", "ms_over_floor", "loss"]
    print(table(rows, [c for c in cols if any(c in r for r in rows)]))
    for g in goals:
        print(f"target {g['target']} {g['bound']}: {g['value']} -> {'n/a' if g['met'] is None else g['met']}")
    payload = {"temperature": TAU, "autocast": str(AUTOCAST) if AUTOCAST else None, "alpha": 0.5, "medcl_backend": backend, "repeat": args.repeat,
               "time": "median ms of loss + autograd.grad(loss, (a, b)), after 2 warm-up calls",
               "memory_unit": "MiB (2^20 bytes)",
               "memory_method": ("torch.cuda.max_memory_allocated after reset_peak_memory_stats, minus "
                                 "memory_allocated before the call" if dev.type == "cuda" else
                                 "fresh subprocess per row: VmHWM after the call minus VmRSS before it, "
                                 "VmHWM reset by writing 5 to /proc/self/clear_refs"),
               "memory_check": check, "matmul_tflops": rate and round(rate, 1), "rows": rows, "targets": goals}
    out = save("contrastive", dev, payload, args.out_json)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
