"""The nested pretraining config: settings by option name, config.yaml round trips, runs from
before nesting, --config with a run's config.yaml, and --help grouped by method."""
from __future__ import annotations

import dataclasses

import pytest
import yaml

from medcl.cli import main
from medcl.pretrain import METHODS, PretrainConfig
from medcl.pretrain.config import common_leaves, method_leaves


def test_option_names_set_the_nested_fields():
    cfg = PretrainConfig.from_options(method="swav", sk_iters=5, sk_eps=0.1, width=0.5, data="m.csv", epochs=3,
                                      crop_scale=[0.6, 0.9], genotypes="ignored: not a swav setting")
    assert cfg.sections["swav"].sinkhorn_iters == 5 and cfg.sections["swav"].eps == 0.1
    assert cfg.encoder.width == 0.5 and cfg.data.path == "m.csv" and cfg.train.epochs == 3
    assert cfg.augment.crop_scale == (0.6, 0.9)
    assert "genotypes" not in cfg.flat() and cfg.sk_iters == 5
    with pytest.raises(AttributeError):
        cfg.genotypes


def test_config_yaml_round_trips_and_holds_no_field_the_builder_fills():
    cfg = PretrainConfig.from_options(method="contig", modalities="image,snp,prs".split(","), genetics_hidden=64,
                                      alpha=0.5, snp_chromosomes=("1", "2"))
    d = yaml.safe_load(yaml.safe_dump(cfg.to_dict()))
    assert set(d) == {"method", "data", "encoder", "augment", "train", "run", "contig", "genetic_data"}
    assert "image" not in d["contig"] and "modalities" not in d["contig"]
    assert d["contig"]["genetics"] == {"hidden_layers": 1, "hidden": 64}
    back = PretrainConfig.from_dict(d)
    assert back == cfg and back.flat() == cfg.flat()


def test_a_flat_config_yaml_from_before_nesting_is_read():
    old = {"method": "simclr", "width": 0.25, "pairs": "patient", "crop_scale": None, "temperature": 0.2,
           "prototypes": 3000, "unknown_setting_of_another_version": 1}
    cfg = PretrainConfig.from_dict(old)
    assert (cfg.method, cfg.encoder.width, cfg.sections["views"].pairs, cfg.temperature) == ("simclr", 0.25,
                                                                                             "patient", 0.2)
    assert cfg.augment.crop_scale == (0.5, 1.0)  # None meant "the default"


@pytest.mark.parametrize("method", list(METHODS))
def test_every_setting_has_one_name_and_help(method):
    names = [leaf.name for leaf in common_leaves() + method_leaves(method)]
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)
    assert all(leaf.meta["help"] for leaf in common_leaves() + method_leaves(method))


def test_a_shared_setting_is_one_field():
    sigs = {}
    for method in METHODS:
        for leaf in method_leaves(method):
            sigs.setdefault(leaf.name, set()).add(leaf.signature())
    assert all(len(s) == 1 for s in sigs.values())
    assert {m for m in METHODS if any(leaf.name == "temperature" for leaf in method_leaves(m))} >= {
        "contig", "simclr", "swav"}


def test_help_lists_options_by_section_and_method(capsys):
    assert main(["pretrain", "--help"]) == 0
    out = capsys.readouterr().out
    order = ["Method:", "Data:", "Image encoder:", "Augmentation:", "Training:", "Run:",
             "Method options: contig, simclr, swav:", "Method options: contig:", "Method options: simclr, swav:",
             "Method options: swav:", "Method options: puzzle:"]
    at = [out.index(title) for title in order]
    assert at == sorted(at), out
    swav = out[out.index("Method options: swav:"):out.index("Method options: puzzle:")]
    assert "--sk-iters" in swav and "--prototypes" in swav and "--pairs" not in swav


def test_config_option_takes_a_runs_config_yaml(tmp_path, capsys):
    cfg = PretrainConfig.from_options(method="simclr", epochs=0, width=0.25, out=str(tmp_path / "old"))
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict()))
    # the file's --epochs 0 reaches the checks: the settings were read from its sections
    assert main(["pretrain", "--config", str(tmp_path / "config.yaml"), "--out", str(tmp_path / "new"),
                 "--device", "cpu"]) == 2
    assert "--epochs 0: a run needs at least 1 epoch" in capsys.readouterr().err


def test_a_runs_config_yaml_gives_the_next_run_its_settings(tmp_path):
    from medcl.cli.pretrain import make_command

    cfg = PretrainConfig.from_options(method="swav", width=0.25, crop_scale=(0.3, 0.9), prototypes=17, seed=5,
                                      out=str(tmp_path / "old"))
    (tmp_path / "config.yaml").write_text(cfg.to_yaml())
    ctx = make_command().make_context("pretrain", ["--config", str(tmp_path / "config.yaml"), "--out",
                                                   str(tmp_path / "new"), "--seed", "6"])
    given = {k: v for k, v in ctx.params.items() if v is not None}
    again = PretrainConfig.from_options(**given)
    assert again.flat() == {**cfg.flat(), "out": str(tmp_path / "new"), "seed": 6}     # the flags still win


def test_options_of_another_method_warn_or_are_refused(tmp_path, capsys):
    assert main(["pretrain", "--method", "simclr", "--genetics-hidden", "16", "--prototypes", "10", "--epochs", "0",
                 "--out", str(tmp_path / "r"), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "--genetics-hidden, --prototypes: options of other methods, ignored by simclr" in err
    assert main(["pretrain", "--method", "swav", "--modalities", "image,prs", "--out", str(tmp_path / "r"),
                 "--device", "cpu"]) == 2
    assert "--modalities applies to contig only, not swav" in capsys.readouterr().err


def test_with_options_copies(tmp_path):
    cfg = PretrainConfig.from_options(method="puzzle", grid=4)
    other = cfg.with_options(grid=2, lr=0.5)
    assert (cfg.sections["puzzle"].grid, cfg.train.lr) == (4, 1e-3)
    assert (other.sections["puzzle"].grid, other.train.lr) == (2, 0.5)
    assert dataclasses.replace(cfg) == cfg
