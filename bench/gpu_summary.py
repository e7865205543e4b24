"""The short table that ends `make gpu-check`: stages, tests, sanitizer errors, and each GPU
headline figure against its target (issue 12's table). Reads what bench/gpu_check.sh wrote into
one folder; writes targets.json there. Usage: python bench/gpu_summary.py OUTDIR
"""
from __future__ import annotations

import json
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path


def load(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def tests(out: Path) -> str:
    try:
        root = ET.parse(out / "pytest.xml").getroot()
    except (OSError, ET.ParseError):
        return "no pytest.xml"
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    n, f, e, s = (int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped"))
    failed = [f"{c.get('classname', '').split('.')[-1]}::{c.get('name')}" for c in suite.iter("testcase")
              if c.find("failure") is not None or c.find("error") is not None]
    line = f"{n - f - e - s} passed, {f} failed, {e} errors, {s} skipped"
    return line + ("".join(f"\n    FAILED {x}" for x in failed[:15]))


def sanitizer(log: Path) -> str:
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return "not run"
    summary = re.findall(r"(ERROR SUMMARY: \d+ errors?|RACECHECK SUMMARY: .*)", text)
    calls = "all calls ok" if "0 result(s) off" in text else "results off or not finished"
    if not summary and "not supported" in text.lower():
        return "tool refused the device"
    return f"{'; '.join(s.strip() for s in summary) or 'no summary line'} ({calls})"


def check(name, value, op, bound, note=""):
    met = None if value is None else {"<=": value <= bound, ">=": value >= bound, ">": value > bound}[op]
    return {"target": name, "value": value, "bound": f"{op} {bound}", "met": met, "note": note}


def targets(out: Path) -> list[dict]:
    rows: list[dict] = []
    c = load(out / "contrastive.json")
    if c:
        for t in c.get("targets", []):
            rows.append({**t, "note": f"bf16 mm {c.get('matmul_tflops')} TFLOP/s"})
    s = load(out / "sinkhorn.json")
    if s:
        for r in s["rows"]:
            if r["impl"] == "medcl" and r["N"] in (9, 16, 36, 100):
                rows.append(check(f"sinkhorn 1024x{r['N']}^2 fwd+bwd: eager / medcl", r.get("speedup_vs_eager"), ">=", 20,
                                  f"{r['ms']} ms"))
                rows.append(check(f"sinkhorn 1024x{r['N']}^2 fwd+bwd: compiled / medcl", r.get("speedup_vs_compiled"),
                                  ">=", 5))
    d = load(out / "decode_augment.json")
    if d:
        by = {(r["input"], r["encoding"], r["out"], r["pipeline"]): r for r in d["rows"]}
        for (inp, enc, o, pipe), r in by.items():
            if pipe == "medcl-gpu-op":
                rows.append(check(f"decode+augment {inp} {enc} -> {o}: GPU op img/s", r["images_per_s"], ">=",
                                  5000 if enc == "native" else 2000))
            if pipe == "medcl-gpu-e2e":
                cpu = by.get((inp, enc, o, "medcl-cpu-e2e"))
                pyd = by.get((inp, enc, o, "pydicom+torch"))
                ratio = cpu and round(r["images_per_s"] / cpu["images_per_s"], 1)
                rows.append(check(f"decode+augment {inp} {enc} -> {o}: GPU e2e / CPU e2e", ratio, ">=", 30,
                                  f"{r['images_per_s']} img/s; vs pydicom+torch "
                                  f"{pyd and round(r['images_per_s'] / pyd['images_per_s'], 1)}x"))
    p = load(out / "pretrain_decode.json")
    if p:
        rows.append(check("pretrain simclr resnet50 224: --decode gpu / cpu img/s", p.get("ratio"), ">", 0,
                          f"gpu {p.get('gpu_images_per_s')} img/s, cpu {p.get('cpu_images_per_s')} img/s (reported)"))
    return rows


def main() -> None:
    out = Path(sys.argv[1])
    print("\n==================== medcl gpu-check ====================")
    env = (out / "env.txt").read_text().splitlines() if (out / "env.txt").exists() else []
    for line in env[1:3]:
        print(line)
    print("-- stages")
    for line in (out / "stages.tsv").read_text().splitlines() if (out / "stages.tsv").exists() else []:
        name, what, secs, *rest = line.split("\t")
        print(f"  {name:18s} {what:9s} {secs:>4s} s  {rest[0] if rest else ''}")
    print(f"-- gpu tests: {tests(out)}")
    for tool in ("memcheck", "racecheck", "synccheck"):
        print(f"-- {tool:9s}: {sanitizer(out / f'{tool}.log')}")
    goals = targets(out)
    (out / "targets.json").write_text(json.dumps(goals, indent=2) + "\n")
    print("-- targets")
    for g in goals:
        met = {True: "MET", False: "missed", None: "n/a"}[g["met"]]
        print(f"  {met:6s} {g['target']}: {g['value']} ({g['bound']}) {g.get('note', '')}")


if __name__ == "__main__":
    main()
