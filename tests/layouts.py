"""Dataset layouts on disk, shared by the reader and prepare-CLI tests (placeholder files: readers never decode)."""

from __future__ import annotations

import json
from pathlib import Path


def touch(root: Path, *names: str) -> None:
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"\0")


ESC50_META = """\
filename,fold,target,category,esc10,src_file,take
1-100032-A-0.wav,1,0,dog,True,100032,A
1-100038-A-14.wav,1,14,chirping_birds,False,100038,A
2-100648-A-43.wav,2,43,chainsaw,False,100648,A
5-103415-A-2.wav,5,2,pig,False,103415,A
5-9032-A-0.wav,5,0,dog,True,9032,A
"""


def esc50_layout(root: Path) -> Path:
    """An ESC-50 checkout (meta CSV + audio/) with one listed file missing."""
    (root / "meta").mkdir(parents=True)
    (root / "meta" / "esc50.csv").write_text(ESC50_META, encoding="utf-8")
    touch(root / "audio", "1-100032-A-0.wav", "1-100038-A-14.wav", "2-100648-A-43.wav", "5-9032-A-0.wav")
    return root


def cues(*triples: tuple[float, float, str]) -> list[dict]:
    """Captions ``{start, end, text}`` from ``(start, end, text)`` triples."""
    return [{"start": s, "end": e, "text": t} for s, e, t in triples]


HOWTO_CAPTIONS = {
    "vidA": {"start": [10.0, 0.5, 20.0], "end": [11.0, 1.5, 30.0], "text": ["second", "first", "long one"]},
    "vid_B-2": {"start": [5.0, 5.0, 7.0, 8.0], "end": [6.0, 6.0, 6.0, 9.0], "text": ["dup", "dup too", "bad", " "]},
    "vidC": {"start": [2.0], "end": [3.0], "text": ["in a sub-folder"]},
    "gone": {"start": [1.0], "end": [2.0], "text": ["not downloaded"]},
}


def howto_layout(tmp_path: Path, fmt: str) -> tuple[Path, Path]:
    """HowTo100M videos (one in a sub-folder, one uncaptioned) and :data:`HOWTO_CAPTIONS` as JSON or CSV."""
    videos = tmp_path / "videos"
    touch(videos, "vidA.mp4", "vidA.webm", "vid_B-2.webm", "sub/vidC.mkv", "uncaptioned.mp4", "notes.txt")
    if fmt == "json":
        path = tmp_path / "caption.json"
        path.write_text(json.dumps(HOWTO_CAPTIONS), encoding="utf-8")
    else:
        path = tmp_path / "captions.csv"
        lines = ["video_id,start,end,text"]
        for vid, entry in HOWTO_CAPTIONS.items():
            lines += [f'{vid},{s},{e},"{t}"' for s, e, t in zip(entry["start"], entry["end"], entry["text"])]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return videos, path


def ucf101_layout(tmp_path: Path, flat: bool = False) -> tuple[Path, Path]:
    """UCF101 videos (nested, or flat) and split lists with CRLF ends; one listed training video is missing."""
    videos, lists = tmp_path / "UCF-101", tmp_path / "ucfTrainTestlist"
    names = [
        "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi",
        "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi",
        "HandstandPushups/v_HandStandPushups_g08_c01.avi",
        "YoYo/v_YoYo_g01_c01.avi",
    ]
    touch(videos, *[Path(n).name if flat else n for n in names])
    lists.mkdir()
    crlf = "\r\n"
    (lists / "classInd.txt").write_text(crlf.join(["1 ApplyEyeMakeup", "37 HandstandPushups", "101 YoYo", ""]))
    (lists / "trainlist01.txt").write_text(
        crlf.join(
            [
                "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1",
                "HandstandPushups/v_HandStandPushups_g08_c01.avi 37",
                "YoYo/v_YoYo_g09_c01.avi 101",  # not on disk
                "",
            ]
        )
    )
    (lists / "testlist01.txt").write_text(
        crlf.join(["ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi", "YoYo/v_YoYo_g01_c01.avi", ""])
    )
    return videos, lists
