"""The target of ``medcl finetune``: which task its column holds, its classes, who has a label,
and the seeded subsets of labelled training people.

Task inference (``--task`` not given), over the column's non-missing values:
  text (class names), 2 distinct values             binary (positive class: the second in sorted order)
  any 2 distinct values (0/1, 1/2, ...)              binary
  text with 3 or more distinct values                multiclass
  whole numbers >= 0 with 3..10 distinct values      multiclass (``--task ordinal`` to score them as grades)
  anything else numeric                              regression
An explicit ``--task`` must fit the column (the task's ``fits``: binary needs exactly 2 values;
multiclass needs class names or whole numbers; ordinal needs whole numbers; regression needs
numbers) and codes it (the task's ``code``: class values 0..K-1 in sorted order).
"""
from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass

import numpy as np
import pandas as pd

from medcl.downstream.tasks import get_task
from medcl.downstream.tasks.base import whole_numbers
from medcl.errors import ConfigError, TableError

log = logging.getLogger("medcl")

MAX_INFERRED_CLASSES = 10    # whole numbers with more distinct values than this are a regression target


@dataclass
class Target:
    task: str                # a registered task (medcl.downstream.tasks)
    inferred: str            # the task the column looks like
    classes: list | None     # class values in code order (0..K-1); None for regression
    y_person: np.ndarray     # (N_people,) float64: class code or value; NaN where unlabelled


def describe_column(values: pd.Series) -> str:
    """Plain words for what a column holds (counts and, for a few classes, the class values)."""
    v = values.dropna()
    distinct = pd.unique(v)
    if v.dtype == object:
        return f"{len(distinct)} distinct text values"
    if whole_numbers(v.to_numpy(np.float64)):
        if len(distinct) <= MAX_INFERRED_CLASSES:
            return f"{len(distinct)} distinct whole numbers ({', '.join(_fmt(x) for x in sorted(distinct))})"
        return f"{len(distinct)} distinct whole numbers from {_fmt(v.min())} to {_fmt(v.max())}"
    return f"{len(distinct)} distinct numbers from {v.min():.3g} to {v.max():.3g}, not all whole"


def _fmt(x) -> str:
    return str(int(x)) if isinstance(x, (float, np.floating)) and float(x).is_integer() else str(x)


def infer_task(values: pd.Series) -> str:
    """The task a label column looks like (see the module docstring)."""
    v = values.dropna()
    n = len(pd.unique(v))
    if n == 2:
        return "binary"
    if v.dtype == object:
        return "multiclass"
    x = v.to_numpy(np.float64)
    if whole_numbers(x) and x.min() >= 0 and n <= MAX_INFERRED_CLASSES:
        return "multiclass"
    return "regression"


def resolve_target(labels: pd.DataFrame, column: str, task: str | None, path) -> Target:
    """The task for ``column`` of the labels table (inferred, or ``task`` checked against it) and
    its values coded per individual of ``labels`` (row order kept)."""
    values = labels[column]
    v = values.dropna()
    if len(v) == 0:
        raise TableError(f"column {column!r} has no values", path=path,
                         fix="fill in the labels or pick another --target")
    if len(pd.unique(v)) < 2:
        raise TableError(f"column {column!r} holds one value only: there is nothing to predict", path=path,
                         fix="pick a column whose values differ between people")
    inferred = infer_task(values)
    if task is None:
        task = inferred
        log.info("task: %s (inferred from column %s: %s; --task to choose)", task, column, describe_column(values))
    elif not get_task(task).fits(values):                 # an unknown task: ConfigError naming the tasks
        raise ConfigError(f"--task {task} does not fit column {column!r}: it holds {describe_column(values)}, "
                          f"so it looks like a {inferred} target", path=path,
                          fix=f"leave out --task to use {inferred}, or pick another --task or --target")
    classes, y = get_task(task).code(values)
    return Target(task, inferred, None if classes is None else [_fmt(c) for c in classes], y)


def id_shape(value: str) -> str:
    """The format of an ID without its value: letters → A/a, digits → 9, other characters kept."""
    return "".join("9" if ch.isdigit() else ("A" if ch.isupper() else "a") if ch.isalpha() else ch for ch in value)


def _common_shape(fid: pd.Series, iid: pd.Series) -> str:
    shapes = Counter(f"{id_shape(f)},{id_shape(i)}" for f, i in zip(fid, iid))
    return shapes.most_common(1)[0][0] if shapes else "-"


def match_labels(people: pd.DataFrame, labels: pd.DataFrame, column: str, y_labels: np.ndarray, path) -> np.ndarray:
    """(N_people,) label per individual of the cohort (``people``: FID, IID rows), matched on the
    pair (FID, IID); an error when no labelled individual is in the cohort."""
    key = pd.MultiIndex.from_frame(labels[["FID", "IID"]])
    labelled = ~np.isnan(y_labels)
    series = pd.Series(y_labels, index=key)
    y = series.reindex(pd.MultiIndex.from_frame(people[["FID", "IID"]])).to_numpy(np.float64)
    matched = int((~np.isnan(y)).sum())
    n_labelled = int(labelled.sum())
    if matched == 0:
        iid_only = int(np.isin(labels.loc[labelled, "IID"].to_numpy(), people["IID"].to_numpy()).sum())
        hint = (f"; {iid_only} match on IID alone, so their FID differs from the manifest's" if iid_only else "")
        raise TableError(
            f"none of the {n_labelled} labelled IDs (column {column!r}) matches any of the {len(people)} people "
            f"in the manifest{hint}. IDs in the manifest look like FID,IID = "
            f"{_common_shape(people['FID'], people['IID'])}, in the labels like "
            f"{_common_shape(labels['FID'], labels['IID'])} (A letter, 9 digit)",
            path=path, fix="labels are keyed by the pair FID,IID, spelt exactly as in the manifest")
    if matched < n_labelled:
        log.warning("labels: %d of %d labelled IDs match a person in the manifest; the other %d are not used",
                    matched, n_labelled, n_labelled - matched)
    return y


def _people(n: int) -> str:
    return f"{n} labelled {'person' if n == 1 else 'people'}"


def split_people(cohort, y_person: np.ndarray, task: str, path) -> dict:
    """Labelled people (and classes) per split; an error when a split is too small to fit on,
    select on or score on."""
    counts = {}
    for split in ("train", "val", "test"):
        person = np.unique(cohort.images["person"].to_numpy()[cohort.images_in(split)])
        person = person[~np.isnan(y_person[person])]
        counts[split] = {"people": int(len(person)), "distinct": int(len(np.unique(y_person[person])))}
    c = counts
    problems = []
    if c["train"]["people"] < 2:
        problems.append(f"the train split has {_people(c['train']['people'])} (at least 2 are needed)")
    elif c["train"]["distinct"] < 2:
        what = get_task(task).label_word
        problems.append(f"every labelled person in the train split has the same {what}")
    for split in ("val", "test"):
        if c[split]["people"] == 0:
            problems.append(f"the {split} split has no labelled people")
    if problems:
        shown = ", ".join(f"{s} {v['people']}" for s, v in c.items())
        raise TableError(f"too few labelled people to evaluate: {'; '.join(problems)} (labelled people by split: "
                         f"{shown})", path=path,
                         fix="label more people, or give the manifest a split column that puts labelled people "
                             "in train, val and test")
    return counts


def undefined_metrics(task: str, metrics, split: str, people: int, distinct: int) -> dict:
    """{metric: why it is undefined} on a split with ``people`` labelled people holding
    ``distinct`` different classes (values)."""
    if people < 2:
        return {m: f"the {split} split has {_people(people)}" for m in metrics}
    if distinct >= 2:
        return {}
    t = get_task(task)
    return {m: t.one_label_why.format(split=split) for m in metrics if m in t.one_label_undefined}


def labelled(rows: np.ndarray, cohort, y_person: np.ndarray):
    """(ok, person, y) of image ``rows``: whether the image's person has a label, the person's
    row in cohort.people and the label (NaN where none)."""
    person = cohort.images["person"].to_numpy()[rows]
    y = y_person[person]
    ok = ~np.isnan(y)
    return ok, person, y


def subsample_size(n: int, fraction: float) -> int:
    """How many of ``n`` training individuals keep their labels at ``fraction`` (at least 2)."""
    return min(n, max(2, int(round(fraction * n))))


def subsample_people(people: np.ndarray, y_person: np.ndarray, fraction: float, task: str, seed: int) -> np.ndarray:
    """A seeded subset of training individuals; a task with classes keeps >= 1 of each class (>= 2 people)."""
    rng = np.random.default_rng(seed)
    k = subsample_size(len(people), fraction)
    if k >= len(people):
        return people
    if not get_task(task).stratified:
        return np.sort(rng.choice(people, size=k, replace=False))
    chosen = [rng.choice(people[y_person == c]) for c in np.unique(y_person)]  # one per class first
    rest = np.setdiff1d(people, chosen)
    extra = rng.choice(rest, size=max(k - len(chosen), 0), replace=False)
    return np.sort(np.concatenate([chosen, extra]))


def training_people(rows: np.ndarray, cohort, y_person: np.ndarray, fraction: float, task: str, seed: int):
    """(chosen people, ok) for the training image ``rows``: the seeded subset of their labelled
    people at ``fraction``, and which rows belong to one of them."""
    ok, person, _ = labelled(rows, cohort, y_person)
    people = np.unique(person[ok])
    chosen = subsample_people(people, y_person[people], fraction, task, seed)
    return chosen, ok & np.isin(person, chosen)
