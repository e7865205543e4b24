"""One --data for every command; people from DICOM headers as keyed hashes; splits by person;
multi-frame files as one image per frame on every route. On real pydicom test files (CT, MR,
multi-frame MR), some given PatientIDs so that several files share one patient."""
from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest

from medcl.cli import main
from medcl.data import shards as S
from medcl.data.identity import keyed, manifest_table, read_key
from medcl.errors import DicomError, MedclError
from medcl.prepare import prepare

PID_A, PID_B, PID_C = "PIDA7731QXZ", "PIDB4412ZQW", "PIDC9090XYV"  # appear in no output file
PID_D = [f"PIDD{i}55K1R" for i in range(6)]


def _find(name: str) -> Path:
    """A file of pydicom's test files or of pydicom-data."""
    import pydicom.data

    for folder in (Path(pydicom.data.__file__).parent / "test_files",):
        if (folder / name).is_file():
            return folder / name
    try:
        import data_store
    except ImportError:
        pytest.skip("pydicom-data is not installed")
    path = Path(data_store.__file__).parent / "data" / name
    if not path.is_file():
        pytest.skip(f"{name} is not in pydicom-data")
    return path


def _copy(src: Path, dst: Path, pid: str | None) -> None:
    ds = pydicom.dcmread(src)
    if pid is not None:
        ds.PatientID = pid
    dst.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(dst)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A folder as a new user has it: patient A's MR in three files (two folders), patient B's CT,
    two 10-frame MR files (one without a PatientID), six more patients, one broken file.
    Returns (root, {key: patient or None, ...})."""
    root = tmp_path_factory.mktemp("archive") / "dicom"
    who = {}
    for key, name, pid in [("a/MR_small.dcm", "MR_small.dcm", PID_A), ("a/MR_small_RLE.dcm", "MR_small_RLE.dcm", PID_A),
                           ("b/MR_small_bigendian.dcm", "MR_small_bigendian.dcm", PID_A),
                           ("b/CT_small.dcm", "CT_small.dcm", PID_B),
                           ("multi/emri_small_RLE.dcm", "emri_small_RLE.dcm", PID_C),
                           ("multi/emri_small.dcm", "emri_small.dcm", None)]:
        _copy(_find(name), root / key, pid)
        who[key] = pid
    for i, pid in enumerate(PID_D):
        _copy(_find("MR_small.dcm"), root / f"more/p{i}.dcm", pid)
        who[f"more/p{i}.dcm"] = pid
    assert not pydicom.dcmread(root / "multi/emri_small.dcm").get("PatientID")  # the real file has none
    data = _find("CT_small.dcm").read_bytes()
    (root / "broken.dcm").write_bytes(data[:len(data) // 3])
    return root, who


@pytest.fixture(scope="module")
def dataset(folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("prepared") / "DATASET"
    prepare(folder[0], out, workers=1)
    return out


def _rows(path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def test_prepare_groups_patients_by_keyed_ids_one_row_per_frame(folder, dataset):
    root, who = folder
    m = _rows(dataset / S.MANIFEST)
    assert list(m.columns) == ["FID", "IID", "path", "frame", "study", "series", "split"]
    assert set(m["path"]) == set(who) and "broken.dcm" in _rows(dataset / S.BAD_FILES)["path"].tolist()
    frames = m.groupby("path")["frame"].apply(lambda f: sorted(map(int, f)))
    assert frames["multi/emri_small.dcm"] == list(range(10)) and frames["multi/emri_small_RLE.dcm"] == list(range(10))
    assert all(frames[k] == [0] for k in who if not k.startswith("multi/"))
    person = m.drop_duplicates("path").set_index("path")["IID"]
    assert person["a/MR_small.dcm"] == person["a/MR_small_RLE.dcm"] == person["b/MR_small_bigendian.dcm"]
    heads = ["a/MR_small.dcm", "b/CT_small.dcm", "multi/emri_small_RLE.dcm", "multi/emri_small.dcm",
             *[f"more/p{i}.dcm" for i in range(6)]]
    assert len({person[k] for k in heads}) == 10 and m["IID"].nunique() == 10
    assert (m["FID"] == m["IID"]).all() and m["IID"].str.fullmatch("[0-9a-f]{16}").all()
    key = read_key(dataset / "id-key")
    assert person["a/MR_small.dcm"] == keyed(key, "patient", PID_A)
    assert person["multi/emri_small.dcm"] == keyed(key, "file", "multi/emri_small.dcm")  # no PatientID: its own person
    assert stat.S_IMODE(os.stat(dataset / "id-key").st_mode) == 0o600
    assert S.read_meta(dataset)["ids"]["mode"] == "headers"


def test_raw_header_ids_reach_no_output_file(folder, dataset, tmp_path):
    root, who = folder
    raw = [p.encode() for p in (PID_A, PID_B, PID_C, *PID_D)]
    for f in root.rglob("*.dcm"):
        if f.name != "broken.dcm":
            ds = pydicom.dcmread(f, stop_before_pixels=True)
            raw += [str(ds[k].value).encode() for k in ("StudyInstanceUID", "SeriesInstanceUID") if k in ds]
    assert len(raw) > 20
    assert main(["manifest", str(root), "--out", str(tmp_path / "m.csv")]) == 0
    outputs = [p for p in [*dataset.rglob("*"), *tmp_path.rglob("*")] if p.is_file()]
    assert len(outputs) >= 8
    for path in outputs:
        data = path.read_bytes()
        for value in raw:
            assert value not in data, (path, value)


def test_same_key_same_ids_other_key_other_ids(folder, dataset, tmp_path, capsys):
    root, _ = folder
    same, other = tmp_path / "same" / "m.csv", tmp_path / "other" / "m.csv"
    assert main(["manifest", str(root), "--out", str(same), "--id-key", str(dataset / "id-key")]) == 0
    assert main(["manifest", str(root), "--out", str(other)]) == 0  # a new key, made beside it
    assert (other.parent / "id-key").is_file() and not (same.parent / "id-key").exists()
    a, b, c = _rows(dataset / S.MANIFEST), _rows(same), _rows(other)
    for t in (b, c):  # paths relative to the manifest; headers only: the truncated file is listed
        t["path"] = [os.path.relpath(os.path.normpath(same.parent / p), root) for p in t["path"]]
        assert (t["path"] == "broken.dcm").sum() == 1
    b, c = (t[t["path"] != "broken.dcm"].reset_index(drop=True) for t in (b, c))
    pd.testing.assert_frame_equal(a, b)  # prepare and manifest: the same rows under the same key
    assert c["path"].tolist() == b["path"].tolist() and not set(c["IID"]) & set(a["IID"])
    def grouping(t):
        return sorted(sorted(g) for g in t.groupby("IID")["path"].apply(list))
    assert grouping(c) == grouping(a)  # the same people
    assert main(["manifest", str(root), "--out", str(other)]) == 2  # the user's edits are not overwritten
    assert "--overwrite" in capsys.readouterr().err
    assert main(["manifest", str(root), "--out", str(tmp_path / "p.csv"), "--ids", "path"]) == 0
    p = _rows(tmp_path / "p.csv")
    assert (p["IID"] == [os.path.relpath(os.path.normpath(tmp_path / x), root) for x in p["path"]]).all()


def test_splits_are_by_person(tmp_path):
    key = os.urandom(32)
    files = [(f"f{i}.dcm", 1 + i % 3) for i in range(600)]
    ids = {f: {"IID": keyed(key, "patient", f"P{i % 150}"), "study": "", "series": "", "from_header": True}
           for i, (f, _) in enumerate(files)}
    table = manifest_table(files, ids, val_fraction=0.2, test_fraction=0.1)
    assert len(table) == sum(n for _, n in files)
    per_person = table.groupby("IID")["split"].nunique()
    assert len(per_person) == 150 and (per_person == 1).all()  # no person in two splits
    share = table.drop_duplicates("IID")["split"].value_counts(normalize=True)
    assert abs(share["val"] - 0.2) < 0.1 and abs(share["test"] - 0.1) < 0.08
    again = manifest_table(files[::-1], ids, val_fraction=0.2, test_fraction=0.1)
    assert again.drop_duplicates("IID").set_index("IID")["split"].to_dict() == \
        table.drop_duplicates("IID").set_index("IID")["split"].to_dict()  # deterministic, order-free
    from medcl.data.splits import people_splits
    people = table[["FID", "IID"]].drop_duplicates().reset_index(drop=True)
    people_splits(people, table)  # the cohort accepts it (a straddling person is a TableError)


def test_every_frame_is_an_image_on_every_route(folder, dataset, tmp_path):
    from medcl.data.sources import FileSource, open_source, read_data
    from medcl.io.pixels import read_raw

    root, _ = folder
    multi = root / "multi/emri_small.dcm"
    frames = read_raw(multi)
    assert len(frames) == 10
    _, shards = open_source(dataset)
    for source in (FileSource(), shards):
        assert bytes(source.read(multi, 7).data) == bytes(frames[7].data)
        with pytest.raises(DicomError, match="has 10 frames and its manifest row names none"):
            source.read(multi)
        with pytest.raises(DicomError, match="frame 10 does not exist"):
            source.read(multi, 10)
    # a hand-written manifest: one row for the multi-frame file, no frame column
    pd.DataFrame({"FID": ["x", "y"], "IID": ["x", "y"], "path": [str(multi), str(root / "b/CT_small.dcm")]}) \
        .to_csv(tmp_path / "hand.csv", index=False)
    summary = prepare(tmp_path / "hand.csv", tmp_path / "D", workers=1)
    expanded = _rows(tmp_path / "D" / S.MANIFEST)
    assert summary.n_records == 11 and expanded["frame"].tolist() == [str(i) for i in range(10)] + ["0"]
    assert expanded["IID"].tolist() == ["x"] * 10 + ["y"]
    table, source, _ = read_data(tmp_path / "D")
    assert table["frame"].tolist() == list(range(10)) + [0]
    assert table["path"].iloc[0] == str(multi)  # the file it was prepared from, not a path inside D
    from medcl.data import ImageDataset
    from oracles import rendered
    from medcl.data.bad_samples import Skipped

    for data in (tmp_path / "D", tmp_path / "D" / S.MANIFEST, dataset, root.parent / "m.csv"):
        if data.name == "m.csv":
            assert main(["manifest", str(root), "--out", str(data), "--id-key", str(dataset / "id-key")]) == 0
        ds = rendered(ImageDataset(data, 16))
        items = [ds[i] for i in range(len(ds))]
        bad = [it.path for it in items if isinstance(it, Skipped)]  # medcl manifest reads headers only
        assert [Path(b).name for b in bad] == (["broken.dcm"] if data.name == "m.csv" else []), bad
        assert all(it["image"].shape == (1, 16, 16) for it in items if not isinstance(it, Skipped))
        rows = ds.frame.reset_index(drop=True)
        at = rows.index[(rows["path"].map(os.path.basename) == "emri_small.dcm")].tolist()
        assert len(at) == 10 and not np.allclose(items[at[0]]["image"], items[at[5]]["image"])


def test_preview_shows_the_frames_of_a_multi_frame_file(folder, dataset, tmp_path):
    from PIL import Image

    from medcl.preview import GAP

    root, _ = folder
    for data, rows in ((root / "multi/emri_small.dcm", 3), (dataset, 3), (dataset / S.MANIFEST, 3)):
        out = tmp_path / f"{rows}-{data.name}.png"
        assert main(["preview", "--data", str(data), "--out", str(out), "--images", str(rows), "--views", "1",
                     "--image-size", "16"]) == 0
        assert np.asarray(Image.open(out)).shape[0] == rows * (16 + GAP) + GAP


@pytest.mark.parametrize("command", ["pretrain", "embed", "finetune", "preview"])
def test_a_missing_data_path_is_named_before_anything_else(command, tmp_path, capsys):
    missing = str(tmp_path / "nothere.csv")
    args = {"pretrain": ["pretrain", "--data", missing, "--out", str(tmp_path / "run")],  # contig, no --genotypes
            "embed": ["embed", "w.safetensors", "--data", missing, "--out", str(tmp_path / "e.csv")],
            "finetune": ["finetune", "w.safetensors", "--labels", "l.csv", "--target", "y", "--data", missing,
                         "--out", str(tmp_path / "ft")],
            "preview": ["preview", "--data", missing, "--out", str(tmp_path / "p.png")]}[command]
    assert main([*args, "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert f"{missing}: no such manifest or prepared dataset" in err, err
    assert "medcl manifest FOLDER" in err and "--manifest" not in err and "genotype" not in err
    assert not (tmp_path / "run").exists()


def test_a_plain_folder_is_not_data(folder, capsys):
    assert main(["preview", "--data", str(folder[0]), "--out", "x.png"]) == 2
    err = capsys.readouterr().err
    assert "is a folder but not a prepared dataset" in err and "medcl prepare FOLDER" in err


def test_pretrain_embed_finetune_on_a_prepared_dataset(folder, dataset, tmp_path):
    """The new user's route: prepare → (edit the manifest's splits) → pretrain → embed → finetune."""
    data = tmp_path / "DATASET"
    shutil.copytree(dataset, data)
    m = _rows(data / S.MANIFEST)
    people = sorted(m["IID"].unique())
    split = dict(zip(people, ["train"] * 6 + ["val"] * 2 + ["test"] * 2))
    m.assign(split=m["IID"].map(split)).to_csv(data / S.MANIFEST, index=False)  # an edit, per person
    run = tmp_path / "run"
    assert main(["pretrain", "--method", "simclr", "--data", str(data), "--epochs", "1", "--batch-size", "4",
                 "--image-size", "32", "--width", "0.25", "--workers", "0", "--out", str(run), "--device", "cpu"]) == 0
    weights = str(run / "encoder.safetensors")
    for i, d in enumerate((data, data / S.MANIFEST)):
        assert main(["embed", weights, "--data", str(d), "--out", str(tmp_path / f"e{i}.csv"), "--format", "csv",
                     "--workers", "0", "--device", "cpu"]) == 0
    e0, e1 = pd.read_csv(tmp_path / "e0.csv", dtype={"IID": str}), pd.read_csv(tmp_path / "e1.csv", dtype={"IID": str})
    pd.testing.assert_frame_equal(e0, e1)
    assert len(e0) == len(m) and e0["frame"].tolist() == [int(f) for f in m["frame"]]
    assert e0["path"].map(lambda p: Path(p).is_file()).all()  # the source files, not paths inside DATASET
    rng = np.random.default_rng()
    pd.DataFrame({"FID": people, "IID": people, "score": rng.normal(size=len(people))}).to_csv(
        tmp_path / "labels.csv", index=False)
    assert main(["finetune", weights, "--data", str(data), "--labels", str(tmp_path / "labels.csv"),
                 "--target", "score", "--task", "regression", "--fractions", "1", "--repeats", "1",
                 "--baseline", "none", "--workers", "0", "--out", str(tmp_path / "ft"), "--device", "cpu"]) == 0
    assert (tmp_path / "ft" / "metrics.json").is_file()
