"""medcl.prepare and medcl.data.shards: DICOM trees and manifests → shards, read back record by record."""
from __future__ import annotations

import dataclasses
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest
import torch
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate, generate_frames
from pydicom.sequence import Sequence
from pydicom.uid import RLELossless

from medcl.data import shards as S
from medcl.data.shards import ShardSource, open_prepared
from medcl.errors import MedclError
from medcl.prepare import prepare

NAME, PID, INSTITUTION = "QXZ^SECRETNAME", "PIDQ7731ZX", "INSTQ0918ZZ"  # appear nowhere in a dataset


def _demo_files(demo) -> dict:
    """(rle, monochrome1) → demo DICOM files of that kind."""
    root = Path(demo.paths["manifest"]).parent
    m = pd.read_csv(demo.paths["manifest"])
    kinds: dict = {}
    for p in sorted(m["path"].tolist() + m["bone_path"].dropna().tolist()):
        ds = pydicom.dcmread(root / p, stop_before_pixels=True)
        key = (ds.file_meta.TransferSyntaxUID == RLELossless, ds.PhotometricInterpretation == "MONOCHROME1")
        kinds.setdefault(key, []).append(root / p)
    assert len(kinds) == 4, sorted(kinds)
    return kinds


def _with_luts(ds) -> None:
    """A Modality LUT Sequence and a VOI LUT Sequence instead of rescale and window."""
    n = 4096
    mod, voi = Dataset(), Dataset()
    mod.add_new(0x00283002, "US", [n, 0, 16])
    mod.add_new(0x00283006, "OW", ((np.arange(n) * 3 // 2 + 100) % 65536).astype("<u2").tobytes())
    mod.ModalityLUTType = "US"
    voi.add_new(0x00283002, "US", [n, 200, 12])
    voi.add_new(0x00283006, "OW", (4095 - np.arange(n) % 4096).astype("<u2").tobytes())
    ds.ModalityLUTSequence, ds.VOILUTSequence = Sequence([mod]), Sequence([voi])
    ds.PixelRepresentation = 1  # signed 12-bit stored values (read_image's Lut.apply fails on uint16)
    for keyword in ("RescaleSlope", "RescaleIntercept", "WindowCenter", "WindowWidth"):
        delattr(ds, keyword)


def _bad_rle(src: Path, dst: Path) -> None:
    """An RLE file whose second segment offset points past the end of its data."""
    ds = pydicom.dcmread(src)
    frame = bytearray(next(generate_frames(ds.PixelData, number_of_frames=1)))
    frame[8:12] = (len(frame) + 1000).to_bytes(4, "little")
    ds.PixelData = encapsulate([bytes(frame)])
    ds.PatientName, ds.PatientID, ds.InstitutionName = NAME, PID, INSTITUTION
    ds.save_as(dst)


@pytest.fixture(scope="module")
def tree(demo, tmp_path_factory):
    """A nested folder: good demo files of every kind, crafted ones, and corrupt ones.
    Returns (folder, {key: "good" | "bad"})."""
    root = tmp_path_factory.mktemp("tree") / "dicoms"
    kinds = _demo_files(demo)
    want = {}
    for i, ((rle, mono1), files) in enumerate(sorted(kinds.items())):
        for j, src in enumerate(files[:2]):
            key = f"site{i % 2}/{'rle' if rle else 'native'}/m{int(mono1)}_{j}.dcm"
            (root / key).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(src, root / key)
            want[key] = "good"
    native = kinds[(False, False)][0]
    ds = pydicom.dcmread(native)
    ds.PatientName, ds.PatientID, ds.InstitutionName = NAME, PID, INSTITUTION
    ds.save_as(root / "site0/named.dcm")
    _with_luts(ds)
    ds.save_as(root / "site1/luts.dcm")
    ds = pydicom.dcmread(kinds[(True, True)][0])
    del ds.WindowCenter, ds.WindowWidth
    ds.save_as(root / "site1/no_window.dcm")
    want.update({"site0/named.dcm": "good", "site1/luts.dcm": "good", "site1/no_window.dcm": "good"})
    (root / "bad" / "deeper").mkdir(parents=True)
    data = native.read_bytes()
    (root / "bad/truncated.dcm").write_bytes(data[:len(data) // 2])
    (root / "bad/notes.txt").write_text("not a DICOM file\n" * 20)
    (root / "bad/deeper/empty.dcm").write_bytes(b"")
    _bad_rle(kinds[(True, False)][0], root / "bad/rle_offsets.dcm")
    want.update(dict.fromkeys(["bad/truncated.dcm", "bad/notes.txt", "bad/deeper/empty.dcm",
                               "bad/rle_offsets.dcm"], "bad"))
    (root / ".hidden").write_text("skipped")
    (root / "empty_dir").mkdir()
    return root, want


@pytest.fixture(scope="module")
def prepared(tree, tmp_path_factory):
    out = tmp_path_factory.mktemp("prepared") / "DATASET"
    summary = prepare(tree[0], out, workers=1, chunk_files=3)
    return out, summary


def _check_record(a, b) -> None:
    """RawImage b (from the shards) equals a (from read_raw) field by field."""
    for field in dataclasses.fields(a):
        x, y = getattr(a, field.name), getattr(b, field.name)
        if field.name == "data":
            assert bytes(x) == bytes(y)
        elif field.name.endswith("lut"):
            assert (x is None) == (y is None), field.name
            if x is not None:
                assert (x.first_mapped, x.bits) == (y.first_mapped, y.bits)
                np.testing.assert_array_equal(np.asarray(x.data), y.data)
        else:
            assert x == y, (field.name, x, y)


def check_round_trip(source: ShardSource, key: str, file) -> None:
    from medcl.io.dicom import read_image
    from medcl.io.pixels import decode_raw, read_raw

    direct, stored = read_raw(file), source.read_all(key)
    assert len(direct) == len(stored) == source.frames(key)
    for a, b in zip(direct, stored):
        _check_record(a, b)
    images, sizes, status = decode_raw(stored)
    assert status.eq(0).all()
    ref = read_image(file)
    ref = ref[None] if ref.dim() == 2 else ref
    for img, (rows, cols), want in zip(images, sizes.tolist(), ref):
        torch.testing.assert_close(img[:rows, :cols], want, atol=1e-6, rtol=0)


def test_tree_good_files_round_trip_and_bad_files_are_listed(tree, prepared):
    root, want = tree
    out, summary = prepared
    bad = pd.read_csv(out / S.BAD_FILES)
    assert sorted(bad["path"]) == sorted(k for k, v in want.items() if v == "bad")
    reasons = dict(zip(bad["path"], bad["reason"]))
    assert reasons["bad/deeper/empty.dcm"].startswith("DicomError: empty file")
    assert reasons["bad/notes.txt"].startswith("DicomError: ")
    assert reasons["bad/truncated.dcm"].startswith("DicomError: ")
    assert "RLE segment offset" in reasons["bad/rle_offsets.dcm"], reasons["bad/rle_offsets.dcm"]
    good = sorted(k for k, v in want.items() if v == "good")
    source = ShardSource(out)
    assert source.paths == good and len(source) == len(good)
    for key in good:
        check_round_trip(source, key, root / key)
    manifest = pd.read_csv(out / S.MANIFEST, dtype=str, keep_default_na=False)
    assert list(manifest.columns) == ["FID", "IID", "path", "frame", "study", "series", "split"]
    assert manifest["path"].tolist() == good and (manifest["frame"] == "0").all()  # single-frame files
    assert (manifest["FID"] == manifest["IID"]).all() and manifest["IID"].str.fullmatch("[0-9a-f]{16}").all()
    from medcl.data.identity import keyed, read_key
    key = read_key(out / "id-key")
    named = manifest.set_index("path").loc["site0/named.dcm"]
    assert named["IID"] == keyed(key, "patient", PID) and named["split"] in ("train", "val", "test")
    assert (summary.n_files, summary.n_bad, summary.n_records) == (len(want), 4, len(good))
    assert summary.chunks == -(-len(want) // 3) and summary.n_shards == len(list((out / S.SHARDS).iterdir()))
    assert not (out / S.PARTS).exists()
    meta = S.read_meta(out)
    assert meta["counts"]["bad_files"] == 4 and meta["source"]["kind"] == "directory"
    assert meta["source"]["path"] == str(root.resolve())


def test_paths_from_the_dataset_manifest_and_the_source_are_found(tree, prepared):
    from medcl.io.tables import read_manifest

    root, want = tree
    out, _ = prepared
    manifest, source = open_prepared(out)
    assert manifest == out / S.MANIFEST
    for path in read_manifest(manifest, check_files=False)["path"]:  # absolute paths below DATASET
        assert path in source and source.read(path).data == source.read(os.path.relpath(path, out)).data
    assert str(root / "site0/named.dcm") in source  # the original file's path works too
    assert "bad/notes.txt" not in source and "nowhere.dcm" not in source
    with pytest.raises(MedclError, match="skipped by medcl prepare: DicomError"):
        source.read("bad/notes.txt")
    with pytest.raises(MedclError, match="not in the prepared dataset"):
        source.read("nowhere.dcm")
    with pytest.raises(MedclError, match="frame 1 does not exist"):
        source.read("site0/named.dcm", frame=1)
    assert open_prepared(out / S.MANIFEST)[0] == manifest
    assert open_prepared(out / S.INDEX) is None and open_prepared(root) is None


def test_no_header_value_reaches_the_dataset(prepared, caplog):
    out, _ = prepared
    for path in out.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            for value in (NAME, PID, INSTITUTION, "SECRETNAME"):
                assert value.encode() not in data, (path, value)
    assert "ID0" not in (out / S.BAD_FILES).read_text()  # the demo files' PatientID/Name (DEMO^ID0001)
    for name in ("index.parquet", "manifest.csv", "medcl-dataset.json"):
        assert b"DEMO^" not in (out / name).read_bytes()


def test_source_pickles_and_reads_in_forked_dataloader_workers(prepared, monkeypatch):
    out, _ = prepared
    monkeypatch.setattr(S, "_MAX_OPEN", 2)  # more shards than descriptors: the LRU closes some
    source = ShardSource(out)
    want = {k: source.read(k).data for k in source.paths}
    clone = pickle.loads(pickle.dumps(source))
    assert {k: clone.read(k).data for k in clone.paths} == want and len(clone._fds) <= 2

    class Bytes(torch.utils.data.Dataset):
        def __len__(self):
            return len(want)

        def __getitem__(self, i):
            return source.read(sorted(want)[i]).data

    loader = torch.utils.data.DataLoader(Bytes(), batch_size=None, num_workers=2,
                                         multiprocessing_context="fork")
    assert list(loader) == [want[k] for k in sorted(want)]


def _same_dataset(a: Path, b: Path) -> None:
    pd.testing.assert_frame_equal(pd.read_parquet(a / S.INDEX), pd.read_parquet(b / S.INDEX))  # NaN == NaN
    assert sorted(p.name for p in (a / S.SHARDS).iterdir()) == sorted(p.name for p in (b / S.SHARDS).iterdir())
    for shard in (a / S.SHARDS).iterdir():
        assert shard.read_bytes() == (b / S.SHARDS / shard.name).read_bytes(), shard.name
    for name in (S.BAD_FILES, S.MANIFEST):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    assert S.read_meta(a)["counts"] == S.read_meta(b)["counts"]


def test_interrupted_run_resumes_with_the_missing_chunks_only(tree, prepared, tmp_path, monkeypatch):
    import medcl.data.shard_writer as W

    out, full = prepared
    real, calls = W.run_chunk, []

    def interrupted(task):
        if len(calls) == 2:
            raise KeyboardInterrupt
        calls.append(task[1])
        return real(task)

    monkeypatch.setattr(W, "run_chunk", interrupted)
    key = out / "id-key"  # the same IDs as the uninterrupted run
    with pytest.raises(KeyboardInterrupt):
        prepare(tree[0], tmp_path / "D", workers=1, chunk_files=3, id_key=key)
    assert not (tmp_path / "D" / S.META).exists() and calls == [0, 1]
    with pytest.raises(MedclError, match="has not finished"):
        open_prepared(tmp_path / "D")
    (tmp_path / "D" / S.SHARDS / ".shard-00002.bin.tmp-1").write_bytes(b"half a shard")  # a killed worker's
    with pytest.raises(MedclError, match="started with --chunk-files 3"):
        prepare(tree[0], tmp_path / "D", workers=1, chunk_files=4, id_key=key)
    (tmp_path / "other-key").write_text(os.urandom(32).hex())
    with pytest.raises(MedclError, match="started with another ID key"):
        prepare(tree[0], tmp_path / "D", workers=1, id_key=tmp_path / "other-key")
    with pytest.raises(MedclError, match="started with --ids headers, not --ids path"):
        prepare(tree[0], tmp_path / "D", workers=1, ids="path")

    def counted(task):
        calls.append(task[1])
        return real(task)

    calls.clear()
    monkeypatch.setattr(W, "run_chunk", counted)
    summary = prepare(tree[0], tmp_path / "D", workers=1, id_key=key)
    assert calls == list(range(2, full.chunks)) and summary.chunks_before == 2
    assert summary.n_processed == full.n_files - 6
    assert not list((tmp_path / "D" / S.SHARDS).glob(".*"))
    _same_dataset(out, tmp_path / "D")


def test_rerun_finished_and_other_sources(tree, prepared, tmp_path):
    out, _ = prepared
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    again = prepare(tree[0], out, workers=1)
    assert again.already and again.n_processed == 0 and again.n_bad == 4
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == before
    other = tmp_path / "other"
    shutil.copytree(tree[0], other)
    with pytest.raises(MedclError, match="is a prepared dataset of"):
        prepare(other, out, workers=1)
    inside = prepare(other, other / "D", workers=1)  # the dataset inside its source folder is not indexed
    assert inside.n_files == again.n_files and prepare(other, other / "D", workers=1).already
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(MedclError, match="not empty and not a medcl dataset"):
        prepare(tree[0], tmp_path / "full", workers=1)
    with pytest.raises(MedclError, match="no such file or folder"):
        prepare(tmp_path / "missing", tmp_path / "D2", workers=1)


def test_parallel_run_equals_serial_run(tree, prepared, tmp_path):
    out, _ = prepared
    summary = prepare(tree[0], tmp_path / "P", workers=2, chunk_files=3, id_key=out / "id-key")
    assert summary.n_processed == summary.n_files
    _same_dataset(out, tmp_path / "P")


def test_manifest_with_bone_path_column(demo, tmp_path):
    from medcl.io.tables import read_manifest

    cohort = Path(demo.paths["manifest"]).parent
    rows = pd.read_csv(demo.paths["manifest"], dtype=str).head(5)
    rows.loc[3, "bone_path"] = np.nan                        # a row without a bone image
    rows.loc[4, "bone_path"] = "images"                      # a folder, not a file
    rows.loc[2, "path"] = str(cohort / rows.loc[2, "path"])  # an absolute path
    extra = rows.iloc[[0]].assign(path="images/../images/missing.dcm")  # a file that is not there
    table = pd.concat([rows, extra], ignore_index=True)
    table.to_csv(cohort / "prep_manifest.csv", index=False)
    out = tmp_path / "M"
    summary = prepare(cohort / "prep_manifest.csv", out, workers=1)
    assert (out / S.MANIFEST).read_bytes() == (cohort / "prep_manifest.csv").read_bytes()
    bad = dict(pd.read_csv(out / S.BAD_FILES).values.tolist())
    assert sorted(bad) == ["images", "images/missing.dcm"]
    assert bad["images"].startswith("DicomError: is a directory")
    assert bad["images/missing.dcm"].startswith("DicomError: no such file")
    frame = read_manifest(out / S.MANIFEST, check_files=False)
    _, source = open_prepared(out)
    originals = read_manifest(cohort / "prep_manifest.csv", check_files=False)
    keys = [p for c in ("path", "bone_path") for p in frame[c].dropna() if not p.endswith(("images", "missing.dcm"))]
    files = [p for c in ("path", "bone_path") for p in originals[c].dropna()
             if not p.endswith(("images", "missing.dcm"))]
    assert len(set(keys)) == 8 == summary.n_files - 2
    for key, file in zip(keys, files):
        check_round_trip(source, key, file)
    assert str(cohort / rows.loc[2, "path"]) in source.paths  # absolute values stay absolute keys
    table.assign(view="LAT").to_csv(cohort / "prep_manifest.csv", index=False)  # same files, new rows
    assert prepare(cohort / "prep_manifest.csv", out, workers=1).already
    assert (out / S.MANIFEST).read_bytes() == (cohort / "prep_manifest.csv").read_bytes()
    table.head(3).to_csv(cohort / "prep_manifest.csv", index=False)  # other files: refused
    with pytest.raises(MedclError, match="not the same ones"):
        prepare(cohort / "prep_manifest.csv", out, workers=1)


def test_pydicom_corpus_every_file_indexed_or_listed(tmp_path):
    from conftest import dicom_corpus
    from medcl.io.pixels import decode_raw, read_raw

    files = {f"{i % 7}/{i:04d}_{os.path.basename(f)}": f for i, f in enumerate(dicom_corpus())}
    for key, f in files.items():
        (tmp_path / "src" / key).parent.mkdir(parents=True, exist_ok=True)
        os.symlink(f, tmp_path / "src" / key)
    summary = prepare(tmp_path / "src", tmp_path / "D", workers=1)
    source, bad = ShardSource(tmp_path / "D"), pd.read_csv(tmp_path / "D" / S.BAD_FILES)
    assert sorted(source.paths + bad["path"].tolist()) == sorted(files) and summary.n_records > len(source)
    assert bad["reason"].str.match(r"^[A-Za-z]+Error: ").all()
    for key in source.paths:  # every frame as read_raw gives it; decoded alike
        direct, stored = read_raw(files[key]), source.read_all(key)
        for a, b in zip(direct, stored, strict=True):
            _check_record(a, b)
        x, y = decode_raw(direct), decode_raw(stored)
        assert y[2].eq(0).all() and all(torch.equal(u, v) for u, v in zip(x, y))


def test_default_workers_one_per_gib_of_files(tree, monkeypatch):
    import medcl.prepare as P

    listing = P.list_source(tree[0], tree[0].parent / "unused")
    monkeypatch.setattr(P, "WORKER_BYTES", 1)
    assert P.default_workers(listing) == P.default_workers() >= 1
    monkeypatch.setattr(P, "WORKER_BYTES", 2**40)
    assert P.default_workers(listing) == 1
