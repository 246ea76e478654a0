"""Layouts ``folder`` (every video under a directory, with subtitle sidecars: :func:`read_video_folder`) and
``classes`` (a class-per-folder set of videos, audio or images: :func:`read_class_folders`)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pandas as pd

from mmv.data.readers.common import (
    AUDIO_EXTENSIONS,
    IMAGE_EXTENSIONS,
    VIDEO_EXTENSIONS,
    absolute,
    clip_row,
    manifest_from_rows,
    walk_files,
)
from mmv.data.readers.subtitles import SUBTITLE_EXTENSIONS, read_subtitles

logger = logging.getLogger(__name__)

_MODALITY_EXTENSIONS = {"video": VIDEO_EXTENSIONS, "audio": AUDIO_EXTENSIONS, "image": IMAGE_EXTENSIONS}
_MODALITY_COLUMN = {"video": "video_path", "audio": "audio_path", "image": "image_path"}
_SPLIT_DIRS = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}


def _relative_id(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


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
    root = absolute(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: not a directory")
    rows, bad = [], 0
    listings: dict[Path, set[str]] = {}
    for video in walk_files(root, VIDEO_EXTENSIONS):
        siblings = listings.setdefault(video.parent, set(os.listdir(video.parent)))
        sidecar = _find_sidecar(video, siblings)
        captions: list[dict] = []
        if sidecar is not None:
            try:
                captions = read_subtitles(sidecar)
            except (OSError, ValueError) as err:
                logger.warning("%s: unreadable subtitles (%s)", sidecar, err)
                bad += 1
        rows.append(clip_row(_relative_id(video, root), "folder", split, video_path=str(video), captions=captions))
    return manifest_from_rows(rows, root, 0, str(root), bad_sidecars=bad)


def _split_dirs(root: Path, split: str) -> list[tuple[Path, str]]:
    """``(folder, split)``: the split folders when every top-level folder is a split name, else ``root``."""
    top = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if top and all(name.lower() in _SPLIT_DIRS for name in top):
        return [(root / name, _SPLIT_DIRS[name.lower()]) for name in top]
    return [(root, split)]


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
    root = absolute(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: not a directory")
    column = _MODALITY_COLUMN[modality]
    rows = []
    for base, split_name in _split_dirs(root, split):
        for path in walk_files(base, _MODALITY_EXTENSIONS[modality]):
            parts = path.relative_to(base).parts
            if len(parts) < 2:
                continue
            rows.append(
                clip_row(_relative_id(path, root), "classes", split_name, **{column: str(path)}, label_class=parts[0])
            )
    return manifest_from_rows(rows, root, 0, str(root))
