"""make compare's driver on a tiny cohort with tiny settings: every method pretrains, every row
of the table is filled, a second call reuses the finished runs."""
from __future__ import annotations

import json
import math

import pytest

from medcl import compare


@pytest.fixture
def tiny(monkeypatch, tmp_path):
    from medcl.demo import generate_cohort

    root = tmp_path / "cohort"
    generate_cohort(root, n=80, snps=100, size=64, seed=3)
    monkeypatch.setattr(compare, "_cohort", lambda out: root)
    monkeypatch.setattr(compare, "COMMON", dict(arch="resnet18", width=0.125, image_size=32, batch_size=16,
                                                lr=1e-3, head_hidden=32, proj_dim=16, workers=0, log_every=1))
    runs = []
    for r in compare.RUNS:
        opts = {k: v for k, v in r.options.items() if k not in ("image_size", "queue_length")}
        if r.method == "swav":
            opts.update(prototypes=20, small_crops=2, queue_length=16)
        if r.method == "puzzle":
            opts.update(image_size=48)
        runs.append(compare.Run(r.name, r.method, opts, epochs=1))
    monkeypatch.setattr(compare, "RUNS", runs)
    return tmp_path / "out"


def test_every_method_gets_a_row(tiny, capsys):
    table = compare.run_compare(tiny, repeats=1)
    names = [r["name"] for r in table]
    assert names == ["random init (32 px)", "raw pixels (16² of 32 px)", "random init (48 px)",
                     "raw pixels (16² of 48 px)", "contig", "simclr-views", "simclr-patient",
                     "swav-views", "swav-patient", "puzzle"]
    for r in table:
        assert len(r["probe"]) == len(compare.TARGETS) * len(compare.FRACTIONS)
        assert all(math.isfinite(v) for v in r["probe"]), r
    assert "tile acc" in table[-1]["check"] and "view top-1" in table[5]["check"]
    printed = capsys.readouterr().out
    assert "| puzzle | 48 |" in printed and (tiny / "compare.md").read_text().strip() == printed.strip()
    saved = json.loads((tiny / "compare.json").read_text())
    assert [r["name"] for r in saved["rows"]] == names
    before = (tiny / "contig" / "encoder.safetensors").stat().st_mtime_ns
    again = compare.run_compare(tiny, repeats=1, only=["contig"])     # reused, not retrained
    assert (tiny / "contig" / "encoder.safetensors").stat().st_mtime_ns == before
    assert again[-1]["probe"] == table[4]["probe"]
