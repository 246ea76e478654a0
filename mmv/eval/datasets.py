"""Evaluation datasets as clip manifests, and the image items the evaluation embeds.

Readers (each returns a clip manifest, ``docs/formats.md``; nothing is decoded, missing media are skipped and
counted in ``df.attrs["skipped"]``), by ``kind`` of :func:`read_eval_dataset`:

* ``manifest``: any clip manifest (``.parquet`` / ``.csv``), with a ``label_*`` column for probes or captions
  for retrieval (:func:`mmv.data.manifest.load_manifest`).
* ``esc50``: ``root/meta/esc50.csv`` + ``root/audio/*.wav``, folds 1-5 (:func:`mmv.data.readers.read_esc50`).
* ``classes``: ``root/<class>/<file>`` or ``root/<split>/<class>/<file>``, videos, audio or images
  (:func:`mmv.data.readers.read_class_folders`).
* ``ucf101`` / ``hmdb51``: ``videos/<class>/<file>.avi`` + ``classInd.txt``, ``trainlist0N.txt``,
  ``testlist0N.txt`` / ``<class>_test_splitN.txt`` (``1`` train, ``2`` test, ``0`` unused)
  (:func:`mmv.data.readers.read_ucf_hmdb`).
* ``msrvtt``: ``MSRVTT_JSFUSION_test.csv`` (``key,vid_key,video_id,sentence``) + ``videos/<video_id>.mp4``
  (:func:`read_msrvtt`).
* ``youcook2``: ``validation_youcook.csv`` (``video_id,start,end,text[,task]``) or
  ``youcookii_annotations_trainval.json`` + ``videos/**/<video_id>.mp4`` (:func:`read_youcook2`).

The ESC-50, class-folder and UCF101/HMDB51 readers already live in :mod:`mmv.data.readers` (the data layer);
this module adds the two caption sets of zero-shot retrieval and :func:`read_eval_dataset`, one entry point
over all of them. It also holds the datasets that turn still images into evaluation items:
:class:`ImageDataset` (a manifest's ``image_path`` files) and :class:`FramesAsImages` (the middle frame of each
window of a :class:`~mmv.data.dataset.ClipDataset`), both yielding ``image`` uint8 ``[S, S, 3]`` items for
:func:`mmv.eval.retrieval.embed_manifest`.
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from mmv.data.manifest import load_manifest
from mmv.data.readers import (
    VIDEO_EXTENSIONS,
    _abs,
    _frame,
    _index_by_stem,
    _row,
    _walk,
    read_class_folders,
    read_esc50,
    read_ucf_hmdb,
)

logger = logging.getLogger(__name__)

#: The dataset kinds :func:`read_eval_dataset` reads.
KINDS = ("manifest", "esc50", "classes", "ucf101", "hmdb51", "msrvtt", "youcook2")


def _videos_by_stem(videos_dir: Path) -> dict[str, Path]:
    if not videos_dir.is_dir():
        raise FileNotFoundError(f"{videos_dir}: not a directory of videos")
    return _index_by_stem(_walk(videos_dir, VIDEO_EXTENSIONS), VIDEO_EXTENSIONS)


def _read_table(path: Path, required: set[str], aliases: dict[str, str]) -> pd.DataFrame:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: caption file not found")
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    table.columns = [c.strip() for c in table.columns]
    table = table.rename(columns={a: c for a, c in aliases.items() if a in table.columns and c not in table.columns})
    missing = required - set(table.columns)
    if missing:
        raise ValueError(f"{path}: missing column(s) {', '.join(sorted(missing))} (has {', '.join(table.columns)})")
    return table


def read_msrvtt(csv_path: str | os.PathLike, videos_dir: str | os.PathLike, split: str = "test") -> pd.DataFrame:
    """MSR-VTT text-video retrieval pairs: one row per caption line.

    Layout::

        MSRVTT_JSFUSION_test.csv     # key,vid_key,video_id,sentence   (the 1k-A split; one caption per video)
            ret0,msr7579,video7579,a girl wearing red top and black trouser is putting a sweater on a dog
        videos_dir/video7579.mp4     # searched recursively, any video extension

    A CSV with only ``video_id,sentence`` (MIL-NCE's ``msrvtt_test.csv``) is accepted too, as is one listing a
    video several times (the full test set's 20 captions each): every line is a row, and
    :func:`mmv.eval.retrieval.media_groups` later treats the rows of one video as one candidate.

    ``clip_id`` is ``key`` (else ``video_id``, suffixed ``#<n>`` when a video repeats); ``captions`` is one
    ``{start: 0, end: 0, text: sentence}``: the sentence describes the whole video, whose length is unknown
    without decoding, and with one caption per row its time never matters. The window is the whole file
    (``start`` 0, ``end`` null); extra column ``video_id``. Lines whose video is missing are skipped and counted.
    """
    csv_path, videos_dir = _abs(csv_path), _abs(videos_dir)
    table = _read_table(csv_path, {"video_id", "sentence"}, {"caption": "sentence", "text": "sentence"})
    videos = _videos_by_stem(videos_dir)
    keys = table["key"].str.strip().tolist() if "key" in table.columns else None
    if keys is not None and len(set(keys)) != len(keys):
        keys = None
    ids = [v.strip() for v in table["video_id"]]
    repeats = pd.Series(ids).value_counts()
    rows, skipped, seen = [], 0, {}
    for i, (vid, sentence) in enumerate(zip(ids, table["sentence"])):
        n = seen[vid] = seen.get(vid, -1) + 1
        path = videos.get(vid)
        if path is None:
            skipped += 1
            continue
        clip_id = keys[i] if keys is not None else (vid if repeats[vid] == 1 else f"{vid}#{n}")
        caption = {"start": 0.0, "end": 0.0, "text": sentence.strip()}
        rows.append(_row(clip_id, "msrvtt", split, video_path=str(path), captions=[caption], video_id=vid))
    return _frame(rows, videos_dir, skipped, str(csv_path))


def _youcook_segments(path: Path) -> list[dict[str, Any]]:
    """``[{video_id, start, end, text, task}]`` from the CSV or the official annotations JSON."""
    if path.suffix.lower() == ".json":
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
                    {
                        "video_id": vid,
                        "start": start,
                        "end": end,
                        "text": ann["sentence"],
                        "task": entry.get("recipe_type"),
                    }
                )
        return out
    table = _read_table(path, {"video_id", "start", "end", "text"}, {"sentence": "text", "caption": "text"})
    task = table["task"] if "task" in table.columns else [None] * len(table)
    return [
        {"video_id": v, "start": s, "end": e, "text": t, "task": k}
        for v, s, e, t, k in zip(table["video_id"], table["start"], table["end"], table["text"], task)
    ]


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
    csv_path, videos_dir = _abs(csv_path), _abs(videos_dir)
    segments = _youcook_segments(csv_path)
    videos = _videos_by_stem(videos_dir)
    rows, skipped, dropped, seen = [], 0, 0, {}
    for seg in segments:
        vid = str(seg["video_id"]).strip()
        try:
            start, end = float(seg["start"]), float(seg["end"])
        except (TypeError, ValueError):
            dropped += 1
            continue
        if not (math.isfinite(start) and math.isfinite(end)) or start < 0 or end <= start:
            dropped += 1
            continue
        path = videos.get(vid)
        if path is None:
            skipped += 1
            continue
        clip_id = f"{vid}_{round(start * 1000)}_{round(end * 1000)}"
        n = seen[clip_id] = seen.get(clip_id, -1) + 1
        task = seg.get("task")
        rows.append(
            _row(
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
    return _frame(rows, videos_dir, skipped, str(csv_path), dropped=dropped)


def read_eval_dataset(
    kind: str,
    root: str | os.PathLike,
    *,
    annotations: str | os.PathLike | None = None,
    split_index: int = 1,
    modality: str = "video",
) -> pd.DataFrame:
    """Any evaluation layout as a manifest (the table in the module docstring).

    Args:
        kind: one of :data:`KINDS`.
        root: the manifest file (``manifest``), the dataset's root folder (``esc50``, ``classes``), or its
            videos folder (``ucf101``, ``hmdb51``, ``msrvtt``, ``youcook2``).
        annotations: UCF101/HMDB51: the split-files folder; MSR-VTT/YouCook2: the caption CSV (or JSON).
        split_index: the UCF101/HMDB51 official split, 1, 2 or 3.
        modality: ``classes``: which files a class folder holds (``video``, ``audio`` or ``image``).
    """
    if kind not in KINDS:
        raise ValueError(f"unknown dataset kind {kind!r}; choose from {', '.join(KINDS)}")
    if kind in ("ucf101", "hmdb51", "msrvtt", "youcook2") and annotations is None:
        what = "split-files folder" if kind in ("ucf101", "hmdb51") else "caption CSV"
        raise ValueError(f"{kind}: give the {what} (annotations=...) besides the videos folder")
    if kind == "manifest":
        return load_manifest(root)
    if kind == "esc50":
        return read_esc50(root)
    if kind == "classes":
        return read_class_folders(root, modality=modality, split="train")
    if kind in ("ucf101", "hmdb51"):
        return read_ucf_hmdb(root, annotations, dataset=kind, split=split_index)
    if kind == "msrvtt":
        return read_msrvtt(annotations, root)
    return read_youcook2(annotations, root)


# ---------------------------------------------------------------------------------------------------
# Images as evaluation items
# ---------------------------------------------------------------------------------------------------


def read_image(path: str | os.PathLike, size: int) -> torch.Tensor:
    """An image file as uint8 ``[size, size, 3]`` RGB: short side resized to ``size``, centre crop (the
    evaluation clip transform, :class:`mmv.data.transforms.EvalVideoTransform`, on a one-frame clip).

    Raises:
        ValueError: the file is empty or not an image OpenCV decodes.
    """
    import cv2

    from mmv.data.transforms import EvalVideoTransform

    data = np.fromfile(os.fspath(path), dtype=np.uint8)
    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if bgr is None:
        raise ValueError(f"{path}: not a decodable image")
    rgb = torch.from_numpy(np.ascontiguousarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)))
    return EvalVideoTransform(size)(rgb[None])[0]


class ImageDataset(Dataset):
    """The ``image_path`` files of a manifest as evaluation items (one window each).

    Item ``i`` is row ``i``: ``{"image": uint8 [S, S, 3], "clip_id", "index": i, "window": 0, "labels": {},
    "has_audio": False}``, or ``None`` (dropped by :func:`mmv.data.collate.collate_clips`, logged) when the row
    has no image or the file cannot be decoded.

    Args:
        manifest: a loaded manifest (paths absolute).
        size: S.
    """

    num_windows = 1

    def __init__(self, manifest: pd.DataFrame, size: int) -> None:
        self.paths = manifest["image_path"].tolist() if "image_path" in manifest.columns else [None] * len(manifest)
        self.clip_ids = manifest["clip_id"].astype(str).tolist()
        self.size = int(size)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> dict[str, Any] | None:
        path = self.paths[i]
        if path is None or (isinstance(path, float) and math.isnan(path)):
            return None
        try:
            image = read_image(path, self.size)
        except (OSError, ValueError) as err:
            logger.warning("skipping image of clip %s: %s", self.clip_ids[i], err)
            return None
        return {"image": image, "clip_id": self.clip_ids[i], "index": i, "window": 0, "labels": {}, "has_audio": False}


class FramesAsImages(Dataset):
    """A video :class:`~mmv.data.dataset.ClipDataset` whose items carry the middle frame of their window as
    ``image`` (uint8 ``[S, S, 3]``): still images from a manifest of videos, one per evaluation window.

    Args:
        clips: the dataset (with a video config; ``'eval'`` mode for linearly spaced windows).
        keep_video: keep the ``video`` key too (one decode for both), else drop it.
    """

    def __init__(self, clips: Dataset, keep_video: bool = False) -> None:
        self.clips = clips
        self.keep_video = keep_video
        self.num_windows = getattr(clips, "num_windows", 1)

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, i: int) -> dict[str, Any] | None:
        sample = self.clips[i]
        if sample is None:
            return None
        video = sample["video"] if self.keep_video else sample.pop("video")
        sample["image"] = video[video.shape[0] // 2]
        return sample
