"""Layouts ``ucf101`` and ``hmdb51``: action recognition with an official train/test split (1, 2 or 3)
(:func:`read_ucf_hmdb`)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pandas as pd

from mmv.data.readers.common import absolute, clip_row, manifest_from_rows, read_text

_Entry = tuple[str, str, str]  # <class>/<file> as listed, class, split


def _locate(videos_root: Path, entry: str) -> Path | None:
    """``videos_root/<class>/<file>``, or ``videos_root/<file>`` for a flattened download."""
    for candidate in (videos_root / entry, videos_root / Path(entry).name):
        if candidate.is_file():
            return candidate
    return None


def _ucf101_entries(splits_dir: Path, split: int) -> list[_Entry]:
    """``(entry, class, split)`` from ``trainlist0N.txt`` and ``testlist0N.txt``."""
    entries = []
    for kind in ("train", "test"):
        path = splits_dir / f"{kind}list{split:02d}.txt"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: UCF101 split list not found")
        for line in read_text(path).splitlines():
            if line.strip():
                entry = line.split()[0].replace("\\", "/")
                entries.append((entry, entry.split("/")[0], kind))
    return entries


def _hmdb51_entries(splits_dir: Path, split: int) -> list[_Entry]:
    """``(entry, class, split)`` from ``<class>_test_split<N>.txt`` (1 train, 2 test, 0 unused: dropped)."""
    pattern = re.compile(rf"^(.+)_test_split{split}\.txt$")
    files = sorted(p for p in splits_dir.iterdir() if pattern.match(p.name))
    if not files:
        raise FileNotFoundError(f"{splits_dir}: no HMDB51 files <class>_test_split{split}.txt")
    entries = []
    for path in files:
        cls = pattern.match(path.name).group(1)
        for n, line in enumerate(read_text(path).splitlines(), start=1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 2 or fields[1] not in ("0", "1", "2"):
                raise ValueError(f"{path}: line {n}: expected '<file> <0|1|2>', got {line.strip()!r}")
            if fields[1] != "0":
                entries.append((f"{cls}/{fields[0]}", cls, "train" if fields[1] == "1" else "test"))
    return entries


def _class_targets(dataset: str, splits_dir: Path, entries: list[_Entry]) -> dict[str, int]:
    """``lower-cased class -> 0-based target``: UCF101's ``classInd.txt`` when present, else sorted names."""
    classes = sorted({cls for _, cls, _ in entries})
    targets = {cls.lower(): i for i, cls in enumerate(classes)}
    class_ind = splits_dir / "classInd.txt"
    if dataset == "ucf101" and class_ind.is_file():
        targets = {}
        for line in read_text(class_ind).splitlines():
            fields = line.split()
            if len(fields) == 2:
                targets[fields[1].lower()] = int(fields[0]) - 1
    return targets


def read_ucf_hmdb(
    videos_root: str | os.PathLike,
    splits_dir: str | os.PathLike,
    dataset: str = "ucf101",
    split: int = 1,
) -> pd.DataFrame:
    """UCF101 or HMDB51 action recognition with an official train/test split (1, 2 or 3).

    Layout, UCF101::

        videos_root/ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi     # or flat: videos_root/v_...avi
        splits_dir/classInd.txt        # "1 ApplyEyeMakeup" (1-based; optional)
        splits_dir/trainlist01.txt     # "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1"
        splits_dir/testlist01.txt      # "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi"

    HMDB51::

        videos_root/brush_hair/April_09_brush_hair_u_nm_np1_ba_goo_0.avi   # or flat
        splits_dir/brush_hair_test_split1.txt   # "<file> <id>": 1 train, 2 test, 0 unused (dropped)

    ``label_class`` is the class name; ``label_target`` its 0-based index: ``classInd.txt`` minus one for UCF101
    (sorted class names without it), sorted class names for HMDB51. ``split`` is ``train``/``test``;
    ``clip_id`` is ``<class>/<file>``. Listed videos that are not on disk are skipped and counted.
    """
    if dataset not in ("ucf101", "hmdb51"):
        raise ValueError(f"dataset must be 'ucf101' or 'hmdb51', got {dataset!r}")
    if split not in (1, 2, 3):
        raise ValueError(f"split must be 1, 2 or 3, got {split!r}")
    videos_root, splits_dir = absolute(videos_root), absolute(splits_dir)
    entries = _ucf101_entries(splits_dir, split) if dataset == "ucf101" else _hmdb51_entries(splits_dir, split)
    targets = _class_targets(dataset, splits_dir, entries)

    rows, skipped = [], 0
    for entry, cls, kind in entries:
        path = _locate(videos_root, entry)
        if path is None:
            skipped += 1
            continue
        if cls.lower() not in targets:
            raise ValueError(f"{splits_dir / 'classInd.txt'}: class {cls!r} (from {entry!r}) is not listed")
        rows.append(
            clip_row(entry, dataset, kind, video_path=str(path), label_class=cls, label_target=targets[cls.lower()])
        )
    return manifest_from_rows(rows, videos_root, skipped, str(splits_dir))
