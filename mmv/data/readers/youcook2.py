"""Layout ``youcook2``: YouCook2 text-to-clip retrieval, one row per annotated segment (:func:`read_youcook2`)."""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path
from typing import Any

import pandas as pd

from mmv.data.readers.common import absolute, clip_row, manifest_from_rows, read_csv_table, videos_by_stem

logger = logging.getLogger(__name__)


def _json_segments(path: Path) -> list[dict[str, Any]]:
    """The validation segments of the official annotations JSON."""
    data = json.loads(path.read_text(encoding="utf-8"))
    database = data.get("database", data) if isinstance(data, dict) else None
    if not isinstance(database, dict):
        raise ValueError(f"{path}: expected {{'database': {{video_id: {{'annotations': [...]}}}}}}")
    out = []
    for vid, entry in database.items():
        if entry.get("subset", "validation") != "validation":
            continue
        for ann in entry.get("annotations", []):
            start, end = ann["segment"]
            out.append(
                {"video_id": vid, "start": start, "end": end, "text": ann["sentence"], "task": entry.get("recipe_type")}
            )
    return out


def _youcook_segments(path: Path) -> list[dict[str, Any]]:
    """``[{video_id, start, end, text, task}]`` from the CSV or the official annotations JSON."""
    if path.suffix.lower() == ".json":
        return _json_segments(path)
    table = read_csv_table(path, {"video_id", "start", "end", "text"}, {"sentence": "text", "caption": "text"})
    task = table["task"] if "task" in table.columns else [None] * len(table)
    return [
        {"video_id": v, "start": s, "end": e, "text": t, "task": k}
        for v, s, e, t, k in zip(table["video_id"], table["start"], table["end"], table["text"], task)
    ]


def _segment_times(seg: dict[str, Any]) -> tuple[float, float] | None:
    """``(start, end)`` in seconds, or ``None`` when unreadable, negative or ``end <= start``."""
    try:
        start, end = float(seg["start"]), float(seg["end"])
    except (TypeError, ValueError):
        return None
    if not (math.isfinite(start) and math.isfinite(end)) or start < 0 or end <= start:
        return None
    return start, end


def read_youcook2(csv_path: str | os.PathLike, videos_dir: str | os.PathLike, split: str = "test") -> pd.DataFrame:
    """YouCook2 text-to-clip retrieval: one row per annotated segment (a clip of a cooking video).

    Layout::

        validation_youcook.csv       # end,start,task,text,video_id   (MIL-NCE's; column order free)
            60,47,226,pick the ends off the verdalago,xHr8X2Wpmno
        # or youcookii_annotations_trainval.json: {"database": {id: {"subset": "validation", "recipe_type",
        #     "annotations": [{"segment": [47, 60], "sentence": "..."}]}}}   (validation segments only)
        videos_dir/validation/226/xHr8X2Wpmno.mp4   # searched recursively by video id: any depth, any extension

    ``clip_id`` is ``<video_id>_<start_ms>_<end_ms>`` (``#<n>`` added when a segment repeats), ``start``/``end``
    the segment in seconds, ``captions`` the one ``{start, end, text}``; extra columns ``video_id`` and ``task``.
    Segments with unreadable times or ``end <= start`` are dropped (``attrs["dropped"]``); those whose video is
    missing are skipped and counted (``attrs["skipped"]``).
    """
    csv_path, videos_dir = absolute(csv_path), absolute(videos_dir)
    segments = _youcook_segments(csv_path)
    videos = videos_by_stem(videos_dir)
    rows, skipped, dropped, seen = [], 0, 0, {}
    for seg in segments:
        vid = str(seg["video_id"]).strip()
        times = _segment_times(seg)
        if times is None:
            dropped += 1
            continue
        path = videos.get(vid)
        if path is None:
            skipped += 1
            continue
        start, end = times
        clip_id = f"{vid}_{round(start * 1000)}_{round(end * 1000)}"
        n = seen[clip_id] = seen.get(clip_id, -1) + 1
        task = seg.get("task")
        rows.append(
            clip_row(
                clip_id if n == 0 else f"{clip_id}#{n}",
                "youcook2",
                split,
                video_path=str(path),
                start=start,
                end=end,
                captions=[{"start": start, "end": end, "text": str(seg["text"]).strip()}],
                video_id=vid,
                task=None if task in (None, "") else str(task),
            )
        )
    if dropped:
        logger.warning("%s: dropped %d segments with invalid times", csv_path, dropped)
    return manifest_from_rows(rows, videos_dir, skipped, str(csv_path), dropped=dropped)
