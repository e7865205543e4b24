"""The medcl CLI: exit codes, error lines, config precedence, lazy imports, info."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import medcl
from medcl.cli import main


def run(*args, env=None, timeout=120):
    """The installed console script in a subprocess: (exit code, stdout, stderr)."""
    exe = os.path.join(os.path.dirname(sys.executable), "medcl")
    cmd = [exe, *args] if os.path.exists(exe) else [sys.executable, "-m", "medcl.cli", *args]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                       env={**os.environ, **(env or {})})
    return p.returncode, p.stdout, p.stderr


def test_help_is_lazy():
    # `medcl --help` must not import torch, pydicom or pandas (that is what makes it fast).
    code = ("import sys\nfrom medcl.cli import main\nrc = main(['--help'])\n"
            "heavy = [m for m in ('torch', 'pydicom', 'pandas', 'numpy') if m in sys.modules]\n"
            "print('RC', rc, 'HEAVY', heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "RC 0 HEAVY []" in out.stdout, out.stdout + out.stderr
    assert "demo-data" in out.stdout and "info" in out.stdout


def test_version():
    rc, out, _ = run("--version")
    assert rc == 0 and out.strip() == f"medcl {medcl.__version__}"


def test_info_json():
    rc, out, err = run("info", "--json", "--device", "cpu")
    assert rc == 0, err
    info = json.loads(out)
    assert info["device"] == "cpu"
    assert info["ops"]["intensity"]["cpu"] in ("cpp", "reference")
    assert info["extension"]["loaded"] == (info["ops"]["intensity"]["cpu"] == "cpp")
    assert "RLE Lossless" in info["dicom_codecs"]


def test_info_text_and_reference_backend():
    rc, out, err = run("info", env={"MEDCL_BACKEND": "reference"})
    assert rc == 0, err
    assert "intensity" in out and "cpu: reference" in out
    assert "build      reference ops only: MEDCL_BACKEND=reference" in out


def test_bad_usage_exit_2_no_traceback():
    for args in (["no-such-command"], ["info", "--no-such-option"], ["info", "--device", "tpu"],
                 ["demo-data"], ["demo-data", "x", "--n", "many"]):
        rc, out, err = run(*args)
        assert rc == 2, (args, err)
        assert "Traceback" not in err


def test_bad_input_exit_2_one_line(tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("precious")
    rc, out, err = run("demo-data", str(tmp_path / "full"), "--n", "20", "--size", "64")
    assert rc == 2 and "Traceback" not in err
    assert err.strip().count("\n") == 0 and str(tmp_path / "full") in err
    assert (tmp_path / "full" / "keep.txt").read_text() == "precious"  # nothing lost


def test_config_yaml_env_cli_precedence(tmp_path, monkeypatch):
    seen = {}

    def fake_generate(out, **kw):
        seen.update(kw, out=out)
        raise medcl.MedclError("stop here")  # exit 2 without writing anything

    import medcl.demo
    monkeypatch.setattr(medcl.demo, "generate_cohort", fake_generate)
    cfg = tmp_path / "c.yaml"
    cfg.write_text("demo-data:\n  n: 300\n  seed: 7\n  size: 128\n")
    monkeypatch.delenv("MEDCL_DEMO_DATA_SEED", raising=False)
    assert main(["demo-data", str(tmp_path / "o"), "--config", str(cfg)]) == 2
    assert (seen["n"], seen["seed"], seen["size"]) == (300, 7, 128)          # YAML over defaults
    monkeypatch.setenv("MEDCL_DEMO_DATA_SEED", "11")
    assert main(["demo-data", str(tmp_path / "o"), "--config", str(cfg)]) == 2
    assert (seen["n"], seen["seed"]) == (300, 11)                             # env over YAML
    assert main(["demo-data", str(tmp_path / "o"), "--config", str(cfg), "--seed", "13"]) == 2
    assert seen["seed"] == 13                                                 # CLI over env
    cfg.write_text("n: 250\n")                                                # top-level keys work too
    monkeypatch.delenv("MEDCL_DEMO_DATA_SEED")
    assert main(["demo-data", str(tmp_path / "o"), "--config", str(cfg)]) == 2
    assert (seen["n"], seen["seed"]) == (250, 0)


def test_bad_config_files(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("demo-data: [unclosed\n")
    assert main(["demo-data", str(tmp_path / "o"), "--config", str(bad)]) == 2
    assert "bad.yaml" in capsys.readouterr().err
    bad.write_text("demo-data:\n  nn: 3\n")
    assert main(["demo-data", str(tmp_path / "o"), "--config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "unknown option 'nn'" in err and "bad.yaml" in err
    assert main(["info", "--config", str(tmp_path / "missing.yaml")]) == 2


@pytest.mark.parametrize("kind", ["random_dicom", "missing_manifest_files", "bad_bed_magic"])
def test_reader_errors_map_to_exit_2(tmp_path, monkeypatch, capsys, kind):
    """Errors of the readers reach the user as one line and exit 2, never a traceback."""
    def reader(out, **kw):
        if kind == "random_dicom":
            from medcl.io.dicom import read_image
            (tmp_path / "r.dcm").write_bytes(os.urandom(3000))
            read_image(tmp_path / "r.dcm")
        elif kind == "missing_manifest_files":
            from medcl.io.tables import read_manifest
            (tmp_path / "m.csv").write_text("FID,IID,path\nF1,I1,a.dcm\nF2,I2,b.dcm\n")
            read_manifest(tmp_path / "m.csv")
        else:
            (tmp_path / "g.bed").write_bytes(b"\x00\x00\x01")
            (tmp_path / "g.bim").write_text("1\trs1\t0\t1\tA\tG\n")
            (tmp_path / "g.fam").write_text("F1 I1 0 0 0 -9\n")
            from medcl.io.plink import read_genotypes
            read_genotypes(tmp_path / "g")

    import medcl.demo
    monkeypatch.setattr(medcl.demo, "generate_cohort", reader)
    assert main(["demo-data", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("medcl: error: ") and not any("Traceback" in e for e in err)
    assert str(tmp_path) in err[-1]


@pytest.mark.parametrize("args,says", [
    (["--method", "puzzle", "--modalities", "image,snp"], "applies to contig only"),
    (["--method", "contig", "--pairs", "patient"], "applies to simclr and swav only"),
    (["--method", "simclr", "--no-augment"], "identical copy"),
])
def test_pretrain_refuses_options_of_other_methods(tmp_path, args, says):
    rc, out, err = run("pretrain", *args, "--out", str(tmp_path / "run"), "--device", "cpu")
    assert rc == 2 and "Traceback" not in err and says in err, err
    assert not (tmp_path / "run").exists()                                 # refused before anything is written


@pytest.mark.parametrize("args,says", [
    (["--epochs", "0"], "--epochs 0: a run needs at least 1 epoch"),
    (["--method", "simclr", "--batch-size", "1"], "--batch-size 1 is too small for simclr: a batch needs at least 2"),
    (["--method", "swav", "--batch-size", "1"], "--batch-size 1 is too small for swav: a batch needs at least 2"),
    (["--method", "contig", "--batch-size", "1"], "--batch-size 1 is too small for contig: it needs at least 2"),
])
def test_pretrain_refuses_runs_that_would_mean_nothing(tmp_path, capsys, args, says):
    """In process (no data is read before these checks): exit 2, one line, nothing written."""
    assert main(["pretrain", *args, "--out", str(tmp_path / "run"), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert says in err and "use --" in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "run").exists()


def test_misspelt_environment_variables_are_named(tmp_path, capsys, monkeypatch):
    for name in list(os.environ):
        if name.startswith("MEDCL_"):
            monkeypatch.delenv(name)
    for name, value in {"MEDCL_PRETRAIN_EPOCHZ": "3", "MEDCL_DEVICES": "cpu", "MEDCL_CACHE_DIR": str(tmp_path),
                        "MEDCL_BACKEND": "reference", "MEDCL_CUDA": "0", "MEDCL_DEMO_DATA_SEED": "2",
                        "MEDCL_PRETRAIN_LR": "0.01", "MEDCL_WHATEVER": "1"}.items():
        monkeypatch.setenv(name, value)
    assert main(["pretrain", "--epochs", "0", "--out", str(tmp_path / "run")]) == 2
    warnings = [ln for ln in capsys.readouterr().err.splitlines() if "warning" in ln]
    assert len(warnings) == 3, warnings
    assert "MEDCL_DEVICES is not a medcl setting and is ignored; did you mean MEDCL_DEVICE?" in warnings[0]
    assert "MEDCL_PRETRAIN_EPOCHZ" in warnings[1] and warnings[1].endswith("did you mean MEDCL_PRETRAIN_EPOCHS?")
    assert "MEDCL_WHATEVER" in warnings[2] and "MEDCL_<COMMAND>_<OPTION>" in warnings[2]
