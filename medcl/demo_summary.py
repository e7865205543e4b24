"""The closing summary of ``make demo``: which pictures to open and what the numbers show.

    python -m medcl.demo_summary DEMO_OUT       # prints it and writes DEMO_OUT/SUMMARY.md

Reads what the demo's commands wrote: RUN/config.yaml and RUN/metrics.csv (the epoch rows) of
the pretraining run, the embeddings table, and each FINETUNE/metrics.json. The verdicts are the
ones ``pretrain`` and ``finetune`` compute (:func:`medcl.train.summary.comments`, the finetune
report's ``verdict``), restated in one place; nothing here is fixed text about the outcome.
"""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

from medcl.downstream.report import LABELS, NAMES, num
from medcl.train.curves import epoch_rows, read_metrics
from medcl.train.summary import comments, epoch_line


def _pretrain_section(run: Path) -> list[str]:
    import yaml

    from medcl.config import flat_settings

    cfg = flat_settings(yaml.safe_load((run / "config.yaml").read_text()))
    lines = [f"## Pretraining ({run})", ""]
    method = cfg.get("method", "contig")
    what = f"{method}, {cfg.get('arch', '?')} × {cfg.get('width', '?')}, {cfg.get('image_size', '?')} px"
    rows = epoch_rows(read_metrics(run / "metrics.csv")) if (run / "metrics.csv").exists() else []
    if not rows:
        return lines + [f"- {what}: no epoch finished (no epoch rows in metrics.csv)", ""]
    n = rows[-1]["epoch"]
    lines.append(f"- {what}; {n} epoch{'s' if n != 1 else ''}. Last epoch: {epoch_line(rows[-1])}")
    notes = comments(rows)
    lines += [f"- {n}" for n in notes] or ["- the validation numbers look sound (retrieval above chance, "
                                           "validation loss not rising)"]
    if (run / "curves.png").exists():
        lines.append(f"- picture: {run / 'curves.png'} (training and validation loss, retrieval against chance)")
    return lines + [""]


def _embed_section(path: Path) -> list[str]:
    with open(path) as fh:
        header = fh.readline().split()
        n = sum(1 for _ in fh)
    return [f"## Embeddings ({path})", "",
            f"- {n} individuals × {max(len(header) - 2, 0)} principal components, ready for `plink2 --pheno`", ""]


def _finetune_section(folder: Path) -> list[str]:
    report = json.loads((folder / "metrics.json").read_text())
    metric = report["headline"]
    label = LABELS.get(metric, metric)
    summary = report["summary"]
    top = max(r["fraction"] for r in summary)
    lines = [f"## {report['target']} ({report['task']}; {folder})", ""]
    at_top = []
    for r in summary:
        if r["fraction"] == top and metric in r:
            m = r[metric]
            name = NAMES.get(r["encoder"], r["encoder"])
            at_top.append(f"{name} {num(m['mean'])} ± {num(m['sd'])}")
    const = (report.get("constant") or {}).get(metric)
    if const is not None and math.isfinite(const):
        at_top.append(f"constant predictor {num(const)}")
    lines.append(f"- test {label} with {top * 100:.3g}% of the labels: " + ", ".join(at_top))
    lines += [f"- {v}" for v in report.get("verdict", [])]
    if (folder / "label_efficiency.png").exists():
        lines.append(f"- picture: {folder / 'label_efficiency.png'} (label-efficiency curves with their spread)")
    return lines + [""]


def summarize(out) -> str:
    """The summary of a demo output folder as Markdown (sections for what exists in it)."""
    out = Path(out)
    lines = [f"# medcl demo: what came out ({out})", ""]
    if (out / "run" / "config.yaml").exists():
        lines += _pretrain_section(out / "run")
    for pheno in sorted(out.glob("*.pheno")):
        lines += _embed_section(pheno)
    for folder in sorted(p.parent for p in out.glob("finetune-*/metrics.json")):
        lines += _finetune_section(folder)
    pictures = sorted(out.rglob("*.png"))
    lines += ["## Pictures", ""] + ([f"- {p}" for p in pictures] or ["- none were written"]) + [""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or not Path(args[0]).is_dir():
        print("usage: python -m medcl.demo_summary DEMO_OUT (the folder `make demo` wrote)", file=sys.stderr)
        return 2
    text = summarize(args[0])
    (Path(args[0]) / "SUMMARY.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
