"""Layout ``audioset``: 10-second YouTube segments with multi-label sound classes; no text (:func:`read_audioset`).

A cut segment gets the window ``[0, end of file]``; a whole video (``full_videos=True`` and a ``<YTID>`` file)
gets ``[start_seconds, end_seconds]``. Audio files fill ``audio_path``, video files ``video_path``.
``label_class`` is the ``;``-joined display names (the label ids when ``labels_csv`` is not given or does not
know one), ``label_mid`` the ``;``-joined label ids. ``clip_id`` is ``<YTID>_<start_ms>`` (a repeated one is
dropped, counted in ``attrs["duplicates"]``); extra column ``video_id``. Segments without a file are skipped
and counted.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import pandas as pd

from mmv.data.readers.common import (
    AUDIO_EXTENSIONS,
    VIDEO_EXTENSIONS,
    absolute,
    clip_row,
    index_by_stem,
    manifest_from_rows,
    read_text,
    walk_files,
)

_Segment = tuple[str, str, str, list[str]]  # YTID, start and end as written, label ids


def _read_class_labels(path: Path) -> dict[str, str]:
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None or not {"mid", "display_name"} <= set(reader.fieldnames):
            raise ValueError(f"{path}: expected the columns index,mid,display_name")
        return {row["mid"].strip(): row["display_name"].strip() for row in reader}


def _parse_audioset_segments(path: Path) -> list[_Segment]:
    lines = [line for line in read_text(path).splitlines() if line.strip() and not line.lstrip().startswith("#")]
    segments = []
    for n, row in enumerate(csv.reader(io.StringIO("\n".join(lines)), skipinitialspace=True), start=1):
        if len(row) < 3:
            raise ValueError(f"{path}: data line {n}: expected YTID, start_seconds, end_seconds, positive_labels")
        labels = ",".join(row[3:])
        segments.append(
            (row[0].strip(), row[1].strip(), row[2].strip(), [x.strip() for x in labels.split(",") if x.strip()])
        )
    return segments


def _time_spellings(text: str) -> dict[str, str]:
    """How a segment time may appear in a file name, by style: ms, as written, integer or short seconds."""
    value = float(text)
    spellings = {"ms": str(round(value * 1000)), "raw": text}
    if value.is_integer():
        spellings["int"] = str(int(value))
    spellings.update({"f1": f"{value:.1f}", "f3": f"{value:.3f}", "g": f"{value:g}"})
    return spellings


def _audioset_stems(ytid: str, start_text: str, end_text: str) -> list[str]:
    """File stems a segment may have been saved under, most specific first."""
    starts, ends = _time_spellings(start_text), _time_spellings(end_text)
    stems = []
    for prefix in ("", "Y"):
        stems += [f"{prefix}{ytid}_{s}" for s in starts.values()]
        stems += [f"{prefix}{ytid}_{starts[k]}_{ends[k]}" for k in starts if k in ends]
    return list(dict.fromkeys(stems))


def _find_clip(files: dict[str, Path], ytid: str, start_text: str, end_text: str) -> tuple[Path | None, bool]:
    """The segment's file (a cut one first, else the ``<YTID>`` file) and whether it is the ``<YTID>`` file."""
    cut = next((files[c] for c in _audioset_stems(ytid, start_text, end_text) if c in files), None)
    if cut is not None:
        return cut, False
    whole = files.get(ytid)
    return whole, whole is not None


def _media_column(path: Path) -> str:
    return "audio_path" if path.suffix.lower() in AUDIO_EXTENSIONS else "video_path"


def read_audioset(
    segments_csv: str | os.PathLike,
    clips_dir: str | os.PathLike,
    labels_csv: str | os.PathLike | None = None,
    split: str | None = None,
    full_videos: bool = False,
) -> pd.DataFrame:
    """AudioSet segments (rows, windows and labels: the module docstring).

    Layout::

        balanced_train_segments.csv      # '#' comment lines, then: YTID, start_seconds, end_seconds, positive_labels
            --PJHxphWEs, 30.000, 40.000, "/m/09x0r,/t/dd00088"
        class_labels_indices.csv         # optional: index,mid,display_name
        clips_dir/                       # searched recursively; audio (.wav/.flac/...) or video (.mp4/...)
            --PJHxphWEs_30000.flac       # <YTID>_<start_ms>: the segment, already cut
            --PJHxphWEs_30.000.wav       # <YTID>_<start> as written in the CSV (also 30, 30.0)
            Y--PJHxphWEs_30.000_40.000.wav  # <YTID>_<start>_<end>, with or without a leading 'Y'
            --PJHxphWEs.mp4              # <YTID>: the segment already cut, or with full_videos=True the
                                         # whole YouTube video

    Args:
        segments_csv: The segments CSV.
        clips_dir: Directory of the downloaded clips.
        labels_csv: ``class_labels_indices.csv`` for display names.
        split: Split of every row; by default ``test`` when the CSV's name contains ``eval``, else ``train``.
        full_videos: Whether ``<YTID>.<ext>`` files are whole videos rather than cut segments.
    """
    segments_csv, clips_dir = absolute(segments_csv), absolute(clips_dir)
    if split is None:
        split = "test" if "eval" in segments_csv.stem.lower() else "train"
    names = _read_class_labels(Path(labels_csv)) if labels_csv is not None else {}
    extensions = AUDIO_EXTENSIONS + VIDEO_EXTENSIONS
    files = index_by_stem(walk_files(clips_dir, extensions), extensions)

    rows: list[dict] = []
    seen: set[str] = set()
    skipped = duplicates = 0
    for ytid, start_text, end_text, mids in _parse_audioset_segments(segments_csv):
        try:
            start, end = float(start_text), float(end_text)
        except ValueError:
            raise ValueError(f"{segments_csv}: segment {ytid!r}: bad times {start_text!r}, {end_text!r}") from None
        clip_id = f"{ytid}_{round(start * 1000)}"
        if clip_id in seen:
            duplicates += 1
            continue
        seen.add(clip_id)
        path, whole = _find_clip(files, ytid, start_text, end_text)
        if path is None:
            skipped += 1
            continue
        window = {"start": start, "end": end} if (whole and full_videos) else {}
        labels = {"label_class": ";".join(names.get(m, m) for m in mids), "label_mid": ";".join(mids)}
        media = {_media_column(path): str(path)}
        rows.append(clip_row(clip_id, "audioset", split, **media, **window, **labels, video_id=ytid))
    return manifest_from_rows(rows, clips_dir, skipped, str(segments_csv), duplicates=duplicates)
