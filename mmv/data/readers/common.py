"""What every reader shares: media extensions, the row and manifest builders, path and file listing helpers.

A reader collects rows (:func:`clip_row`) and ends with :func:`manifest_from_rows`, which validates them into a
canonical clip manifest (``docs/formats.md``) and records ``attrs["root"]`` and ``attrs["skipped"]``.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from mmv.data.manifest import MANIFEST_COLUMNS, normalize_manifest, validate_manifest

logger = logging.getLogger(__name__)

VIDEO_EXTENSIONS: tuple[str, ...] = (".mp4", ".webm", ".mkv", ".avi", ".mov", ".m4v")
AUDIO_EXTENSIONS: tuple[str, ...] = (".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a")
IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".webp")

_SPACE = re.compile(r"\s+")


def manifest_from_rows(
    rows: list[dict], root: str | os.PathLike, skipped: int, where: str, **attrs: Any
) -> pd.DataFrame:
    """Rows (dicts with schema keys, ``label_*`` and extras) -> a validated, canonical manifest.

    ``attrs["root"]`` is ``root`` made absolute, ``attrs["skipped"]`` the entries dropped for a missing media
    file (logged when any, naming ``where``), and every keyword of ``attrs`` is recorded as well.
    """
    columns = list(MANIFEST_COLUMNS)
    for row in rows:
        for key in row:
            if key not in columns:
                columns.append(key)
    df = pd.DataFrame(rows, columns=columns)
    validate_manifest(df, where)
    df = normalize_manifest(df)
    df.attrs["root"] = os.path.abspath(os.fspath(root))
    df.attrs["skipped"] = int(skipped)
    df.attrs.update(attrs)
    if skipped:
        logger.warning("%s: skipped %d entries whose media file is missing", where, skipped)
    return df


def clip_row(clip_id: str, dataset: str, split: str, **fields: Any) -> dict:
    """One manifest row: the whole file (``start`` 0, ``end`` null) without captions unless ``fields`` say."""
    row = {"clip_id": clip_id, "dataset": dataset, "split": split, "start": 0.0, "end": None, "captions": []}
    row.update(fields)
    return row


def absolute(path: str | os.PathLike) -> Path:
    """An absolute path (symbolic links kept, unlike ``Path.resolve``)."""
    return Path(os.path.abspath(os.fspath(path)))


def walk_files(root: Path, extensions: Iterable[str]) -> list[Path]:
    """Files under ``root`` (recursive, sorted, hidden files and directories skipped) with one of ``extensions``."""
    extensions = tuple(e.lower() for e in extensions)
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if not name.startswith(".") and name.lower().endswith(extensions):
                found.append(Path(dirpath) / name)
    return found


def index_by_stem(paths: Iterable[Path], preference: tuple[str, ...]) -> dict[str, Path]:
    """``stem -> path``; when several files share a stem, the extension earliest in ``preference`` wins."""
    rank = {ext: i for i, ext in enumerate(preference)}
    index: dict[str, Path] = {}
    for p in paths:
        old = index.get(p.stem)
        if old is None or rank.get(p.suffix.lower(), len(rank)) < rank.get(old.suffix.lower(), len(rank)):
            index[p.stem] = p
    return index


def videos_by_stem(videos_dir: Path) -> dict[str, Path]:
    """``video id (file stem) -> video`` for every video under ``videos_dir``, at any depth."""
    if not videos_dir.is_dir():
        raise FileNotFoundError(f"{videos_dir}: not a directory of videos")
    return index_by_stem(walk_files(videos_dir, VIDEO_EXTENSIONS), VIDEO_EXTENSIONS)


def read_text(path: Path) -> str:
    """A text file as UTF-8 (BOM dropped), falling back to cp1252 then Latin-1 for legacy files."""
    data = path.read_bytes()
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    return data.decode("latin-1")


def read_csv_table(path: Path, required: set[str], aliases: dict[str, str]) -> pd.DataFrame:
    """A caption CSV as strings, column names stripped; ``aliases`` (``other name -> name``) rename columns
    that are absent under their own name. Raises when the file or a ``required`` column is missing."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: caption file not found")
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    table.columns = [c.strip() for c in table.columns]
    table = table.rename(columns={a: c for a, c in aliases.items() if a in table.columns and c not in table.columns})
    missing = required - set(table.columns)
    if missing:
        raise ValueError(f"{path}: missing column(s) {', '.join(sorted(missing))} (has {', '.join(table.columns)})")
    return table


def squash_spaces(text: str) -> str:
    """Runs of whitespace as one space, stripped."""
    return _SPACE.sub(" ", text).strip()
