"""Readers of public dataset layouts: each returns a clip manifest (``docs/formats.md``, :mod:`mmv.data.manifest`).

No reader decodes media: they list directories, read index files and check that files exist, so they run in
seconds even on large sets. Paths in the result are absolute. Entries whose media file is missing are dropped
and counted in ``df.attrs["skipped"]`` (and logged); ``df.attrs["root"]`` is the directory the paths came from.

Also here: small SRT and WebVTT parsers (:func:`parse_srt`, :func:`parse_vtt`) for subtitle sidecars.
"""

from __future__ import annotations

import csv
import hashlib
import html
import io
import json
import logging
import math
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from mmv.data.manifest import (
    MANIFEST_COLUMNS,
    PATH_COLUMNS,
    load_manifest,
    normalize_manifest,
    validate_manifest,
)

logger = logging.getLogger(__name__)

VIDEO_EXTENSIONS: tuple[str, ...] = (".mp4", ".webm", ".mkv", ".avi", ".mov", ".m4v")
AUDIO_EXTENSIONS: tuple[str, ...] = (".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a")
IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
SUBTITLE_EXTENSIONS: tuple[str, ...] = (".srt", ".vtt")
_MODALITY_EXTENSIONS = {"video": VIDEO_EXTENSIONS, "audio": AUDIO_EXTENSIONS, "image": IMAGE_EXTENSIONS}
_MODALITY_COLUMN = {"video": "video_path", "audio": "audio_path", "image": "image_path"}
_SPLIT_DIRS = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}


# ---------------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------------


def _frame(rows: list[dict], root: str | os.PathLike, skipped: int, where: str, **attrs: Any) -> pd.DataFrame:
    """Rows (dicts with schema keys, ``label_*`` and extras) -> a validated, canonical manifest."""
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


def _row(clip_id: str, dataset: str, split: str, **fields: Any) -> dict:
    row = {"clip_id": clip_id, "dataset": dataset, "split": split, "start": 0.0, "end": None, "captions": []}
    row.update(fields)
    return row


def _abs(path: str | os.PathLike) -> Path:
    """An absolute path (symbolic links kept, unlike ``Path.resolve``)."""
    return Path(os.path.abspath(os.fspath(path)))


def _walk(root: Path, extensions: Iterable[str]) -> list[Path]:
    """Files under ``root`` (recursive, sorted, hidden files and directories skipped) with one of ``extensions``."""
    extensions = tuple(e.lower() for e in extensions)
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if not name.startswith(".") and name.lower().endswith(extensions):
                found.append(Path(dirpath) / name)
    return found


def _index_by_stem(paths: Iterable[Path], preference: tuple[str, ...]) -> dict[str, Path]:
    """``stem -> path``; when several files share a stem, the extension earliest in ``preference`` wins."""
    rank = {ext: i for i, ext in enumerate(preference)}
    index: dict[str, Path] = {}
    for p in paths:
        old = index.get(p.stem)
        if old is None or rank.get(p.suffix.lower(), len(rank)) < rank.get(old.suffix.lower(), len(rank)):
            index[p.stem] = p
    return index


def _media_column(path: Path) -> str:
    return "audio_path" if path.suffix.lower() in AUDIO_EXTENSIONS else "video_path"


def _relative_id(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def _read_text(path: Path) -> str:
    """A text file as UTF-8 (BOM dropped), falling back to cp1252 then Latin-1 for legacy subtitle files."""
    data = path.read_bytes()
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    return data.decode("latin-1")


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


# ---------------------------------------------------------------------------------------------------
# Subtitles
# ---------------------------------------------------------------------------------------------------

_TIMESTAMP = r"(?:(\d+):)?(\d{1,2}):(\d{1,2})(?:[,.](\d+))?"
_TIMING_LINE = re.compile(rf"^\s*{_TIMESTAMP}\s*-->\s*{_TIMESTAMP}(?:\s.*)?$")
_TAG = re.compile(r"<[^>]*>|\{\\[^}]*\}")
_SPACE = re.compile(r"\s+")


def _seconds(h: str | None, m: str, s: str, frac: str | None) -> float:
    value = int(h or 0) * 3600 + int(m) * 60 + int(s)
    if frac:
        value += int(frac) / 10 ** len(frac)
    return round(value, 6)


def _clean_cue_text(lines: list[str]) -> str:
    text = " ".join(_TAG.sub("", line) for line in lines)
    return _SPACE.sub(" ", html.unescape(text)).strip()


def _parse_cues(text: str) -> list[dict]:
    """Shared SRT/WebVTT cue parser.

    Blocks are separated by blank lines. Inside a block each timing line (``a --> b [settings]``) opens a cue
    whose text is the following lines up to the next timing line or the end of the block; a purely numeric
    line right before a timing line is a cue number, dropped. Lines before a block's first timing line (cue
    numbers, VTT identifiers) and blocks without timing lines (``WEBVTT`` header, ``NOTE``, ``STYLE``,
    ``REGION``) are ignored. Cues whose end is before their start, or whose text is empty once tags are
    stripped, are dropped.
    """
    text = text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    cues: list[dict] = []
    block: list[str] = []

    def flush() -> None:
        current: tuple[float, float] | None = None
        body: list[str] = []
        for line in block:
            match = _TIMING_LINE.match(line)
            if match is None:
                if current is not None:
                    body.append(line)
                continue
            if current is not None:
                if body and body[-1].strip().isdigit():  # the next cue's number, no blank line before it
                    body.pop()
                _emit(current, body)
            g = match.groups()
            current = (_seconds(*g[:4]), _seconds(*g[4:]))
            body = []
        if current is not None:
            _emit(current, body)
        block.clear()

    def _emit(times: tuple[float, float], body: list[str]) -> None:
        start, end = times
        cue_text = _clean_cue_text(body)
        if cue_text and end >= start:
            cues.append({"start": start, "end": end, "text": cue_text})

    for line in text.split("\n"):
        if line.strip():
            block.append(line)
        elif block:
            flush()
    if block:
        flush()
    return cues


def parse_srt(text: str) -> list[dict]:
    """Parses SubRip subtitles into ``[{"start", "end", "text"}]`` (seconds, file order).

    Handles a UTF-8 BOM, CRLF or CR line ends, multi-line cues (joined with a space), missing cue numbers,
    ``.`` or ``,`` before the milliseconds, optional hours, coordinates after the timing, and strips styling
    (``<i>``, ``<font ...>``, ``{\\an8}``) and HTML entities. Malformed blocks are skipped, never fatal.
    """
    return _parse_cues(text)


def parse_vtt(text: str) -> list[dict]:
    """Parses WebVTT subtitles into ``[{"start", "end", "text"}]`` (seconds, file order).

    Handles the ``WEBVTT`` header, a BOM, CRLF, cue identifiers, cue settings after the timing
    (``align:start position:10%``), optional hours (``mm:ss.ttt``), ``NOTE``/``STYLE``/``REGION`` blocks,
    multi-line cues, and strips tags (``<i>``, ``<c.color>``, ``<v Speaker>``, inline ``<00:00:01.000>``)
    and HTML entities (``&amp;``).
    """
    return _parse_cues(text)


def read_subtitles(path: str | os.PathLike) -> list[dict]:
    """Captions from a ``.srt`` or ``.vtt`` file, sorted by start time."""
    path = Path(path)
    text = _read_text(path)
    cues = parse_vtt(text) if path.suffix.lower() == ".vtt" else parse_srt(text)
    return sorted(cues, key=lambda c: (c["start"], c["end"]))


# ---------------------------------------------------------------------------------------------------
# Readers
# ---------------------------------------------------------------------------------------------------


def _drop_missing(df: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    present = [all(p is None or os.path.exists(p) for p in paths) for paths in zip(*(df[c] for c in PATH_COLUMNS))]
    keep = pd.Series(present, index=df.index, dtype=bool)
    return df[keep].reset_index(drop=True), int((~keep).sum())


def read_toyworld(root: str | os.PathLike) -> pd.DataFrame:
    """The synthetic ToyWorld set: ``root/manifest.parquet``, already in the manifest schema.

    Layout::

        root/
          manifest.parquet      # paths relative to root, e.g. clips/000123.mp4
          clips/000123.mp4 ...

    ``root`` may also be the manifest file itself. Rows whose files are missing are dropped and counted.
    """
    root = _abs(root)
    path = root if root.suffix.lower() in (".parquet", ".csv") else root / "manifest.parquet"
    df = load_manifest(path)
    attrs = dict(df.attrs)
    df, skipped = _drop_missing(df)
    df.attrs.update(attrs)
    df.attrs["skipped"] = skipped
    if skipped:
        logger.warning("%s: skipped %d entries whose media file is missing", path, skipped)
    return df


def _load_howto_captions(path: Path) -> tuple[dict[str, list[dict]], int]:
    """``video_id -> captions sorted by start`` and the number of captions dropped as invalid."""
    raw: dict[str, tuple[list, list, list]] = {}
    if path.suffix.lower() == ".csv":
        table = pd.read_csv(path, dtype={"video_id": str, "text": str}, keep_default_na=False)
        missing = {"video_id", "start", "end", "text"} - set(table.columns)
        if missing:
            raise ValueError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
        for vid, group in table.groupby("video_id", sort=False):
            raw[str(vid)] = (group["start"].tolist(), group["end"].tolist(), group["text"].tolist())
    else:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected an object {{video_id: {{start, end, text}}}}")
        for vid, entry in data.items():
            if not isinstance(entry, dict) or not {"start", "end", "text"} <= entry.keys():
                raise ValueError(f"{path}: video {vid!r}: expected {{start: [...], end: [...], text: [...]}}")
            raw[str(vid)] = (entry["start"], entry["end"], entry["text"])

    captions: dict[str, list[dict]] = {}
    dropped = 0
    for vid, (starts, ends, texts) in raw.items():
        n = max(len(starts), len(ends), len(texts))
        dropped += n - min(len(starts), len(ends), len(texts))
        caps = []
        for s, e, t in zip(starts, ends, texts):
            try:
                s, e = float(s), float(e)
            except (TypeError, ValueError):
                dropped += 1
                continue
            t = "" if t is None or (isinstance(t, float) and math.isnan(t)) else _SPACE.sub(" ", str(t)).strip()
            if not (math.isfinite(s) and math.isfinite(e)) or e < s or not t:
                dropped += 1
                continue
            caps.append({"start": max(s, 0.0), "end": max(e, 0.0), "text": t})
        caps.sort(key=lambda c: (c["start"], c["end"]))
        captions[vid] = caps
    return captions, dropped


def caption_window(start: float, end: float, clip_seconds: float) -> tuple[float, float]:
    """The clip window of a caption: centred on it, ``max(end - start, clip_seconds)`` long, shifted right
    (not shortened) when it would begin before 0; rounded to the millisecond."""
    length = max(end - start, clip_seconds)
    lo = max(0.0, (start + end) / 2 - length / 2)
    return round(lo, 3), round(lo + length, 3)


def read_howto100m(
    videos_dir: str | os.PathLike,
    captions_path: str | os.PathLike,
    clip_seconds: float | None = 3.2,
    split_seed: int = 0,
    val_fraction: float = 0.01,
    test_fraction: float = 0.0,
) -> pd.DataFrame:
    """HowTo100M: narrated videos and their ASR captions.

    Layout::

        videos_dir/<video_id>.mp4 | .webm | .mkv     # searched recursively (sub-folders are fine)
        caption.json   {"<video_id>": {"start": [s, ...], "end": [e, ...], "text": ["...", ...]}, ...}
        # or captions.csv with columns video_id,start,end,text (one caption per line)

    One row per caption-anchored clip: the window is centred on the caption, ``max(caption length,
    clip_seconds)`` long, shifted to start at 0 if it would begin before (:func:`caption_window`); identical
    windows of one video are merged. The video's duration is unknown here (nothing is decoded), so a window may
    run past the end: the sampler clamps it. With ``clip_seconds=None``, one row per video (``start`` 0, ``end``
    null); this is the form to use at full scale, since every row carries **all** captions of its video (the
    sampler picks the K nearest with :func:`~mmv.data.manifest.captions_in_window`), which in the per-caption
    form repeats them once per clip in the stored file.

    Captions are sorted by start; those with empty text, non-numeric times or ``end < start`` are dropped
    (counted in ``attrs["dropped_captions"]``). ``clip_id`` is ``<video_id>_<start_ms>_<end_ms>`` (or
    ``<video_id>`` per video), plus an extra ``video_id`` column. The split is :func:`hash_split` of the
    video id, so clips of one video never straddle splits. Videos listed in the captions but absent from
    ``videos_dir`` are skipped and counted in ``attrs["skipped"]``; videos without captions are ignored
    (``attrs["uncaptioned"]``).

    Args:
        videos_dir: Directory of the videos.
        captions_path: ``.json`` (the public ``caption.json`` layout) or ``.csv``.
        clip_seconds: Minimum clip length in seconds, or ``None`` for one row per video.
        split_seed: Seed of the split hash.
        val_fraction: Expected fraction of videos in ``val``.
        test_fraction: Expected fraction of videos in ``test``.
    """
    videos_dir, captions_path = _abs(videos_dir), _abs(captions_path)
    if not (0 <= val_fraction <= 1 and 0 <= test_fraction <= 1 and val_fraction + test_fraction <= 1):
        raise ValueError(
            f"val_fraction and test_fraction must be in [0, 1] with sum <= 1, got {val_fraction}, {test_fraction}"
        )
    if clip_seconds is not None and not clip_seconds > 0:
        raise ValueError(f"clip_seconds must be > 0 or None, got {clip_seconds}")
    if not videos_dir.is_dir():
        raise FileNotFoundError(f"{videos_dir}: not a directory")
    videos = _index_by_stem(_walk(videos_dir, (".mp4", ".webm", ".mkv")), (".mp4", ".webm", ".mkv"))
    captions, dropped = _load_howto_captions(captions_path)

    rows: list[dict] = []
    skipped = 0
    for vid in sorted(captions):
        path = videos.get(vid)
        if path is None:
            skipped += 1
            continue
        caps = captions[vid]
        split = hash_split(vid, split_seed, val_fraction, test_fraction)
        common = {"video_path": str(path), "captions": caps, "video_id": vid}
        if clip_seconds is None:
            rows.append(_row(vid, "howto100m", split, **common))
            continue
        for lo, hi in sorted({caption_window(c["start"], c["end"], clip_seconds) for c in caps}):
            rows.append(
                _row(f"{vid}_{round(lo * 1000)}_{round(hi * 1000)}", "howto100m", split, start=lo, end=hi, **common)
            )
    uncaptioned = len(set(videos) - set(captions))
    if dropped:
        logger.info("%s: dropped %d invalid captions", captions_path, dropped)
    return _frame(rows, videos_dir, skipped, str(captions_path), dropped_captions=dropped, uncaptioned=uncaptioned)


def _read_class_labels(path: Path) -> dict[str, str]:
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None or not {"mid", "display_name"} <= set(reader.fieldnames):
            raise ValueError(f"{path}: expected the columns index,mid,display_name")
        return {row["mid"].strip(): row["display_name"].strip() for row in reader}


def _parse_audioset_segments(path: Path) -> list[tuple[str, str, str, list[str]]]:
    lines = [line for line in _read_text(path).splitlines() if line.strip() and not line.lstrip().startswith("#")]
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


def read_audioset(
    segments_csv: str | os.PathLike,
    clips_dir: str | os.PathLike,
    labels_csv: str | os.PathLike | None = None,
    split: str | None = None,
    full_videos: bool = False,
) -> pd.DataFrame:
    """AudioSet: 10-second YouTube segments with multi-label sound classes; no text.

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

    A cut segment gets the window ``[0, end of file]``; a whole video (``full_videos=True`` and a ``<YTID>``
    file) gets ``[start_seconds, end_seconds]``. Audio files fill ``audio_path``, video files ``video_path``.
    ``label_class`` is the ``;``-joined display names (the label ids when ``labels_csv`` is not given or does
    not know one), ``label_mid`` the ``;``-joined label ids. ``clip_id`` is ``<YTID>_<start_ms>`` (a repeated
    one is dropped); extra column ``video_id``. Segments without a file are skipped and counted.

    Args:
        segments_csv: The segments CSV.
        clips_dir: Directory of the downloaded clips.
        labels_csv: ``class_labels_indices.csv`` for display names.
        split: Split of every row; by default ``test`` when the CSV's name contains ``eval``, else ``train``.
        full_videos: Whether ``<YTID>.<ext>`` files are whole videos rather than cut segments.
    """
    segments_csv, clips_dir = _abs(segments_csv), _abs(clips_dir)
    if split is None:
        split = "test" if "eval" in segments_csv.stem.lower() else "train"
    names = _read_class_labels(Path(labels_csv)) if labels_csv is not None else {}
    files = _index_by_stem(_walk(clips_dir, AUDIO_EXTENSIONS + VIDEO_EXTENSIONS), AUDIO_EXTENSIONS + VIDEO_EXTENSIONS)

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
        cut = next((files[c] for c in _audioset_stems(ytid, start_text, end_text) if c in files), None)
        whole = files.get(ytid) if cut is None else None
        if cut is None and whole is None:
            skipped += 1
            continue
        path = cut or whole
        window = {"start": start, "end": end} if (whole is not None and full_videos) else {}
        rows.append(
            _row(
                clip_id,
                "audioset",
                split,
                **{_media_column(path): str(path)},
                **window,
                label_class=";".join(names.get(m, m) for m in mids),
                label_mid=";".join(mids),
                video_id=ytid,
            )
        )
    return _frame(rows, clips_dir, skipped, str(segments_csv), duplicates=duplicates)


def _find_sidecar(video: Path, siblings: set[str]) -> Path | None:
    """``<stem>.srt``/``.vtt`` beside ``video``, else ``<stem>.<tag>.srt``/``.vtt`` (first by name)."""
    for ext in SUBTITLE_EXTENSIONS:
        if video.stem + ext in siblings:
            return video.with_name(video.stem + ext)
    tagged = sorted(
        name
        for name in siblings
        if name.startswith(video.stem + ".")
        and name.lower().endswith(SUBTITLE_EXTENSIONS)
        and name.count(".") == video.stem.count(".") + 2
    )
    return video.with_name(tagged[0]) if tagged else None


def read_video_folder(root: str | os.PathLike, split: str = "train") -> pd.DataFrame:
    """Every video under a directory (recursive), one row per whole video, with optional subtitle sidecars.

    Layout::

        root/
          cooking/egg.mp4
          cooking/egg.srt          # optional sidecar: same stem, .srt or .vtt
          talk.webm
          talk.en.vtt              # or <stem>.<language>.srt/.vtt (yt-dlp's naming)

    Videos are ``.mp4 .webm .mkv .avi .mov .m4v``; hidden files and directories are skipped. ``clip_id`` is
    the path relative to ``root`` (``cooking/egg.mp4``); ``captions`` are the sidecar's cues sorted by start
    (an unreadable sidecar is logged and counted in ``attrs["bad_sidecars"]``).
    """
    root = _abs(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: not a directory")
    rows, bad = [], 0
    listings: dict[Path, set[str]] = {}
    for video in _walk(root, VIDEO_EXTENSIONS):
        siblings = listings.setdefault(video.parent, set(os.listdir(video.parent)))
        sidecar = _find_sidecar(video, siblings)
        captions: list[dict] = []
        if sidecar is not None:
            try:
                captions = read_subtitles(sidecar)
            except (OSError, ValueError) as err:
                logger.warning("%s: unreadable subtitles (%s)", sidecar, err)
                bad += 1
        rows.append(_row(_relative_id(video, root), "folder", split, video_path=str(video), captions=captions))
    return _frame(rows, root, 0, str(root), bad_sidecars=bad)


def read_class_folders(root: str | os.PathLike, modality: str = "video", split: str = "train") -> pd.DataFrame:
    """A class-per-folder set (video, audio or images), optionally already split.

    Layout::

        root/<class>/<file>                 # every file in split `split`
        root/<class>/<sub>/.../<file>       # files deeper in a class folder belong to that class
        root/train/<class>/<file>           # when every top-level folder is a split name:
        root/val/<class>/<file>             #   train, val (or valid, validation) and test
        root/test/<class>/<file>

    Files are chosen by extension: video ``.mp4 .webm .mkv .avi .mov .m4v``, audio ``.wav .flac .mp3 .ogg .opus
    .m4a``, image ``.jpg .jpeg .png .bmp .webp``; they fill ``video_path``, ``audio_path`` or ``image_path``.
    ``label_class`` is the class folder's name, ``clip_id`` the path relative to ``root``. Files directly in
    ``root`` (or in a split folder) have no class and are ignored.
    """
    if modality not in _MODALITY_EXTENSIONS:
        raise ValueError(f"modality must be one of {', '.join(_MODALITY_EXTENSIONS)}, got {modality!r}")
    root = _abs(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: not a directory")
    top = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if top and all(name.lower() in _SPLIT_DIRS for name in top):
        split_dirs = [(root / name, _SPLIT_DIRS[name.lower()]) for name in top]
    else:
        split_dirs = [(root, split)]
    column = _MODALITY_COLUMN[modality]
    rows = []
    for base, split_name in split_dirs:
        for path in _walk(base, _MODALITY_EXTENSIONS[modality]):
            parts = path.relative_to(base).parts
            if len(parts) < 2:
                continue
            rows.append(
                _row(_relative_id(path, root), "classes", split_name, **{column: str(path)}, label_class=parts[0])
            )
    return _frame(rows, root, 0, str(root))


def read_esc50(root: str | os.PathLike, test_fold: int | None = None) -> pd.DataFrame:
    """ESC-50: 2000 five-second environmental sound clips in 50 classes and 5 folds.

    Layout (the GitHub repository ``karolpiczak/ESC-50``)::

        root/meta/esc50.csv    # filename,fold,target,category,esc10,src_file,take
        root/audio/1-100032-A-0.wav ...

    ``audio_path`` = ``root/audio/<filename>``, ``label_class`` = category, ``label_target`` = target (0-49),
    ``fold`` = fold (1-5), extra column ``esc10`` (bool: part of the ESC-10 subset). ``clip_id`` is the file
    stem. The benchmark is 5-fold cross-validation over ``fold``: every row is ``train`` unless ``test_fold``
    is given, which puts that fold in ``test``. Rows whose file is missing are skipped and counted.
    """
    root = _abs(root)
    meta = root / "meta" / "esc50.csv"
    table = pd.read_csv(meta, dtype={"filename": str, "category": str}, keep_default_na=False)
    missing = {"filename", "fold", "target", "category"} - set(table.columns)
    if missing:
        raise ValueError(f"{meta}: missing column(s) {', '.join(sorted(missing))}")
    rows, skipped = [], 0
    for rec in table.to_dict("records"):
        path = root / "audio" / rec["filename"]
        if not path.is_file():
            skipped += 1
            continue
        fold = int(rec["fold"])
        esc10 = rec.get("esc10", False)
        rows.append(
            _row(
                Path(rec["filename"]).stem,
                "esc50",
                "test" if test_fold is not None and fold == int(test_fold) else "train",
                audio_path=str(path),
                fold=fold,
                label_class=rec["category"],
                label_target=int(rec["target"]),
                esc10=str(esc10).strip().lower() in ("true", "1"),
            )
        )
    return _frame(rows, root, skipped, str(meta))


def _locate(videos_root: Path, entry: str) -> Path | None:
    """``videos_root/<class>/<file>``, or ``videos_root/<file>`` for a flattened download."""
    for candidate in (videos_root / entry, videos_root / Path(entry).name):
        if candidate.is_file():
            return candidate
    return None


def _ucf101_entries(splits_dir: Path, split: int) -> list[tuple[str, str, str]]:
    """``(entry, class, split)`` from ``trainlist0N.txt`` and ``testlist0N.txt``."""
    entries = []
    for kind in ("train", "test"):
        path = splits_dir / f"{kind}list{split:02d}.txt"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: UCF101 split list not found")
        for line in _read_text(path).splitlines():
            if line.strip():
                entry = line.split()[0].replace("\\", "/")
                entries.append((entry, entry.split("/")[0], kind))
    return entries


def _hmdb51_entries(splits_dir: Path, split: int) -> list[tuple[str, str, str]]:
    """``(entry, class, split)`` from ``<class>_test_split<N>.txt`` (1 train, 2 test, 0 unused: dropped)."""
    pattern = re.compile(rf"^(.+)_test_split{split}\.txt$")
    files = sorted(p for p in splits_dir.iterdir() if pattern.match(p.name))
    if not files:
        raise FileNotFoundError(f"{splits_dir}: no HMDB51 files <class>_test_split{split}.txt")
    entries = []
    for path in files:
        cls = pattern.match(path.name).group(1)
        for n, line in enumerate(_read_text(path).splitlines(), start=1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 2 or fields[1] not in ("0", "1", "2"):
                raise ValueError(f"{path}: line {n}: expected '<file> <0|1|2>', got {line.strip()!r}")
            if fields[1] != "0":
                entries.append((f"{cls}/{fields[0]}", cls, "train" if fields[1] == "1" else "test"))
    return entries


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
    videos_root, splits_dir = _abs(videos_root), _abs(splits_dir)
    entries = _ucf101_entries(splits_dir, split) if dataset == "ucf101" else _hmdb51_entries(splits_dir, split)

    classes = sorted({cls for _, cls, _ in entries})
    targets = {cls.lower(): i for i, cls in enumerate(classes)}
    class_ind = splits_dir / "classInd.txt"
    if dataset == "ucf101" and class_ind.is_file():
        targets = {}
        for line in _read_text(class_ind).splitlines():
            fields = line.split()
            if len(fields) == 2:
                targets[fields[1].lower()] = int(fields[0]) - 1

    rows, skipped = [], 0
    for entry, cls, kind in entries:
        path = _locate(videos_root, entry)
        if path is None:
            skipped += 1
            continue
        if cls.lower() not in targets:
            raise ValueError(f"{class_ind}: class {cls!r} (from {entry!r}) is not listed")
        rows.append(
            _row(entry, dataset, kind, video_path=str(path), label_class=cls, label_target=targets[cls.lower()])
        )
    return _frame(rows, videos_root, skipped, str(splits_dir))
