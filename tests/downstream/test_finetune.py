"""medcl.downstream: metrics per task, label subsampling, table formatting."""
from __future__ import annotations

import numpy as np
import pytest

from medcl.downstream.labels import subsample_people
from medcl.downstream.metrics import scores, summarize
from medcl.downstream.report import format_table


def test_scores_per_task():
    y = np.array([0, 1, 1, 0, 1])
    proba = np.array([[0.9, 0.1], [0.2, 0.8], [0.4, 0.6], [0.3, 0.7], [0.1, 0.9]])
    s = scores("binary", y, proba.argmax(1), proba)
    assert s["accuracy"] == pytest.approx(0.8) and s["auc"] == pytest.approx(5 / 6)
    y3 = np.array([0, 1, 2, 2, 1, 0])
    p3 = np.eye(3)[[0, 1, 2, 1, 1, 0]] * 0.8 + 0.2 / 3
    s = scores("multiclass", y3, p3.argmax(1), p3)
    assert s["accuracy"] == pytest.approx(5 / 6) and 0.5 < s["macro_auc"] <= 1
    s = scores("ordinal", y3, np.array([0, 1, 2, 1, 1, 0]), p3)
    assert s["accuracy"] == pytest.approx(5 / 6) and 0 < s["qwk"] < 1
    assert scores("ordinal", y3, y3, p3)["qwk"] == pytest.approx(1.0)
    s = scores("regression", np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 4.0]), None)
    assert s["mse"] == pytest.approx(1 / 3) and s["r2"] == pytest.approx(0.5)


def test_subsample_keeps_every_class_and_is_seeded():
    people = np.arange(100)
    y = (people % 10 == 0).astype(float)          # 10 positives
    a = subsample_people(people, y, 0.05, "binary", seed=1)
    assert len(a) == 5 and set(y[a]) == {0.0, 1.0}
    assert (a == subsample_people(people, y, 0.05, "binary", seed=1)).all()
    assert not (a == subsample_people(people, y, 0.05, "binary", seed=2)).all()
    assert len(subsample_people(people, y, 1.0, "regression", seed=0)) == 100


def test_summary_and_table():
    s = summarize([{"auc": 0.6}, {"auc": 0.8}, {"auc": float("nan")}])       # NaN (undefined) runs left out
    assert s["auc"]["mean"] == pytest.approx(0.7) and s["auc"]["sd"] == pytest.approx(0.1)
    assert (s["auc"]["min"], s["auc"]["max"]) == (0.6, 0.8) and len(s["auc"]["values"]) == 3
    assert np.isnan(summarize([{"auc": float("nan")}])["auc"]["mean"])
    text = format_table({"target": "t", "task": "binary", "metrics": ["auc"],
                         "summary": [{"encoder": "pretrained", "fraction": 0.1, **s}]})
    assert "0.700 ± 0.100" in text and "10%" in text


# --- the label column: task inference, refusal of a task that does not fit, ID matching ---

def _labels(values, fid="FAM", iid="ID"):
    import pandas as pd
    return pd.DataFrame({"FID": [f"{fid}{i:04d}" for i in range(len(values))],
                         "IID": [f"{iid}{i:04d}" for i in range(len(values))], "y": values})


@pytest.mark.parametrize("values, task", [
    ([0, 1, 1, 0, np.nan], "binary"), ([1, 2, 2, 1], "binary"), (["no", "yes", "yes"], "binary"),
    (["a", "b", "c", "a"], "multiclass"), ([0, 1, 2, 2, 1, 0], "multiclass"),
    ([0.31, 0.52, 0.47, 0.55], "regression"), (list(range(40)), "regression"), ([-1, 0, 1, 3], "regression")])
def test_task_is_inferred_from_the_column(values, task):
    from medcl.downstream.labels import resolve_target
    t = resolve_target(_labels(values).astype({"y": object if isinstance(values[0], str) else float}), "y", None,
                       "labels.csv")
    assert t.task == task
    if task != "regression":
        codes = t.y_person[~np.isnan(t.y_person)]
        assert set(codes) == set(range(len(t.classes)))          # classes coded 0..K-1 in sorted order


@pytest.mark.parametrize("values, task, looks", [
    (list(np.linspace(0.3, 0.6, 30)), "binary", "regression"), ([0, 1, 2, 1, 0], "binary", "multiclass"),
    (list(np.linspace(0.3, 0.6, 30)), "multiclass", "regression"), (["F", "M", "F"], "ordinal", "binary"),
    (["a", "b", "c"], "regression", "multiclass")])
def test_a_task_that_does_not_fit_the_column_is_refused(values, task, looks):
    from medcl.errors import ConfigError
    from medcl.downstream.labels import resolve_target
    frame = _labels(values).astype({"y": object if isinstance(values[0], str) else float})
    with pytest.raises(ConfigError) as err:
        resolve_target(frame, "y", task, "labels.csv")
    text = str(err.value)
    assert "labels.csv" in text and f"--task {task}" in text and "'y'" in text and f"looks like a {looks}" in text


def test_labels_matching_nobody_say_how_ids_look_without_showing_them():
    import pandas as pd
    from medcl.errors import TableError
    from medcl.downstream.labels import match_labels
    people = _labels([0] * 5)[["FID", "IID"]]
    labels = _labels([0, 1, 0, 1, 1], iid="P")
    with pytest.raises(TableError) as err:
        match_labels(people, labels, "y", labels["y"].to_numpy(float), "lab.csv")
    text = str(err.value)
    assert "lab.csv" in text and "none of the 5 labelled IDs" in text and "5 people" in text
    assert "AAA9999,AA9999" in text and "AAA9999,A9999" in text and "FID,IID" in text
    assert "FAM0001" not in text and "P0001" not in text
    swapped = labels.assign(FID=labels["IID"], IID=people["IID"])      # right IID, wrong FID
    with pytest.raises(TableError, match="5 match on IID alone"):
        match_labels(people, swapped, "y", labels["y"].to_numpy(float), "lab.csv")
    y = match_labels(people, pd.concat([_labels([1.0, 0.0])]), "y", np.array([1.0, 0.0]), "lab.csv")
    np.testing.assert_array_equal(y, [1.0, 0.0, np.nan, np.nan, np.nan])


def test_text_class_columns_are_read_as_text(tmp_path):
    from medcl.errors import TableError
    from medcl.io.tables import read_table
    (tmp_path / "l.csv").write_text("FID,IID,view,grade\nA,1,PA,1\nA,2,AP,\nA,3,,2\n")
    df = read_table(tmp_path / "l.csv", kind="labels")
    assert list(df["view"][:2]) == ["PA", "AP"] and df["grade"].dtype == np.float64
    (tmp_path / "l.csv").write_text("FID,IID,grade\nA,1,1\nA,2,high\n")      # a mixed column stays an error
    with pytest.raises(TableError, match="not numeric"):
        read_table(tmp_path / "l.csv", kind="labels")


# --- undefined metrics, the constant predictor, the verdict, the picture ---

def test_undefined_metrics_are_nan_not_zero():
    one_class = np.array([1, 1, 1])
    s = scores("binary", one_class, one_class, np.tile([0.2, 0.8], (3, 1)))
    assert np.isnan(s["auc"]) and s["accuracy"] == 1.0
    assert np.isnan(scores("regression", np.array([2.0, 2.0]), np.array([1.0, 3.0]), None)["r2"])
    assert np.isnan(scores("ordinal", np.array([2, 2]), np.array([1, 2]), None)["qwk"])
    from medcl.downstream.labels import undefined_metrics
    assert set(undefined_metrics("binary", ("auc", "accuracy"), "test", 1, 1)) == {"auc", "accuracy"}
    assert set(undefined_metrics("binary", ("auc", "accuracy"), "test", 9, 1)) == {"auc"}
    assert "same value" in undefined_metrics("regression", ("r2", "mse"), "test", 9, 1)["r2"]
    assert undefined_metrics("multiclass", ("accuracy", "macro_auc"), "test", 9, 2) == {}


def test_constant_predictor_scores():
    from medcl.downstream.metrics import constant_scores
    s = constant_scores("binary", np.array([0, 0, 0, 1.0]), np.array([0, 1, 0, 0, 1.0]), 2)
    assert s["auc"] == pytest.approx(0.5) and s["accuracy"] == pytest.approx(0.6)   # majority class 0
    s = constant_scores("ordinal", np.array([2, 2, 1.0]), np.array([0, 1, 2, 2.0]), 3)
    assert s["accuracy"] == pytest.approx(0.5) and s["qwk"] == pytest.approx(0.0)
    s = constant_scores("regression", np.array([1.0, 3.0]), np.array([1.0, 2.0, 3.0]), None)  # train mean 2
    assert s["r2"] == pytest.approx(0.0) and s["mse"] == pytest.approx(2 / 3)


def _report(pre, rand, pix, sd=0.01, repeats=3):
    rows = []
    for enc, means in (("pretrained", pre), ("random", rand), ("pixels", pix)):
        for f, m in zip((0.1, 1.0), means):
            rows.append({"encoder": enc, "fraction": f, "train_people": int(f * 50),
                         "auc": {"mean": m, "sd": sd, "min": m - sd, "max": m + sd, "values": [m - sd, m + sd]},
                         "accuracy": {"mean": 0.7, "sd": 0.0, "min": 0.7, "max": 0.7, "values": [0.7, 0.7]}})
    return {"target": "t", "task": "binary", "classes": ["0", "1"], "metrics": ["auc", "accuracy"],
            "headline": "auc", "people": {"test": {"people": 20, "distinct": 2}}, "pixel_side": 24,
            "constant": {"auc": 0.5, "accuracy": 0.65}, "undefined": {}, "summary": rows,
            "config": {"repeats": repeats}}


def test_verdict_says_plainly_whether_pretraining_helped():
    from medcl.downstream.report import verdict
    lines = verdict(_report(pre=(0.70, 0.80), rand=(0.60, 0.70), pix=(0.75, 0.90)))
    assert lines[0] == "AUC, pretrained vs random init: better at 10%, 100%"
    assert lines[1] == "AUC, pretrained vs raw pixels: worse at 10%, 100%"
    assert lines[2].startswith("pretraining did not help here")
    lines = verdict(_report(pre=(0.80, 0.90), rand=(0.60, 0.70), pix=(0.79, 0.80)))
    assert "within the spread at 10%" in lines[1] and lines[2].startswith("pretraining helped at 100%")
    assert verdict(_report(pre=(0.9, 0.9), rand=(0.6, 0.7), pix=(0.6, 0.7)))[-1].startswith("pretraining helped:")
    assert "no spread" in verdict(_report(pre=(0.9, 0.9), rand=(0.6, 0.7), pix=(0.6, 0.7), sd=0.0, repeats=1))[-1]


def test_table_shows_the_constant_predictor_and_undefined(tmp_path):
    from medcl.downstream.report import format_table, plot_label_efficiency
    rep = _report(pre=(0.70, 0.80), rand=(0.60, 0.70), pix=(0.75, 0.90))
    text = format_table(rep)
    assert "0.700 ± 0.010" in text and "pixels 24²" in text
    const = next(line for line in text.splitlines() if line.startswith("constant "))
    assert const.split()[1:] == ["-", "0.500", "0.650"]
    for row in rep["summary"]:
        row["auc"].update(mean=float("nan"), sd=float("nan"), values=[float("nan")] * 2)
    rep["constant"]["auc"], rep["undefined"] = float("nan"), {"auc": "the test split has 1 labelled person"}
    text = format_table(rep)
    assert "undefined" in text.splitlines()[2] and "AUC undefined: the test split has 1 labelled person" in text
    png = plot_label_efficiency(rep, tmp_path / "le.png")              # draws with an undefined panel too
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_baselines_and_out_folder_checks(tmp_path):
    from medcl.errors import ConfigError
    from medcl.downstream.config import check_out, parse_baselines, pixel_side
    assert parse_baselines("random,pixels") == ("random", "pixels") and parse_baselines("none") == ()
    assert parse_baselines(None) == () and parse_baselines(["pixels"]) == ("pixels",)
    with pytest.raises(ConfigError, match="unknown baseline pixel"):
        parse_baselines("random,pixel")
    assert (pixel_side(32), pixel_side(96), pixel_side(224), pixel_side(512)) == (16, 24, 48, 48)
    check_out(tmp_path / "new", False)
    check_out(tmp_path, False)                                          # empty: fine
    (tmp_path / "metrics.json").write_text("{}")
    with pytest.raises(ConfigError, match="not empty"):
        check_out(tmp_path, False)
    check_out(tmp_path, True)


def test_too_few_labelled_people_per_split_is_a_clear_error():
    import types

    import pandas as pd
    from medcl.errors import TableError
    from medcl.downstream.labels import split_people
    splits = np.array(["train"] * 6 + ["val"] * 2 + ["test"] * 2)
    images = pd.DataFrame({"person": np.arange(10), "split": splits})
    cohort = types.SimpleNamespace(images=images, images_in=lambda s: np.flatnonzero(splits == s))
    y = np.array([0, 1, 0, 1, 0, 1, 0, 1, 1, 0], dtype=float)
    counts = split_people(cohort, y, "binary", "lab.csv")
    assert counts["train"] == {"people": 6, "distinct": 2} and counts["test"]["people"] == 2
    for broken, says in ((np.r_[[np.nan] * 5, y[5:]], "train split has 1 labelled person (at least 2"),
                         (np.r_[[0.0] * 6, y[6:]], "same class"),
                         (np.r_[y[:8], np.nan, np.nan], "test split has no labelled people")):
        with pytest.raises(TableError) as err:
            split_people(cohort, broken, "binary", "lab.csv")
        assert says in str(err.value) and "lab.csv" in str(err.value) and "labelled people by split" in str(err.value)


def test_r2_panel_keeps_the_best_encoder_and_the_constant_in_view():
    from medcl.downstream.report import R2_FLOOR, r2_floor

    def report(means, const):
        return {"summary": [{"r2": {"mean": v}} for v in means], "constant": {"r2": const}}

    assert r2_floor(report([0.5, -15.0, float("nan")], -0.01)) == R2_FLOOR     # a 2-person fit stays off the scale
    floor = r2_floor(report([-17.6, -52.0, -1672.0], -22.5))                     # a tiny test split: all below -1
    assert -25.0 < floor <= -22.5 * 1.1 + 1e-9 and floor > -52.0


def test_a_missing_labels_or_weights_file_is_named_before_any_cohort_is_read(tmp_path, monkeypatch):
    from medcl.downstream.run import FinetuneConfig, run_finetune
    from medcl.errors import MedclError

    cache = tmp_path / "cache"
    monkeypatch.setenv("MEDCL_CACHE_DIR", str(cache))          # data=None would generate the demo cohort here
    labels = tmp_path / "labels.csv"
    for weights, missing in ((tmp_path / "w.safetensors", labels), (tmp_path / "w.safetensors", None)):
        if missing is None:
            labels.write_text("FID,IID,x\n1,1,0\n")
        with pytest.raises(MedclError, match="labels file not found" if missing else "weights file not found"):
            run_finetune(FinetuneConfig(weights=str(weights), labels=str(labels), target="x",
                                        out=str(tmp_path / "out"), device="cpu"))
    assert not cache.exists() or not any(cache.iterdir())
