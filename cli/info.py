"""``medcl info``: versions, build info, which backend each op uses, GPUs seen."""
from __future__ import annotations

import json
import platform

import click

from medcl.cli.options import common_options, resolve_device


def _version_of(dist: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def collect(device: str) -> dict:
    """Everything `medcl info` reports, as a JSON-serialisable dict."""
    import torch

    import medcl
    from medcl import _extension
    from medcl.io.dicom_codecs import codec_status

    dev = resolve_device(device)
    ext = _extension.state()
    gpus = []
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            p = torch.cuda.get_device_properties(i)
            why = {op: _extension.cuda_kernel_problem(op, i) for op in _extension.OPS}
            gpus.append({"index": i, "name": p.name, "capability": f"{p.major}.{p.minor}",
                         "memory_gib": round(p.total_memory / 2**30, 1),
                         "compiled_ops": {op: not w for op, w in why.items()},
                         "why_not": {op: w for op, w in why.items() if w}})
    ops = {op: {"cpu": _extension.backend(op, "cpu"),
                "cuda": ("no GPU" if not gpus else
                         "cuda" if all(g["compiled_ops"][op] for g in gpus) else
                         "reference" if not any(g["compiled_ops"][op] for g in gpus) else "cuda on some GPUs")}
           for op in _extension.OPS}
    return {
        "medcl": medcl.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "packages": {d: _version_of(d) for d in ("numpy", "pydicom", "pandas", "pandas-plink", "click")},
        "extension": {"loaded": ext.loaded, "reason": ext.reason, "build": ext.build_info},
        "device": str(dev),
        "ops": ops,
        "gpus": gpus,
        "dicom_codecs": codec_status(),
    }


@click.command("info")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
@common_options
def command(as_json: bool, device: str) -> None:
    """Versions, build info, which backend each op uses, GPUs seen."""
    info = collect(device)
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    ext, build = info["extension"], info["extension"]["build"]
    pkgs = ", ".join(f"{k} {v or 'not installed'}" for k, v in info["packages"].items())
    lines = [
        f"medcl      {info['medcl']}",
        f"python     {info['python']} ({info['platform']})",
        f"torch      {info['torch']} (CUDA {info['torch_cuda'] or 'none: CPU build'})",
        f"packages   {pkgs}",
    ]
    if ext["loaded"]:
        archs = ", ".join(build.get("cuda_archs") or []) or "none"
        lines.append(f"build      medcl._C for torch {build.get('torch_version')}, "
                     f"CUDA kernels {'on' if build.get('with_cuda') else 'off'} (archs: {archs}), "
                     f"C++11 ABI {'on' if build.get('cxx11_abi') else 'off'}, {build.get('compiler', '')}")
    else:
        lines.append(f"build      reference ops only: {ext['reason']}")
    lines.append(f"device     {info['device']}")
    width = max((len(op) for op in info["ops"]), default=0) + 1
    for op, where in info["ops"].items():
        lines.append(f"op         {op:<{width}} cpu: {where['cpu']:<10} cuda: {where['cuda']}")
    if info["gpus"]:
        for g in info["gpus"]:
            lines.append(f"gpu        cuda:{g['index']} {g['name']} (sm {g['capability']}, {g['memory_gib']} GiB)")
            ok = [op for op, yes in g["compiled_ops"].items() if yes]
            lines.append(f"             compiled: {', '.join(ok) or 'none'}")
            for op, why in g["why_not"].items():
                lines.append(f"             reference: {op} ({why})")
    else:
        lines.append("gpu        none visible")
    codecs = info["dicom_codecs"]
    lines.append("codecs     " + ", ".join(f"{k}: {'yes' if v else 'no'}" for k, v in codecs.items()))
    click.echo("\n".join(lines))
