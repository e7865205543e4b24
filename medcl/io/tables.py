"""Manifests and per-individual tables (PRS, burden scores, labels), keyed by FID/IID.

Both readers return a pandas DataFrame with ``FID`` and ``IID`` as ordinary **string columns**
(not an index: a manifest lists one row per image, so an individual may appear many times).
Join them with :func:`join_on_ids`, which matches on (FID, IID) and never on row order.

Manifest: ``FID,IID,path[,frame,view,split]`` plus any extra columns, as .csv/.tsv or .parquet.
Path columns (``path`` and any column ending in ``_path``, unless named) are resolved
relative to the manifest's folder; missing files are reported together. ``frame`` (and
``X_frame`` for ``X_path``) picks one frame of a multi-frame file (0-based; empty: the file's
only frame).

Tables: .csv, .tsv, .txt (delimiter sniffed: tab, comma, else whitespace), columns FID, IID
(``fid``/``iid``/``#FID`` accepted) and any number of numeric columns; empty cells and
NA/NaN/N/A are NaN. Label tables may also carry a ``split`` column and text columns
(class names: every value a word, none a number).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from medcl.errors import ManifestError, TableError

KEYS = ["FID", "IID"]
SPLITS = ("train", "val", "test")
KINDS = ("prs", "burden", "labels")
NA_TOKENS = ["", "NA", "NaN", "nan", "N/A", "NULL", "null"]
_SHOW = 10  # how many offending values an error lists


def _delimiter(path: Path) -> str:
    ext = path.suffix.lower()
    if ext == ".csv":
        return ","
    if ext in (".tsv", ".tab"):
        return "\t"
    with open(path, encoding="utf-8", errors="replace") as fh:
        first = fh.readline()
    if "\t" in first:
        return "\t"
    return "," if "," in first else r"\s+"


def _read_text(path: Path, error, text_columns=None) -> pd.DataFrame:
    """Read a delimited file. ``text_columns``: a callable header -> columns kept as text
    (others get pandas' type inference); None keeps every column as text."""
    sep = _delimiter(path)
    engine = "c" if sep != r"\s+" else "python"
    opts = dict(sep=sep, keep_default_na=False, na_values=NA_TOKENS, engine=engine, skipinitialspace=True)
    if engine == "c":
        opts["float_precision"] = "round_trip"
    try:
        if text_columns is None:
            dtype = str
        else:
            header = [str(c) for c in pd.read_csv(path, nrows=0, **opts).columns]
            dtype = {c: str for c in text_columns(header)}
        df = pd.read_csv(path, dtype=dtype, **opts)
    except pd.errors.EmptyDataError:
        raise error("file is empty", path=path, fix="add a header line and at least one row") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise error(f"cannot parse ({str(exc).strip()})", path=path,
                    fix="write it as comma- or tab-separated text with one header line") from None
    if engine == "python":  # whitespace-separated: an empty cell would shift the row silently
        with open(path, encoding="utf-8", errors="replace") as fh:
            for number, line in enumerate(fh, start=1):
                if line.strip() and len(line.split()) != df.shape[1]:
                    raise error(f"line {number} has {len(line.split())} fields, the header {df.shape[1]}",
                                path=path, fix="in whitespace-separated files write NA for a missing value")
    return df


def _ids_as_text(df: pd.DataFrame, path: Path, error) -> pd.DataFrame:
    """FID/IID as Python strings; integers are allowed (Parquet), floats and blanks are not."""
    for key in KEYS:
        col = df[key]
        if pd.api.types.is_integer_dtype(col):
            df[key] = col.astype(str)
        elif pd.api.types.is_float_dtype(col) or pd.api.types.is_bool_dtype(col):
            raise error(f"column {key} holds {col.dtype} values, not identifiers", path=path,
                        fix=f"store {key} as text so that IDs such as 007 keep their form")
        blank = df[key].isna() | (df[key].astype(str).str.strip() == "")
        if blank.any():
            rows = ", ".join(str(i + 2) for i in np.flatnonzero(blank)[:_SHOW])
            raise error(f"{int(blank.sum())} row(s) have an empty {key} (data lines {rows})", path=path,
                        fix="every row needs both FID and IID")
        df[key] = df[key].astype(str).str.strip().astype(object)
    return df


def _rename_id_columns(df: pd.DataFrame) -> pd.DataFrame:
    aliases = {"fid": "FID", "#fid": "FID", "iid": "IID", "#iid": "IID"}
    return df.rename(columns={c: aliases[c.lower()] for c in df.columns
                              if c.lower() in aliases and c not in KEYS})


def _check_split(df: pd.DataFrame, path: Path, error) -> None:
    if "split" not in df.columns:
        return
    split = df["split"].astype(object)
    bad = ~split.isin(SPLITS)
    if bad.any():
        values = sorted({"<empty>" if pd.isna(v) else str(v) for v in split[bad]})[:_SHOW]
        raise error(f"{int(bad.sum())} row(s) have an unknown split: {', '.join(values)}", path=path,
                    fix=f"split must be one of {', '.join(SPLITS)}")


# ---------------------------------------------------------------- manifest

def default_path_columns(columns: Sequence[str]) -> list[str]:
    """A manifest's path columns unless named: ``path`` plus every column ending in ``_path``."""
    return ["path"] + [c for c in columns if c.endswith("_path") and c != "path"]


def frame_column(path_column: str) -> str:
    """The column of a path column's frame numbers: frame for path, X_frame for X_path (or X)."""
    if path_column == "path":
        return "frame"
    return f"{path_column[:-len('_path')] if path_column.endswith('_path') else path_column}_frame"


def _frame_columns(path_columns: Sequence[str]) -> list[str]:
    return [frame_column(c) for c in path_columns]


def _frame_number(v):
    """A frame cell as an int >= 0, None when empty; ValueError otherwise."""
    if v is None or pd.isna(v) or str(v).strip() == "":
        return None
    f = float(str(v).strip())
    if f != int(f) or f < 0:
        raise ValueError(v)
    return int(f)


def _check_frames(df: pd.DataFrame, columns: Sequence[str], path: Path) -> None:
    """Frame columns as ints (None: empty); anything but a whole number >= 0 is an error."""
    for col in columns:
        if col not in df.columns:
            continue
        values = []
        for i, v in enumerate(df[col]):
            try:
                values.append(_frame_number(v))
            except (TypeError, ValueError):
                raise ManifestError(f"column {col} holds {str(v)[:20]!r} on data line {i + 2}, not a frame number",
                                    path=path, fix="frame numbers are whole numbers from 0; leave the cell "
                                                   "empty for a single-frame file") from None
        df[col] = pd.Series(values, index=df.index, dtype=object)


def read_manifest_raw(path: Path, path_columns: Sequence[str] | None = None) -> pd.DataFrame:
    """A manifest file's rows as written: no checks, paths not resolved (CSV/TSV: the ID, view,
    split, path and frame columns read as text; :func:`read_manifest` checks and resolves them)."""
    ext = path.suffix.lower()
    if ext in (".parquet", ".pq"):
        try:
            return pd.read_parquet(path)
        except Exception as exc:  # pyarrow raises several types for a bad file
            raise ManifestError(f"cannot read Parquet ({type(exc).__name__}: {exc})", path=path,
                                fix="write the manifest with pandas.DataFrame.to_parquet, or as CSV; an "
                                    "ImportError means pyarrow does not fit the installed numpy") from None
    if ext in (".csv", ".tsv", ".txt", ".tab"):
        def text_columns(header):
            paths = default_path_columns(header) if path_columns is None else list(path_columns)
            return [c for c in KEYS + ["view", "split"] + paths + _frame_columns(paths) if c in header]
        return _read_text(path, ManifestError, text_columns)
    raise ManifestError(f"unknown manifest type {ext or '(no extension)'}", path=path,
                        fix="use .csv, .tsv or .parquet")


def _resolve(values: pd.Series, base: Path) -> pd.Series:
    def one(p):
        if pd.isna(p) or str(p).strip() == "":
            return np.nan
        p = os.path.expanduser(str(p).strip())
        return os.path.normpath(p if os.path.isabs(p) else os.path.join(base, p))
    return values.map(one).astype(object)


def read_manifest(path, *, path_columns: Sequence[str] | None = None, check_files: bool = True,
                  base=None) -> pd.DataFrame:
    """Read an image manifest: one row per image, ``FID,IID,path[,frame,view,split]`` plus extra columns.

    path_columns: columns holding file paths; default ``path`` plus every column ending in
        ``_path``. ``path`` must be filled in every row; other path columns may be empty (NaN).
    check_files: report every path that is not an existing file, together, in one ManifestError.
    base: the folder relative paths are taken from (default: the manifest's folder).
    Returns the rows in file order with FID/IID (and view/split) as strings, frame columns as
    ints (None where empty) and path columns as absolute, normalised paths (relative ones are
    taken from the manifest's folder).
    """
    path = Path(os.fspath(path))
    if not path.is_file():
        raise ManifestError("no such manifest" if not path.exists() else "is not a file", path=path,
                            fix="pass a manifest (FID,IID,path; .csv, .tsv or .parquet); `medcl manifest FOLDER "
                                "--out manifest.csv` writes one for a folder of DICOM files")
    df = read_manifest_raw(path, path_columns)
    columns = [str(c) for c in df.columns]
    df.columns = columns
    if path_columns is None:
        path_columns = default_path_columns(columns)
    required = list(dict.fromkeys(KEYS + ["path"] + list(path_columns)))
    missing = [c for c in required if c not in columns]
    if missing:
        raise ManifestError(f"missing column(s) {', '.join(missing)}; found {', '.join(columns) or 'none'}",
                            path=path, fix="a manifest needs FID, IID and path columns (plus view, split)")
    if len(df) == 0:
        raise ManifestError("manifest has no rows", path=path, fix="list at least one image")
    df = _ids_as_text(df, path, ManifestError)
    for col in ("view", "split"):
        if col in df.columns:
            df[col] = df[col].map(lambda v: v if pd.isna(v) else str(v).strip()).astype(object)
    _check_split(df, path, ManifestError)
    _check_frames(df, _frame_columns(path_columns), path)
    base = path.resolve().parent if base is None else Path(os.fspath(base))
    for col in path_columns:
        df[col] = _resolve(df[col], base)
    empty = df["path"].isna()
    if empty.any():
        rows = ", ".join(str(i + 2) for i in np.flatnonzero(empty)[:_SHOW])
        raise ManifestError(f"{int(empty.sum())} row(s) have an empty path (data lines {rows})", path=path,
                            fix="every row needs an image path; drop rows without one")
    if check_files:
        listed = pd.unique(pd.concat([df[c] for c in path_columns]).dropna())
        absent = [p for p in listed if not os.path.isfile(p)]
        if absent:
            more = f" ... and {len(absent) - _SHOW} more" if len(absent) > _SHOW else ""
            raise ManifestError(
                f"{len(absent)} of {len(listed)} file(s) listed in the manifest do not exist: "
                f"{', '.join(absent[:_SHOW])}{more}", path=path,
                fix="relative paths are taken from the manifest's folder; fix or drop these rows")
    return df


# ---------------------------------------------------------------- PRS / burden / label tables

def _exact_float(v) -> float:
    if pd.isna(v):
        return np.nan
    try:
        return float(v)
    except ValueError:
        return np.nan


def require_table(path, kind: str | None = None) -> Path:
    """``path`` as a Path; a TableError naming it when it is not a file (checked before long work)."""
    path = Path(os.fspath(path))
    if not path.is_file():
        raise TableError(f"{kind or 'table'} file not found", path=path, fix="check the path")
    return path


def read_table(path, *, kind: str | None = None) -> pd.DataFrame:
    """Read a per-individual table (PRS, burden scores, labels) keyed by FID/IID.

    kind: "prs", "burden", "labels" or None; only "labels" may carry a text ``split`` column
        (train/val/test) and text class columns (no value a number). Every other column besides
        FID and IID must be numeric (float64).
    Returns FID and IID as string columns followed by the value columns, one row per
    individual; a repeated (FID, IID) pair is an error.
    """
    if kind is not None and kind not in KINDS:
        raise TableError(f"unknown table kind {kind!r}", fix=f"use one of {', '.join(KINDS)} or None")
    path = require_table(path, kind)
    df = _rename_id_columns(_read_text(path, TableError))
    df.columns = [str(c).strip() for c in df.columns]
    missing = [c for c in KEYS if c not in df.columns]
    if missing:
        raise TableError(f"missing column(s) {', '.join(missing)}; found {', '.join(df.columns)}", path=path,
                         fix="the header needs FID and IID columns")
    if len(df) == 0:
        raise TableError("table has no rows", path=path, fix="add one row per individual")
    df = _ids_as_text(df, path, TableError)
    dup = df.duplicated(KEYS, keep=False)
    if dup.any():
        pairs = df.loc[dup, KEYS].drop_duplicates().head(_SHOW)
        shown = ", ".join(f"{f}/{i}" for f, i in pairs.itertuples(index=False))
        raise TableError(f"{int(df.loc[dup, KEYS].drop_duplicates().shape[0])} FID/IID pair(s) appear more "
                         f"than once: {shown}", path=path, fix="keep one row per individual")
    text_ok = {"split"} if kind == "labels" else set()
    values = [c for c in df.columns if c not in KEYS]
    if not [c for c in values if c not in text_ok]:
        raise TableError("table has no value columns besides FID and IID", path=path,
                         fix="add at least one numeric column")
    for col in values:
        if col in text_ok:
            df[col] = df[col].map(lambda v: v if pd.isna(v) else str(v).strip()).astype(object)
            continue
        num = df[col].map(_exact_float).astype(np.float64)  # Python's parser: exact round trip
        bad = num.isna() & df[col].notna()
        if bad.any() and kind == "labels" and not num.notna().any():  # class names in words: kept as text
            df[col] = df[col].map(lambda v: v if pd.isna(v) else str(v).strip()).astype(object)
            continue
        if bad.any():
            first = int(np.flatnonzero(bad)[0])
            raise TableError(
                f"column {col!r} is not numeric ({int(bad.sum())} value(s) such as "
                f"{str(df[col].iloc[first])[:20]!r} "
                f"on data line {first + 2})", path=path,
                fix="score columns hold numbers; leave a cell empty or write NA for a missing value"
                    + ("; a split column is only read in label tables" if col == "split" else ""))
        df[col] = num.astype(np.float64)
    _check_split(df, path, TableError)
    return df.reset_index(drop=True)


def join_on_ids(left: pd.DataFrame, right: pd.DataFrame, *, how: str = "inner") -> pd.DataFrame:
    """Join two frames on (FID, IID) -- never on row order.

    left may repeat an individual (a manifest: one row per image); right must not.
    how: "inner" (individuals in both) or "left" (keep all left rows; NaN where right lacks them).
    Frames indexed by (FID, IID) are accepted. Columns other than FID/IID must not overlap.
    """
    if how not in ("inner", "left"):
        raise TableError(f"join how={how!r} is not supported", fix="use 'inner' or 'left'")
    frames = []
    for side, df in (("left", left), ("right", right)):
        if list(df.index.names) == KEYS:
            df = df.reset_index()
        missing = [c for c in KEYS if c not in df.columns]
        if missing:
            raise TableError(f"{side} frame lacks column(s) {', '.join(missing)}",
                             fix="read it with read_manifest/read_table, which keep FID and IID")
        for key in KEYS:
            if not all(isinstance(v, str) for v in df[key]):
                raise TableError(f"{side} frame's {key} values are not all strings",
                                 fix="keep IDs as text (e.g. '007'), as read_manifest/read_table return them")
        frames.append(df)
    left, right = frames
    overlap = sorted((set(left.columns) & set(right.columns)) - set(KEYS))
    if overlap:
        raise TableError(f"both frames have column(s) {', '.join(overlap)}",
                         fix="drop or rename one copy before joining")
    if right.duplicated(KEYS).any():
        raise TableError("right frame repeats an FID/IID pair",
                         fix="the right side must have one row per individual")
    return left.merge(right, on=KEYS, how=how, sort=False).reset_index(drop=True)
