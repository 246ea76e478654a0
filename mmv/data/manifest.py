"""The clip manifest: one table, one row per clip (a time window of a media file); see ``docs/formats.md``.

Stored as parquet (``*.parquet``) or CSV (``*.csv``, for hand-written manifests; ``captions`` is a JSON string
there). Paths in the file are relative to the manifest's own directory unless absolute; :func:`load_manifest`
returns them absolute, and :func:`save_manifest` writes paths inside the manifest's directory relative again.

In memory (what :func:`load_manifest`, :func:`normalize_manifest` and every reader in
:mod:`mmv.data.readers` return) the columns are, in this order: :data:`MANIFEST_COLUMNS`, the ``label_*``
columns, any extra columns, and the derived ``has_text``. Types:

* ``clip_id``, ``dataset``, ``split``: strings;
* ``video_path``, ``audio_path``, ``image_path``: absolute path strings or ``None`` (object dtype, so that
  ``if row.video_path:`` works);
* ``start``: float64 seconds; ``end``: float64 seconds, NaN for "to the end of the file";
* ``captions``: a Python list of ``{"start": float, "end": float, "text": str}`` dicts (maybe empty; rows of
  one video may share one list object, so copy before modifying);
* ``fold``: nullable ``Int64``;
* ``has_text``: bool, ``len(captions) > 0``.
"""

from __future__ import annotations

import json
import math
import numbers
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mmv.fileio import atomic_file

#: Every column of the schema, in the order they are stored. Columns absent from a file take a default on
#: load (``None`` paths, ``start`` 0, ``end`` null, no captions, null ``fold``) except :data:`REQUIRED_COLUMNS`.
MANIFEST_COLUMNS: tuple[str, ...] = (
    "clip_id",
    "dataset",
    "video_path",
    "audio_path",
    "image_path",
    "start",
    "end",
    "captions",
    "split",
    "fold",
)
#: The columns a manifest file must contain. Besides these, at least one of :data:`PATH_COLUMNS` must be
#: present, and every row must have at least one non-null path.
REQUIRED_COLUMNS: tuple[str, ...] = ("clip_id", "dataset", "split")
PATH_COLUMNS: tuple[str, ...] = ("video_path", "audio_path", "image_path")
SPLITS: tuple[str, ...] = ("train", "val", "test")
LABEL_PREFIX = "label_"
DERIVED_COLUMNS: tuple[str, ...] = ("has_text",)
_CAPTION_KEYS = ("start", "end", "text")


def label_columns(df: pd.DataFrame) -> list[str]:
    """The ``label_<name>`` columns of a manifest, in table order."""
    return [c for c in df.columns if isinstance(c, str) and c.startswith(LABEL_PREFIX) and len(c) > len(LABEL_PREFIX)]


# ---------------------------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------------------------


def _is_null(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return value is pd.NA or value is pd.NaT


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def _row_error(where: str, clip_id: Any, column: str, message: str) -> ValueError:
    return ValueError(f"{where}: clip_id {clip_id!r}, column {column!r}: {message}")


def _check_captions(value: Any) -> str | None:
    """``None`` when ``value`` is a valid caption list, else what is wrong with it."""
    if _is_null(value):
        return None
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, (list, tuple, np.ndarray)):
        return f"must be a list of {{start, end, text}}, got {type(value).__name__}"
    for i, cap in enumerate(value):
        if not isinstance(cap, Mapping):
            return f"caption {i} must be a {{start, end, text}} object, got {type(cap).__name__}"
        missing = [k for k in _CAPTION_KEYS if k not in cap]
        if missing:
            return f"caption {i} lacks {', '.join(missing)}"
        s, e, text = cap["start"], cap["end"], cap["text"]
        if not (_is_number(s) and math.isfinite(s)) or not (_is_number(e) and math.isfinite(e)):
            return f"caption {i} start and end must be finite numbers, got start={s!r} end={e!r}"
        if s > e:
            return f"caption {i} starts after it ends (start={s}, end={e})"
        if not isinstance(text, str):
            return f"caption {i} text must be a string, got {type(text).__name__}"
    return None


def validate_manifest(df: pd.DataFrame, where: str | os.PathLike = "<manifest>") -> None:
    """Checks a manifest table against the schema; raises on the first problem.

    Args:
        df: The table (captions already parsed into lists: a CSV's JSON strings must be decoded first).
        where: The file name (or any description) put at the front of error messages.

    Raises:
        ValueError: ``"<where>: clip_id '<id>', column '<col>': <problem>"`` for a bad value, or
            ``"<where>: missing required column '<col>'"`` for an absent column.
    """
    where = str(where)
    for col in REQUIRED_COLUMNS:
        if col not in df.columns:
            raise ValueError(f"{where}: missing required column {col!r}")
    present_paths = [c for c in PATH_COLUMNS if c in df.columns]
    if not present_paths:
        raise ValueError(f"{where}: missing required column: one of {', '.join(map(repr, PATH_COLUMNS))}")
    ids = df["clip_id"].tolist()
    _check_ids_and_splits(df, ids, where)
    _check_paths(df, ids, present_paths, where)
    _check_times(df, ids, where)
    if "captions" in df.columns:
        checked: set[int] = set()  # rows of one video often share one caption list: check it once
        for cid, caps in zip(ids, df["captions"].tolist()):
            if id(caps) in checked:
                continue
            problem = _check_captions(caps)
            if problem:
                raise _row_error(where, cid, "captions", problem)
            checked.add(id(caps))
    if "fold" in df.columns:
        for cid, v in zip(ids, df["fold"].tolist()):
            if not _is_null(v) and not (_is_number(v) and float(v).is_integer()):
                raise _row_error(where, cid, "fold", f"must be an integer or null, got {v!r}")


def _check_ids_and_splits(df: pd.DataFrame, ids: list, where: str) -> None:
    """clip_id: non-empty and unique strings; dataset and split: non-empty strings, split one of :data:`SPLITS`."""
    for cid in ids:
        if not isinstance(cid, str) or not cid:
            raise _row_error(where, cid, "clip_id", "must be a non-empty string")
    seen: dict[str, int] = {}
    for i, cid in enumerate(ids):
        if cid in seen:
            raise _row_error(where, cid, "clip_id", f"duplicate (rows {seen[cid]} and {i})")
        seen[cid] = i
    for col in ("dataset", "split"):
        for cid, v in zip(ids, df[col].tolist()):
            if not isinstance(v, str) or not v:
                raise _row_error(where, cid, col, f"must be a non-empty string, got {v!r}")
    for cid, v in zip(ids, df["split"].tolist()):
        if v not in SPLITS:
            raise _row_error(where, cid, "split", f"must be one of {', '.join(SPLITS)}, got {v!r}")


def _check_paths(df: pd.DataFrame, ids: list, present_paths: list[str], where: str) -> None:
    """Each path column holds strings or nulls, and every clip has at least one path."""
    path_values = [df[c].tolist() for c in present_paths]
    for col, values in zip(present_paths, path_values):
        for cid, v in zip(ids, values):
            if not _is_null(v) and (not isinstance(v, str) or not v):
                raise _row_error(where, cid, col, f"must be a path string or null, got {v!r}")
    for i, cid in enumerate(ids):
        if all(_is_null(values[i]) or values[i] == "" for values in path_values):
            raise _row_error(where, cid, "/".join(PATH_COLUMNS), "every path is null: the clip has no media")


def _check_times(df: pd.DataFrame, ids: list, where: str) -> None:
    """start: a finite number >= 0 (0 when absent); end: null or a finite number after start."""
    starts = df["start"].tolist() if "start" in df.columns else [0.0] * len(ids)
    ends = df["end"].tolist() if "end" in df.columns else [None] * len(ids)
    for cid, s, e in zip(ids, starts, ends):
        if not (_is_number(s) and math.isfinite(s)):
            raise _row_error(where, cid, "start", f"must be a finite number of seconds, got {s!r}")
        if s < 0:
            raise _row_error(where, cid, "start", f"must be >= 0, got {s}")
        if _is_null(e):
            continue
        if not (_is_number(e) and math.isfinite(e)):
            raise _row_error(where, cid, "end", f"must be a finite number of seconds or null, got {e!r}")
        if e <= s:
            raise _row_error(where, cid, "end", f"must be > start ({s}), got {e}")


# ---------------------------------------------------------------------------------------------------
# Canonical in-memory form
# ---------------------------------------------------------------------------------------------------


def _clean_captions(value: Any) -> list[dict]:
    if _is_null(value):
        return []
    return [{"start": float(c["start"]), "end": float(c["end"]), "text": str(c["text"])} for c in value]


def _clean_path(value: Any) -> str | None:
    if _is_null(value) or value == "":
        return None
    return os.fspath(value)


def normalize_manifest(df: pd.DataFrame) -> pd.DataFrame:
    """A copy of a (valid) manifest in the canonical in-memory form described in the module docstring.

    Missing optional columns get their defaults, dtypes are made canonical, columns are ordered
    (schema, labels, extras, ``has_text``) and the index is reset. Paths are not resolved. ``df.attrs`` is kept.
    """
    n = len(df)
    out: dict[str, Any] = {}
    out["clip_id"] = pd.Series(df["clip_id"].tolist(), dtype=str)
    out["dataset"] = pd.Series(df["dataset"].tolist(), dtype=str)
    for col in PATH_COLUMNS:
        values = df[col].tolist() if col in df.columns else [None] * n
        out[col] = pd.Series([_clean_path(v) for v in values], dtype=object)
    out["start"] = pd.Series(df["start"].tolist() if "start" in df.columns else [0.0] * n, dtype="float64")
    ends = df["end"].tolist() if "end" in df.columns else [None] * n
    out["end"] = pd.Series([np.nan if _is_null(e) else float(e) for e in ends], dtype="float64")
    caps = df["captions"].tolist() if "captions" in df.columns else [None] * n
    cleaned: dict[int, list[dict]] = {}  # a list shared by several rows stays shared (one copy in memory)
    for c in caps:
        if not _is_null(c) and id(c) not in cleaned:
            cleaned[id(c)] = _clean_captions(c)
    out["captions"] = pd.Series([[] if _is_null(c) else cleaned[id(c)] for c in caps], dtype=object)
    out["split"] = pd.Series(df["split"].tolist(), dtype=str)
    folds = df["fold"].tolist() if "fold" in df.columns else [None] * n
    out["fold"] = pd.Series([pd.NA if _is_null(f) else int(f) for f in folds], dtype="Int64")

    for col in [*label_columns(df), *df.columns]:
        if col not in out and col not in DERIVED_COLUMNS:
            out[col] = df[col].reset_index(drop=True)
    out["has_text"] = pd.Series([len(c) > 0 for c in out["captions"]], dtype=bool)
    result = pd.DataFrame(out, index=pd.RangeIndex(n))
    result.attrs.update(df.attrs)
    return result


def resolve_paths(df: pd.DataFrame, root: str | os.PathLike) -> pd.DataFrame:
    """Makes relative paths absolute against ``root`` (in place) and records ``df.attrs["root"]``."""
    root = os.path.abspath(os.fspath(root))
    for col in PATH_COLUMNS:
        if col in df.columns:
            df[col] = pd.Series(
                [None if p is None else os.path.normpath(os.path.join(root, p)) for p in df[col]],
                index=df.index,
                dtype=object,
            )
    df.attrs["root"] = root
    return df


# ---------------------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------------------


def _format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        return "parquet"
    if suffix == ".csv":
        return "csv"
    raise ValueError(f"{path}: unknown manifest format (expected .parquet or .csv)")


def _read_csv(path: Path) -> pd.DataFrame:
    dtypes = {c: str for c in ("clip_id", "dataset", "split", "captions", *PATH_COLUMNS)}
    dtypes["fold"] = "Int64"
    header = pd.read_csv(path, nrows=0).columns
    df = pd.read_csv(
        path,
        dtype={k: v for k, v in dtypes.items() if k in header},
        keep_default_na=False,
        na_values=[""],
        # pandas 3 parses floats exactly by default (and deprecates the option); pandas 2 needs asking
        **({} if int(pd.__version__.split(".")[0]) >= 3 else {"float_precision": "round_trip"}),
    )
    for col in label_columns(df):  # an int label with gaps reads as float: make it a nullable int again
        values = df[col]
        if pd.api.types.is_float_dtype(values.dtype) and values.isna().any():
            present = values.dropna().to_numpy()
            if len(present) and bool(np.all(np.mod(present, 1) == 0)):
                df[col] = values.astype("Int64")
    if "captions" in df.columns:
        parsed = []
        ids = df["clip_id"].tolist() if "clip_id" in df.columns else [None] * len(df)
        for cid, text in zip(ids, df["captions"].tolist()):
            if _is_null(text) or not text.strip():
                parsed.append([])
                continue
            try:
                parsed.append(json.loads(text))
            except json.JSONDecodeError as err:
                raise _row_error(str(path), cid, "captions", f"invalid JSON ({err})") from None
        df["captions"] = pd.Series(parsed, index=df.index, dtype=object)
    return df


def load_manifest(path: str | os.PathLike) -> pd.DataFrame:
    """Reads, validates and normalizes a manifest; relative paths become absolute.

    Args:
        path: A ``.parquet`` or ``.csv`` manifest.

    Returns:
        The canonical table (see the module docstring) with ``attrs["root"]`` = the manifest's directory.

    Raises:
        ValueError: An unknown suffix, or a schema violation (naming the file, the row's clip_id and the column).
        FileNotFoundError: ``path`` does not exist.
    """
    path = Path(path)
    fmt = _format(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: manifest not found")
    if fmt == "parquet":
        df = pd.read_parquet(path)
        if "captions" in df.columns:
            df["captions"] = pd.Series(
                [c if _is_null(c) else list(c) for c in df["captions"].tolist()], index=df.index, dtype=object
            )
    else:
        df = _read_csv(path)
    df.attrs = {}
    validate_manifest(df, path)
    df = normalize_manifest(df)
    return resolve_paths(df, path.parent)


def _relative_paths(df: pd.DataFrame, directory: str) -> None:
    """Rewrites absolute paths inside ``directory`` as POSIX paths relative to it (in place)."""
    base = df.attrs.get("root") or os.getcwd()
    for col in PATH_COLUMNS:
        values = []
        for p in df[col]:
            if p is not None:
                p = os.path.normpath(os.path.join(base, p))
                if os.path.commonpath([p, directory]) == directory:
                    p = Path(os.path.relpath(p, directory)).as_posix()
            values.append(p)
        df[col] = pd.Series(values, index=df.index, dtype=object)


def _parquet_table(df: pd.DataFrame):
    import pyarrow as pa

    caption_type = pa.list_(pa.struct([("start", pa.float64()), ("end", pa.float64()), ("text", pa.string())]))
    known = {
        "clip_id": pa.string(),
        "dataset": pa.string(),
        "video_path": pa.string(),
        "audio_path": pa.string(),
        "image_path": pa.string(),
        "start": pa.float64(),
        "end": pa.float64(),
        "captions": caption_type,
        "split": pa.string(),
        "fold": pa.int64(),
    }
    inferred = pa.Schema.from_pandas(df.drop(columns=list(known)), preserve_index=False)
    fields = [pa.field(c, known[c]) if c in known else inferred.field(c) for c in df.columns]
    return pa.Table.from_pandas(df, schema=pa.schema(fields), preserve_index=False)


def save_manifest(df: pd.DataFrame, path: str | os.PathLike) -> None:
    """Validates and writes a manifest atomically (a temporary sibling, then ``os.replace``).

    Parquet stores ``captions`` as ``list<struct<start: double, end: double, text: string>>``; CSV as a JSON
    string. Paths inside the manifest's directory are written relative to it, others stay absolute. Relative
    paths in ``df`` are taken relative to ``df.attrs["root"]`` (or the working directory). ``has_text`` is
    derived and not stored.

    Args:
        df: A manifest table.
        path: Destination, ``.parquet`` or ``.csv``; its directory is created if needed.
    """
    path = Path(path)
    fmt = _format(path)
    validate_manifest(df, path)
    out = normalize_manifest(df).drop(columns=list(DERIVED_COLUMNS))
    directory = os.path.abspath(path.parent)
    os.makedirs(directory, exist_ok=True)
    _relative_paths(out, directory)
    with atomic_file(path) as tmp:
        if fmt == "parquet":
            import pyarrow.parquet as pq

            pq.write_table(_parquet_table(out), tmp)
        else:
            out["captions"] = [json.dumps(c, ensure_ascii=False) for c in out["captions"]]
            out.to_csv(tmp, index=False)


# ---------------------------------------------------------------------------------------------------
# Captions
# ---------------------------------------------------------------------------------------------------


def captions_in_window(captions: Iterable[Mapping], start: float, end: float | None, k: int) -> list[dict]:
    """The ``k`` captions nearest in time to the window ``[start, end]``: the MIL-NCE candidates of a clip.

    The distance of a caption ``[s, e]`` to the window is 0 when they overlap (touching counts), else the gap
    between them. Captions are returned nearest first, ties broken by start time (then end time, then their
    order in ``captions``); fewer than ``k`` when there are fewer.

    Args:
        captions: ``{start, end, text}`` mappings (a manifest row's ``captions``).
        start: Window start, seconds.
        end: Window end, seconds; ``None``/NaN means to the end of the file.
        k: How many to return (``<= 0`` gives ``[]``).

    Returns:
        New ``{"start": float, "end": float, "text": str}`` dicts.
    """
    if k <= 0:
        return []
    if end is None or (isinstance(end, float) and math.isnan(end)):
        end = math.inf
    scored = []
    for i, cap in enumerate(captions):
        s, e = float(cap["start"]), float(cap["end"])
        distance = max(0.0, s - end, start - e)
        scored.append((distance, s, e, i, cap))
    scored.sort(key=lambda t: t[:4])
    return [{"start": s, "end": e, "text": str(cap["text"])} for _, s, e, _, cap in scored[:k]]
