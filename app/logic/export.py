"""Exports (tables as CSV or parquet with a provenance JSON) and the view's URL query parameters.

``app/widgets/downloads.py`` puts these behind download buttons, ``app/widgets/view_url.py`` behind ``st.query_params``.

**Exports.** Every export is one ZIP archive holding the table(s) (``<name>.csv`` or ``<name>.parquet``) and
``provenance.json``: what was exported (``kind``), when (``created``, UTC), by which app (``app``: mmv version,
git commit when the checkout has one), from which bank (``bank``: its path and the provenance it was built with:
checkpoint path and hash, manifest, parameters) and with which checkpoint chosen in the app (``checkpoint``),
the view's parameters (``view``: space, query, k, colour, scope...), and each table's rows and columns. A ZIP
keeps one download per export whatever the format, and a CSV cannot carry metadata; parquet files also carry the
same JSON in their schema metadata (key ``mmv_provenance``) so they stay self-describing once unpacked.
:func:`read_export` reads an archive back (the tests' round trip).

**View parameters.** A page describes its view as a :class:`Param` per URL key (the session-state key of the
widget it sets, and what values are valid). :func:`read_view` turns a URL's parameters into widget values and
a list of warnings: unknown keys and invalid values are ignored with a warning, never an exception.
:func:`view_params` turns widget values back into URL parameters.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

FORMATS = ("csv", "parquet")
PROVENANCE_FILE = "provenance.json"
PARQUET_KEY = b"mmv_provenance"
ROOT = Path(__file__).resolve().parents[2]
#: Bank provenance entries copied into an export's provenance (the rest, e.g. timings and index details, is not
#: about what the numbers mean).
BANK_KEYS = (
    "format",
    "format_version",
    "created",
    "checkpoint",
    "model_state_sha256",
    "manifest",
    "parameters",
    "counts",
    "spaces",
)


# ---------------------------------------------------------------------------------------------------
# Provenance
# ---------------------------------------------------------------------------------------------------


def _git_dirs(root: Path) -> tuple[Path, Path]:
    """``(git dir, common dir)`` of a checkout: both ``root/.git`` in a plain clone; in a worktree, whose ``.git``
    is a ``gitdir: <path>`` file, its own directory (``HEAD``) and the repository's (``refs``, ``packed-refs``)."""
    git = root / ".git"
    if git.is_file():
        git = (root / git.read_text().strip().removeprefix("gitdir:").strip()).resolve()
    common = git / "commondir"
    return git, (git / common.read_text().strip()).resolve() if common.is_file() else git


def git_commit(root: Path = ROOT) -> str | None:
    """The checked-out commit (read from ``.git``: no subprocess), or ``None`` outside a git checkout."""
    try:
        git, common = _git_dirs(root)
        head = (git / "HEAD").read_text().strip()
        if not head.startswith("ref: "):
            return head or None
        ref = head[5:]
        for d in dict.fromkeys((git, common)):
            if (d / ref).is_file():
                return (d / ref).read_text().strip() or None
        for line in (common / "packed-refs").read_text().splitlines():
            if line.endswith(" " + ref):
                return line.split(" ", 1)[0]
    except OSError:
        return None
    return None


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def provenance(
    kind: str,
    bank_dir: str | Path | None,
    bank_provenance: Mapping[str, Any] | None,
    checkpoint: str | Path | None,
    view: Mapping[str, Any] | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The provenance of an export (module docstring); tables are added by :func:`export_zip`."""
    from mmv import __version__

    bank = {"path": str(bank_dir) if bank_dir is not None else None}
    bank |= {k: (bank_provenance or {}).get(k) for k in BANK_KEYS if k in (bank_provenance or {})}
    return _jsonable(
        {
            "kind": kind,
            "created": (now or datetime.now(timezone.utc)).isoformat(timespec="seconds"),
            "app": {"mmv_version": __version__, "git_commit": git_commit()},
            "bank": bank,
            "checkpoint": str(checkpoint) if checkpoint is not None else None,
            "view": dict(view or {}),
        }
    )


# ---------------------------------------------------------------------------------------------------
# Tables
# ---------------------------------------------------------------------------------------------------


def _flat(df: pd.DataFrame) -> pd.DataFrame:
    """Columns a CSV can hold: lists and dicts become JSON strings."""
    out = df.copy()
    for c in out.columns:
        if out[c].dtype == object and out[c].map(lambda v: isinstance(v, (list, dict, tuple, np.ndarray))).any():
            out[c] = out[c].map(
                lambda v: json.dumps(_jsonable(v)) if isinstance(v, (list, dict, tuple, np.ndarray)) else v
            )
    return out


def table_bytes(df: pd.DataFrame, fmt: str, meta: Mapping[str, Any] | None = None) -> bytes:
    """One table as CSV (UTF-8, no index, missing values as ``NaN`` so that an empty string stays one) or parquet
    (``meta`` in its schema metadata)."""
    if fmt == "csv":
        return _flat(df).to_csv(index=False, na_rep="NaN").encode("utf-8")
    if fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pandas(_flat(df), preserve_index=False)
        if meta is not None:
            table = table.replace_schema_metadata({**(table.schema.metadata or {}), PARQUET_KEY: json.dumps(meta)})
        buf = io.BytesIO()
        pq.write_table(table, buf)
        return buf.getvalue()
    raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")


def export_zip(tables: Mapping[str, pd.DataFrame], fmt: str, prov: Mapping[str, Any]) -> bytes:
    """A ZIP of ``<name>.<fmt>`` per table and ``provenance.json`` (``prov`` plus each table's shape)."""
    full = dict(prov) | {
        "format": fmt,
        "tables": {
            name: {"file": f"{name}.{fmt}", "rows": len(df), "columns": [str(c) for c in df.columns]}
            for name, df in tables.items()
        },
    }
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, df in tables.items():
            z.writestr(f"{name}.{fmt}", table_bytes(df, fmt, full))
        z.writestr(PROVENANCE_FILE, json.dumps(full, indent=2, ensure_ascii=False))
    return buf.getvalue()


def read_export(data: bytes) -> tuple[dict[str, pd.DataFrame], dict[str, Any]]:
    """``({name: table}, provenance)`` of an archive written by :func:`export_zip`."""
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        prov = json.loads(z.read(PROVENANCE_FILE))
        tables = {}
        for name, info in prov.get("tables", {}).items():
            raw = z.read(info["file"])
            if info["file"].endswith(".csv"):
                tables[name] = pd.read_csv(io.BytesIO(raw), keep_default_na=False, na_values=["NaN"])
            else:
                tables[name] = pd.read_parquet(io.BytesIO(raw))
    return tables, prov


def file_name(kind: str, fmt: str, when: datetime | None = None) -> str:
    """``mmv-<kind>-<UTC time>-<fmt>.zip``."""
    stamp = (when or datetime.now(timezone.utc)).strftime("%Y%m%d-%H%M%S")
    return f"mmv-{kind}-{stamp}-{fmt}.zip"


def coordinates_table(
    coords: pd.DataFrame, meta: pd.DataFrame, colour_by: str | None = None, selected: Iterable[int] = ()
) -> pd.DataFrame:
    """A space's map as exported: ``row``, ``clip_id``, ``modality``, ``x``, ``y`` (``bank.coords``), the clip's
    ``split``, the ``colour_by`` column when it is one of ``meta``'s, and ``selected`` (in the Spaces selection)."""
    out = coords[["row", "clip_id", "modality", "x", "y"]].copy().reset_index(drop=True)
    rows = out["row"].to_numpy(dtype=np.int64)
    if "split" in meta.columns:
        out["split"] = meta["split"].astype(str).to_numpy()[rows]
    if colour_by and colour_by in meta.columns and colour_by not in out.columns:
        out[colour_by] = meta[colour_by].to_numpy()[rows]
    out["selected"] = np.isin(rows, np.asarray(list(selected), dtype=np.int64))
    return out


# ---------------------------------------------------------------------------------------------------
# The view in the URL
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Param:
    """One URL parameter of a page's view.

    Attributes:
        state_key: the session-state key of the widget it sets.
        kind: ``"str"``, ``"int"`` or ``"choice"``.
        choices: valid values of a ``"choice"`` (given, or a function of nothing evaluated when read).
        lo, hi: bounds of an ``"int"``.
        max_len: longest ``"str"``.
        aliases: for a ``"choice"``, ``{URL value: widget value}`` when the two differ (``source=clip`` for the
            radio's "A clip of the bank"); the URL values are then the choices.
        omit: a widget value never written to the URL (a "none" choice).
    """

    state_key: str
    kind: str = "str"
    choices: Iterable[str] | Callable[[], Iterable[str]] | None = None
    lo: int | None = None
    hi: int | None = None
    max_len: int = 2000
    aliases: Mapping[str, Any] | None = None
    omit: Any = None

    def options(self) -> list[str]:
        if self.aliases is not None:
            return [str(a) for a in self.aliases]
        return [str(c) for c in (self.choices() if callable(self.choices) else self.choices or ())]


#: The URL keys of every page's view, so a page silently skips another page's keys left in the URL.
VIEW_KEYS = {
    "spaces": ("colour", "mouse", "links", "space"),
    "retrieval": ("source", "q", "clip", "modality", "target", "k"),
    "metrics": ("scope", "k", "compare"),
}
ALL_VIEW_KEYS = frozenset(k for keys in VIEW_KEYS.values() for k in keys)


def _one(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return str(value[-1]) if value else ""
    return str(value)


def read_view(
    params: Mapping[str, Any], spec: Mapping[str, Param], ignore: Iterable[str] = ALL_VIEW_KEYS
) -> tuple[dict[str, Any], list[str]]:
    """Widget values from URL parameters: ``({state_key: value}, warnings)``.

    Args:
        params: the URL's query parameters (a value may be a list: the last one counts).
        spec: the page's parameters.
        ignore: keys silently skipped when not in ``spec`` (default: every page's keys, :data:`VIEW_KEYS`, left in
            the URL by another page).

    Unknown keys, integers that do not parse or are out of bounds, choices that are not offered and overlong
    strings are left out, each with a warning; nothing raises.
    """
    values: dict[str, Any] = {}
    warnings: list[str] = []
    skip = set(ignore)
    for key, raw in params.items():
        if key not in spec:
            if key not in skip:
                warnings.append(
                    f"Unknown URL parameter `{key}` ignored (this page reads: {', '.join(spec) or 'none'})."
                )
            continue
        p, text = spec[key], _one(raw)
        if p.kind == "int":
            try:
                number = int(text.strip())
            except ValueError:
                warnings.append(f"URL parameter `{key}={text}` is not a whole number: ignored.")
                continue
            if (p.lo is not None and number < p.lo) or (p.hi is not None and number > p.hi):
                warnings.append(f"URL parameter `{key}={number}` is outside {p.lo}\u2013{p.hi}: ignored.")
                continue
            values[p.state_key] = number
        elif p.kind == "choice":
            options = p.options()
            if text not in options:
                shown = ", ".join(options[:8]) + ("\u2026" if len(options) > 8 else "")
                warnings.append(f"URL parameter `{key}={text[:80]}` is not one of {shown}: ignored.")
                continue
            values[p.state_key] = p.aliases[text] if p.aliases is not None else text
        else:
            if len(text) > p.max_len:
                warnings.append(f"URL parameter `{key}` is longer than {p.max_len} characters: ignored.")
                continue
            values[p.state_key] = text
    return values, warnings


def view_params(state: Mapping[str, Any], spec: Mapping[str, Param]) -> dict[str, str]:
    """URL parameters of the current view: ``{url key: str(value)}`` for every parameter whose widget has a value."""
    out = {}
    for key, p in spec.items():
        value = state.get(p.state_key)
        if p.aliases is not None:
            value = next((a for a, v in p.aliases.items() if v == value), None)
        if value is not None and value != "" and (p.omit is None or value != p.omit):
            out[key] = str(value)
    return out
