"""Layout ``howto100m``: narrated videos and their ASR captions (:func:`read_howto100m`).

One row per caption-anchored clip: the window is centred on the caption, ``max(caption length, clip_seconds)``
long, shifted to start at 0 if it would begin before (:func:`caption_window`); identical windows of one video
are merged. The video's duration is unknown here (nothing is decoded), so a window may run past the end: the
sampler clamps it. With ``clip_seconds=None``, one row per video (``start`` 0, ``end`` null); this is the form
to use at full scale, since every row carries **all** captions of its video (the sampler picks the K nearest
with :func:`~mmv.data.manifest.captions_in_window`), which in the per-caption form repeats them once per clip
in the stored file.

Captions are sorted by start; those with empty text, non-numeric times or ``end < start`` are dropped
(counted in ``attrs["dropped_captions"]``). ``clip_id`` is ``<video_id>_<start_ms>_<end_ms>`` (or
``<video_id>`` per video), plus an extra ``video_id`` column. The split is :func:`hash_split` of the video id,
so clips of one video never straddle splits. Videos listed in the captions but absent from ``videos_dir`` are
skipped and counted in ``attrs["skipped"]``; videos without captions are ignored (``attrs["uncaptioned"]``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from pathlib import Path

import pandas as pd

from mmv.data.readers.common import absolute, clip_row, index_by_stem, manifest_from_rows, squash_spaces, walk_files

logger = logging.getLogger(__name__)

_VIDEO_EXTENSIONS = (".mp4", ".webm", ".mkv")
_RawCaptions = dict[str, tuple[list, list, list]]  # video_id -> (starts, ends, texts), as stored


def hash_split(key: str, seed: int = 0, val_fraction: float = 0.0, test_fraction: float = 0.0) -> str:
    """A deterministic ``train``/``val``/``test`` assignment from a hash of ``key`` (stable across runs/machines).

    ``sha256(f"{seed}:{key}")`` maps the key to ``u`` uniform in [0, 1): ``test`` if ``u < test_fraction``,
    else ``val`` if ``u < test_fraction + val_fraction``, else ``train``.
    """
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2.0**64
    if u < test_fraction:
        return "test"
    if u < test_fraction + val_fraction:
        return "val"
    return "train"


def caption_window(start: float, end: float, clip_seconds: float) -> tuple[float, float]:
    """The clip window of a caption: centred on it, ``max(end - start, clip_seconds)`` long, shifted right
    (not shortened) when it would begin before 0; rounded to the millisecond."""
    length = max(end - start, clip_seconds)
    lo = max(0.0, (start + end) / 2 - length / 2)
    return round(lo, 3), round(lo + length, 3)


def _raw_captions_csv(path: Path) -> _RawCaptions:
    table = pd.read_csv(path, dtype={"video_id": str, "text": str}, keep_default_na=False)
    missing = {"video_id", "start", "end", "text"} - set(table.columns)
    if missing:
        raise ValueError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
    return {
        str(vid): (group["start"].tolist(), group["end"].tolist(), group["text"].tolist())
        for vid, group in table.groupby("video_id", sort=False)
    }


def _raw_captions_json(path: Path) -> _RawCaptions:
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected an object {{video_id: {{start, end, text}}}}")
    raw: _RawCaptions = {}
    for vid, entry in data.items():
        if not isinstance(entry, dict) or not {"start", "end", "text"} <= entry.keys():
            raise ValueError(f"{path}: video {vid!r}: expected {{start: [...], end: [...], text: [...]}}")
        raw[str(vid)] = (entry["start"], entry["end"], entry["text"])
    return raw


def _clean_captions(starts: list, ends: list, texts: list) -> tuple[list[dict], int]:
    """One video's valid captions sorted by start, and how many were dropped (unpaired or invalid)."""
    dropped = max(len(starts), len(ends), len(texts)) - min(len(starts), len(ends), len(texts))
    caps = []
    for s, e, t in zip(starts, ends, texts):
        try:
            s, e = float(s), float(e)
        except (TypeError, ValueError):
            dropped += 1
            continue
        t = "" if t is None or (isinstance(t, float) and math.isnan(t)) else squash_spaces(str(t))
        if not (math.isfinite(s) and math.isfinite(e)) or e < s or not t:
            dropped += 1
            continue
        caps.append({"start": max(s, 0.0), "end": max(e, 0.0), "text": t})
    caps.sort(key=lambda c: (c["start"], c["end"]))
    return caps, dropped


def _load_howto_captions(path: Path) -> tuple[dict[str, list[dict]], int]:
    """``video_id -> captions sorted by start`` and the number of captions dropped as invalid."""
    raw = _raw_captions_csv(path) if path.suffix.lower() == ".csv" else _raw_captions_json(path)
    captions: dict[str, list[dict]] = {}
    dropped = 0
    for vid, (starts, ends, texts) in raw.items():
        captions[vid], n = _clean_captions(starts, ends, texts)
        dropped += n
    return captions, dropped


def _check_arguments(videos_dir: Path, clip_seconds: float | None, val_fraction: float, test_fraction: float) -> None:
    if not (0 <= val_fraction <= 1 and 0 <= test_fraction <= 1 and val_fraction + test_fraction <= 1):
        raise ValueError(
            f"val_fraction and test_fraction must be in [0, 1] with sum <= 1, got {val_fraction}, {test_fraction}"
        )
    if clip_seconds is not None and not clip_seconds > 0:
        raise ValueError(f"clip_seconds must be > 0 or None, got {clip_seconds}")
    if not videos_dir.is_dir():
        raise FileNotFoundError(f"{videos_dir}: not a directory")


def _video_rows(vid: str, path: Path, caps: list[dict], split: str, clip_seconds: float | None) -> list[dict]:
    """The rows of one video: one per distinct caption window, or one for the whole video."""
    common = {"video_path": str(path), "captions": caps, "video_id": vid}
    if clip_seconds is None:
        return [clip_row(vid, "howto100m", split, **common)]
    return [
        clip_row(f"{vid}_{round(lo * 1000)}_{round(hi * 1000)}", "howto100m", split, start=lo, end=hi, **common)
        for lo, hi in sorted({caption_window(c["start"], c["end"], clip_seconds) for c in caps})
    ]


def read_howto100m(
    videos_dir: str | os.PathLike,
    captions_path: str | os.PathLike,
    clip_seconds: float | None = 3.2,
    split_seed: int = 0,
    val_fraction: float = 0.01,
    test_fraction: float = 0.0,
) -> pd.DataFrame:
    """HowTo100M: narrated videos and their ASR captions (rows, windows and splits: the module docstring).

    Layout::

        videos_dir/<video_id>.mp4 | .webm | .mkv     # searched recursively (sub-folders are fine)
        caption.json   {"<video_id>": {"start": [s, ...], "end": [e, ...], "text": ["...", ...]}, ...}
        # or captions.csv with columns video_id,start,end,text (one caption per line)

    Args:
        videos_dir: Directory of the videos.
        captions_path: ``.json`` (the public ``caption.json`` layout) or ``.csv``.
        clip_seconds: Minimum clip length in seconds, or ``None`` for one row per video.
        split_seed: Seed of the split hash.
        val_fraction: Expected fraction of videos in ``val``.
        test_fraction: Expected fraction of videos in ``test``.
    """
    videos_dir, captions_path = absolute(videos_dir), absolute(captions_path)
    _check_arguments(videos_dir, clip_seconds, val_fraction, test_fraction)
    videos = index_by_stem(walk_files(videos_dir, _VIDEO_EXTENSIONS), _VIDEO_EXTENSIONS)
    captions, dropped = _load_howto_captions(captions_path)

    rows: list[dict] = []
    skipped = 0
    for vid in sorted(captions):
        path = videos.get(vid)
        if path is None:
            skipped += 1
            continue
        split = hash_split(vid, split_seed, val_fraction, test_fraction)
        rows += _video_rows(vid, path, captions[vid], split, clip_seconds)
    uncaptioned = len(set(videos) - set(captions))
    if dropped:
        logger.info("%s: dropped %d invalid captions", captions_path, dropped)
    return manifest_from_rows(
        rows, videos_dir, skipped, str(captions_path), dropped_captions=dropped, uncaptioned=uncaptioned
    )
