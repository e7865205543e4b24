"""The method registry: a method is its files plus one registry line (tests/methods/toy_method.py),
and then the command line, config.yaml, the weights' metadata and embed know it."""
from __future__ import annotations

import pytest
import yaml

from medcl.cli import main
from medcl.pretrain.registry import METHODS, register_method


@pytest.fixture
def toy():
    import importlib.util
    import sys
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("toy_method", Path(__file__).with_name("toy_method.py"))
    toy_method = sys.modules["toy_method"] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(toy_method)

    register_method(toy_method.SPEC)          # the one registry line
    yield toy_method
    METHODS.pop("toy", None)
    sys.modules.pop("toy_method", None)


def test_builtin_methods_are_registered_with_their_modules():
    assert list(METHODS)[:4] == ["contig", "simclr", "swav", "puzzle"]
    for spec in METHODS.values():
        assert spec.module.min_batch >= 1 and spec.module.min_global_batch >= 1
        assert all(callable(getattr(spec.module, a, None)) for a in ("forward", "evaluate"))


def test_a_name_cannot_be_taken_twice(toy):
    from dataclasses import replace

    with pytest.raises(ValueError, match="already registered"):
        register_method(replace(toy.SPEC, help="another"))


def test_toy_method_trains_from_the_command_line(toy, tmp_path, capsys):
    from medcl.demo import generate_cohort
    from medcl.methods.base import Method
    from medcl.train.export import load_weights

    cohort = tmp_path / "cohort"
    generate_cohort(cohort, n=40, snps=100, size=64, seed=3)
    assert main(["pretrain", "--help"]) == 0
    help_text = capsys.readouterr().out
    assert "Method options: toy:" in help_text and "--toy-scale" in help_text and "puzzle|toy]" in help_text
    out = tmp_path / "run"
    args = ["pretrain", "--method", "toy", "--data", str(cohort / "manifest.csv"), "--out", str(out),
            "--epochs", "1", "--batch-size", "4", "--image-size", "32", "--width", "0.125", "--workers", "0",
            "--toy-scale", "2.5", "--device", "cpu"]
    assert main(args) == 0
    text = (out / "config.yaml").read_text()
    cfg = yaml.safe_load(text)
    assert cfg["method"] == "toy" and cfg["toy_scale"] == 2.5 and cfg["width"] == 0.125
    assert "# toy\ntoy_scale: 2.5\n" in text and "# encoder\n" in text          # grouped by section
    state, meta = load_weights(out / "encoder.safetensors")
    assert meta["method"] == "toy" and meta["config"]["toy_scale"] == 2.5
    assert meta["pretrain"]["toy"] == {"toy_scale": 2.5} and meta["pretrain"]["encoder"]["width"] == 0.125
    assert any(k.startswith("image_encoder.") for k in state)
    assert isinstance(toy.ToyMethod(toy.ToyConfig()), Method)
    # its option given to another method: ignored with a warning naming it
    capsys.readouterr()
    assert main(["pretrain", "--method", "simclr", "--toy-scale", "3", "--epochs", "0", "--out",
                 str(tmp_path / "r2"), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "--toy-scale: option of other methods, ignored by simclr" in err
    # embed reads the toy's weights like any other
    assert main(["embed", str(out / "encoder.safetensors"), "--data", str(cohort / "manifest.csv"),
                 "--out", str(tmp_path / "emb.csv"), "--format", "csv", "--device", "cpu", "--workers", "0"]) == 0
    assert (tmp_path / "emb.csv").stat().st_size > 0
