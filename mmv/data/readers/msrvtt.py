"""Layout ``msrvtt``: MSR-VTT text-video retrieval pairs, one row per caption line (:func:`read_msrvtt`)."""

from __future__ import annotations

import os

import pandas as pd

from mmv.data.readers.common import absolute, clip_row, manifest_from_rows, read_csv_table, videos_by_stem


def read_msrvtt(csv_path: str | os.PathLike, videos_dir: str | os.PathLike, split: str = "test") -> pd.DataFrame:
    """MSR-VTT text-video retrieval pairs: one row per caption line.

    Layout::

        MSRVTT_JSFUSION_test.csv     # key,vid_key,video_id,sentence   (the 1k-A split; one caption per video)
            ret0,msr7579,video7579,a girl wearing red top and black trouser is putting a sweater on a dog
        videos_dir/video7579.mp4     # searched recursively, any video extension

    A CSV with only ``video_id,sentence`` (MIL-NCE's ``msrvtt_test.csv``) is accepted too, as is one listing a
    video several times (the full test set's 20 captions each): every line is a row, and
    :func:`mmv.eval.zero_shot.media_groups` later treats the rows of one video as one candidate.

    ``clip_id`` is ``key`` (else ``video_id``, suffixed ``#<n>`` when a video repeats); ``captions`` is one
    ``{start: 0, end: 0, text: sentence}``: the sentence describes the whole video, whose length is unknown
    without decoding, and with one caption per row its time never matters. The window is the whole file
    (``start`` 0, ``end`` null); extra column ``video_id``. Lines whose video is missing are skipped and counted.
    """
    csv_path, videos_dir = absolute(csv_path), absolute(videos_dir)
    table = read_csv_table(csv_path, {"video_id", "sentence"}, {"caption": "sentence", "text": "sentence"})
    videos = videos_by_stem(videos_dir)
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
        rows.append(clip_row(clip_id, "msrvtt", split, video_path=str(path), captions=[caption], video_id=vid))
    return manifest_from_rows(rows, videos_dir, skipped, str(csv_path))
