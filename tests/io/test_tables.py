"""medcl.io.tables: manifests, PRS/burden/label tables and the join by ID."""
from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest

from medcl.errors import ManifestError, TableError
from medcl.io.tables import join_on_ids, read_manifest, read_table


@pytest.fixture
def rng():
    seed = int.from_bytes(os.urandom(4), "little")
    print(f"numpy seed {seed}")
    return np.random.default_rng(seed)


def make_images(root, names):
    for name in names:
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x")


# ---------------------------------------------------------------- manifest

def test_manifest_relative_and_absolute_paths(tmp_path):
    make_images(tmp_path / "data", ["img/a.png", "img/b.png", "bones/b.png"])
    absolute = tmp_path / "data" / "img" / "b.png"
    (tmp_path / "data" / "m.csv").write_text(
        "FID,IID,path,view,split,bone_path,age\n"
        f"001,007,img/a.png,PA,train,,41\n"
        f"001,008,{absolute},AP,test,bones/b.png,\n")
    df = read_manifest(tmp_path / "data" / "m.csv")
    assert list(df["FID"]) == ["001", "001"] and list(df["IID"]) == ["007", "008"]
    assert list(df["path"]) == [str(tmp_path / "data" / "img" / "a.png"), str(absolute)]
    assert pd.isna(df["bone_path"][0]) and df["bone_path"][1] == str(tmp_path / "data" / "bones" / "b.png")
    assert list(df["split"]) == ["train", "test"] and list(df["view"]) == ["PA", "AP"]
    assert df["age"].dtype == np.float64 and np.isnan(df["age"][1])


def test_manifest_missing_files_reported_together(tmp_path):
    make_images(tmp_path, ["ok.png"])
    rows = "".join(f"F,{i},missing_{i}.png\n" for i in range(25))
    (tmp_path / "m.csv").write_text("FID,IID,path\nF,x,ok.png\n" + rows)
    with pytest.raises(ManifestError) as err:
        read_manifest(tmp_path / "m.csv")
    msg = str(err.value)
    assert "25 of 26" in msg and str(tmp_path / "m.csv") in msg and "15 more" in msg
    assert "missing_0.png" in msg and "missing_9.png" in msg and "missing_10.png" not in msg
    assert len(read_manifest(tmp_path / "m.csv", check_files=False)) == 26


def test_manifest_named_path_columns(tmp_path):
    make_images(tmp_path, ["a.png", "seg.png"])
    (tmp_path / "m.csv").write_text("FID,IID,path,mask\nF,1,a.png,seg.png\n")
    df = read_manifest(tmp_path / "m.csv", path_columns=["path", "mask"])
    assert df["mask"][0] == str(tmp_path / "seg.png")
    (tmp_path / "m.csv").write_text("FID,IID,path,mask\nF,1,a.png,gone.png\n")
    with pytest.raises(ManifestError, match="gone.png"):
        read_manifest(tmp_path / "m.csv", path_columns=["path", "mask"])


def test_manifest_parquet(tmp_path, rng):
    pytest.importorskip("pyarrow", exc_type=ImportError)
    make_images(tmp_path / "d", [f"{i}.png" for i in range(6)])
    df = pd.DataFrame({"FID": rng.integers(0, 1000, 6), "IID": [f"0{i}" for i in range(6)],
                       "path": [f"{i}.png" for i in range(6)], "split": ["train"] * 4 + ["val", "test"],
                       "score": rng.normal(size=6)})
    df.to_parquet(tmp_path / "d" / "m.parquet")
    got = read_manifest(tmp_path / "d" / "m.parquet")
    assert list(got["FID"]) == [str(v) for v in df["FID"]]  # integer FIDs become text
    assert list(got["IID"]) == list(df["IID"])
    assert list(got["path"]) == [str(tmp_path / "d" / f"{i}.png") for i in range(6)]
    np.testing.assert_array_equal(got["score"], df["score"])


def test_manifest_unreadable_parquet(tmp_path):
    (tmp_path / "m.parquet").write_bytes(b"not parquet")
    with pytest.raises(ManifestError, match="Parquet"):
        read_manifest(tmp_path / "m.parquet")


@pytest.mark.parametrize("text, words", [
    ("FID,path\nF,a.png\n", ["missing column(s) IID", "found FID, path"]),
    ("FID,IID,image\nF,1,a.png\n", ["missing column(s) path"]),
    ("FID,IID,path\n", ["no rows"]),
    ("", ["empty"]),
    ("FID,IID,path,split\nF,1,a.png,train\nF,2,a.png,training\nF,3,a.png,\n",
     ["2 row(s) have an unknown split", "training", "<empty>", "train, val, test"]),
    ("FID,IID,path\nF,,a.png\n", ["empty IID"]),
    ("FID,IID,path\nF,1,\n", ["empty path"]),
])
def test_manifest_bad(tmp_path, text, words):
    make_images(tmp_path, ["a.png"])
    (tmp_path / "m.csv").write_text(text)
    with pytest.raises(ManifestError) as err:
        read_manifest(tmp_path / "m.csv")
    for w in words + [str(tmp_path / "m.csv")]:
        assert w in str(err.value), str(err.value)


def test_manifest_unknown_extension(tmp_path):
    (tmp_path / "m.xlsx").write_text("x")
    with pytest.raises(ManifestError, match="unknown manifest type"):
        read_manifest(tmp_path / "m.xlsx")


# ---------------------------------------------------------------- tables

def write_scores(path, fid, iid, scores: dict, sep=","):
    lines = [sep.join(["FID", "IID", *scores])]
    for k in range(len(fid)):
        empty = "NA" if sep == " " else ""
        cells = [empty if np.isnan(v[k]) else repr(float(v[k])) for v in scores.values()]
        lines.append(sep.join([fid[k], iid[k], *cells]))
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("name, sep", [("prs.csv", ","), ("prs.tsv", "\t"), ("prs.txt", "\t"),
                                       ("prs.txt", ","), ("prs.dat", " ")])
def test_table_round_trip_with_nan(tmp_path, rng, name, sep):
    n = 9
    fid, iid = [f"F{i % 3}" for i in range(n)], [f"00{i}" for i in range(n)]
    scores = {f"PRS_{k}": rng.normal(size=n) for k in range(3)}
    scores["PRS_1"][[0, 4]] = np.nan
    write_scores(tmp_path / name, fid, iid, scores, sep)
    df = read_table(tmp_path / name, kind="prs")
    assert list(df.columns) == ["FID", "IID", "PRS_0", "PRS_1", "PRS_2"]
    assert list(df["FID"]) == fid and list(df["IID"]) == iid
    for k, v in scores.items():
        np.testing.assert_array_equal(df[k].to_numpy(), v)
        assert df[k].dtype == np.float64


def test_table_na_tokens_and_id_aliases(tmp_path):
    (tmp_path / "b.tsv").write_text("#FID\tiid\tburden\n1\t2\tNA\n1\t3\t4\n1\t4\t\n")
    df = read_table(tmp_path / "b.tsv", kind="burden")
    assert list(df.columns) == ["FID", "IID", "burden"]
    np.testing.assert_array_equal(df["burden"], [np.nan, 4.0, np.nan])


def test_whitespace_table_with_a_missing_cell(tmp_path):
    (tmp_path / "t.txt").write_text("FID IID a b\nA 1 1.0 2.0\nA 2  3.0\n")
    with pytest.raises(TableError, match="line 3 has 3 fields"):
        read_table(tmp_path / "t.txt")


def test_table_duplicates(tmp_path):
    (tmp_path / "t.csv").write_text("FID,IID,s\nA,1,1\nA,2,2\nA,1,3\nB,1,4\n")
    with pytest.raises(TableError) as err:
        read_table(tmp_path / "t.csv")
    assert "A/1" in str(err.value) and str(tmp_path / "t.csv") in str(err.value)


def test_table_non_numeric_column(tmp_path):
    (tmp_path / "t.csv").write_text("FID,IID,good,bad\nA,1,1.5,2\nA,2,2.5,high\n")
    with pytest.raises(TableError) as err:
        read_table(tmp_path / "t.csv", kind="prs")
    assert "'bad'" in str(err.value) and "'high'" in str(err.value) and "line 3" in str(err.value)


def test_labels_may_have_split(tmp_path):
    (tmp_path / "l.csv").write_text("FID,IID,label,split\nA,1,1,train\nA,2,0,val\nA,3,,test\n")
    df = read_table(tmp_path / "l.csv", kind="labels")
    assert list(df["split"]) == ["train", "val", "test"]
    np.testing.assert_array_equal(df["label"], [1.0, 0.0, np.nan])
    with pytest.raises(TableError, match="split"):
        read_table(tmp_path / "l.csv", kind="prs")
    (tmp_path / "l.csv").write_text("FID,IID,label,split\nA,1,1,train\nA,2,0,dev\n")
    with pytest.raises(TableError, match="unknown split: dev"):
        read_table(tmp_path / "l.csv", kind="labels")


@pytest.mark.parametrize("text, words", [
    ("ID,score\n1,2\n", ["missing column(s) FID, IID"]),
    ("FID,IID\nA,1\n", ["no value columns"]),
    ("FID,IID,s\n", ["no rows"]),
])
def test_table_bad(tmp_path, text, words):
    (tmp_path / "t.csv").write_text(text)
    with pytest.raises(TableError) as err:
        read_table(tmp_path / "t.csv")
    for w in words:
        assert w in str(err.value)


def test_table_unknown_kind_and_missing_file(tmp_path):
    with pytest.raises(TableError, match="kind"):
        read_table(tmp_path / "t.csv", kind="pheno")
    with pytest.raises(TableError, match="not found"):
        read_table(tmp_path / "t.csv")


# ---------------------------------------------------------------- join by ID

def test_join_on_ids_ignores_row_order(tmp_path, rng):
    n = 8
    make_images(tmp_path, [f"{i}.png" for i in range(n)])
    order = rng.permutation(n)
    (tmp_path / "m.csv").write_text("FID,IID,path\n" + "".join(f"F,0{i},{i}.png\n" for i in range(n))
                                    + "F,03,3.png\n")  # individual 03 has two images
    prs = rng.normal(size=n)
    (tmp_path / "p.csv").write_text("FID,IID,prs\n" + "".join(f"F,0{i},{prs[i]!r}\n" for i in order[:-1]))
    man = read_manifest(tmp_path / "m.csv")
    table = read_table(tmp_path / "p.csv", kind="prs")
    joined = join_on_ids(man, table)
    dropped = order[-1]
    assert len(joined) == n - 1 + (dropped != 3)
    for _, row in joined.iterrows():
        i = int(row["IID"])
        assert row["prs"] == prs[i] and row["path"] == str(tmp_path / f"{i}.png")
    left = join_on_ids(man, table.set_index(["FID", "IID"]), how="left")
    assert len(left) == n + 1 and list(left["IID"]) == list(man["IID"])
    assert left.loc[left["IID"] == f"0{dropped}", "prs"].isna().all()


def test_join_on_ids_rejects_bad_inputs():
    a = pd.DataFrame({"FID": ["F"], "IID": ["1"], "x": [1.0]})
    with pytest.raises(TableError, match="both frames have column"):
        join_on_ids(a, a.copy())
    with pytest.raises(TableError, match="not all strings"):
        join_on_ids(a, pd.DataFrame({"FID": ["F"], "IID": [1], "y": [2.0]}))
    with pytest.raises(TableError, match="repeats"):
        join_on_ids(a, pd.DataFrame({"FID": ["F", "F"], "IID": ["1", "1"], "y": [2.0, 3.0]}))
