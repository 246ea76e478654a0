"""Dataset readers on tiny fake layouts (placeholder files: nothing is decoded), and the SRT/WebVTT parsers."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest
from layouts import esc50_layout, touch

from mmv.data.manifest import load_manifest, save_manifest
from mmv.data.readers.audioset import read_audioset
from mmv.data.readers.esc50 import read_esc50
from mmv.data.readers.folders import read_class_folders, read_video_folder
from mmv.data.readers.howto100m import caption_window, hash_split, read_howto100m
from mmv.data.readers.subtitles import parse_srt, parse_vtt
from mmv.data.readers.toyworld import read_toyworld
from mmv.data.readers.ucf_hmdb import read_ucf_hmdb


def _cues(*triples: tuple[float, float, str]) -> list[dict]:
    return [{"start": s, "end": e, "text": t} for s, e, t in triples]


# ---------------------------------------------------------------------------------------------------
# Subtitles
# ---------------------------------------------------------------------------------------------------

SRT_CASES = {
    "basic": (
        "1\n00:00:01,000 --> 00:00:02,500\nHello there\n\n2\n00:00:03,000 --> 00:00:04,000\nGeneral Kenobi\n",
        _cues((1.0, 2.5, "Hello there"), (3.0, 4.0, "General Kenobi")),
    ),
    "bom_crlf_multiline": (
        "\ufeff1\r\n00:00:01,000 --> 00:00:02,000\r\nfirst line\r\nsecond line\r\n\r\n"
        "2\r\n01:02:03,040 --> 01:02:04,000\r\nlate\r\n",
        _cues((1.0, 2.0, "first line second line"), (3723.04, 3724.0, "late")),
    ),
    "tags_entities_coordinates": (
        "1\n00:00:00,500 --> 00:00:01,000 X1:100 X2:200 Y1:10 Y2:20\n"
        '{\\an8}<i>Whispers</i> <font color="#ff0000">&amp; red</font>\n',
        _cues((0.5, 1.0, "Whispers & red")),
    ),
    "no_numbers_dot_millis_no_hours_cr": (
        "00:00:01.250 --> 00:00:02.000\rone\r\r00:10,5 --> 00:11,75\rtwo\r",
        _cues((1.25, 2.0, "one"), (10.5, 11.75, "two")),
    ),
    "missing_blank_line_and_bad_cues": (
        "1\n00:00:01,000 --> 00:00:02,000\nkept\n2\n00:00:03,000 --> 00:00:04,000\nalso kept\n\n"
        "3\n00:00:05,000 --> 00:00:04,000\nends before it starts\n\n"
        "4\n00:00:06,000 --> 00:00:07,000\n<i></i>\n\n"
        "garbage block\nwithout timing\n\n"
        "5\n00:00:08,000 --> 00:00:09,000\n  last  \n\n\n",
        _cues((1.0, 2.0, "kept"), (3.0, 4.0, "also kept"), (8.0, 9.0, "last")),
    ),
    "empty": ("", []),
    "bom_only": ("\ufeff\r\n", []),
}


@pytest.mark.parametrize("case", list(SRT_CASES))
def test_parse_srt(case: str) -> None:
    text, expected = SRT_CASES[case]
    assert parse_srt(text) == expected


VTT_CASES = {
    "basic_no_hours": (
        "WEBVTT\n\n00:01.000 --> 00:04.000\nNever drink liquid nitrogen.\n\n"
        "00:05.000 --> 00:09.000\n- It will perforate your stomach.\n- You could die.\n",
        _cues(
            (1.0, 4.0, "Never drink liquid nitrogen."), (5.0, 9.0, "- It will perforate your stomach. - You could die.")
        ),
    ),
    "header_text_ids_settings": (
        "\ufeffWEBVTT - Some title\r\nKind: captions\r\nLanguage: en\r\n\r\n"
        "intro\r\n00:00:00.000 --> 00:00:01.500 align:start position:10% line:0\r\nHi\r\n\r\n"
        "2\r\n01:00:00.000 --> 01:00:02.000 vertical:rl\r\nan hour in\r\n",
        _cues((0.0, 1.5, "Hi"), (3600.0, 3602.0, "an hour in")),
    ),
    "note_style_region_blocks": (
        "WEBVTT\n\nSTYLE\n::cue { color: lime }\n\nREGION\nid:fred width:40%\n\n"
        "NOTE This is a comment\nover two lines\n\n00:02.000 --> 00:03.000 region:fred\nafter notes\n\nNOTE end\n",
        _cues((2.0, 3.0, "after notes")),
    ),
    "tags_voices_inline_timestamps": (
        "WEBVTT\n\n00:00:01.000 --> 00:00:03.000\n<v Roger Bingham>We are in New York City</v>\n\n"
        "00:00:03.000 --> 00:00:05.000\nso<00:00:03.500><c> we</c><00:00:04.000><c.colorE5E5E5> go</c> &lt;3\n\n"
        "00:00:05.000 --> 00:00:06.000\n<b><u>bold</u></b> &nbsp;end\n",
        _cues(
            (1.0, 3.0, "We are in New York City"),
            (3.0, 5.0, "so we go <3"),
            (5.0, 6.0, "bold end"),
        ),
    ),
    "header_only": ("WEBVTT\n", []),
}


@pytest.mark.parametrize("case", list(VTT_CASES))
def test_parse_vtt(case: str) -> None:
    text, expected = VTT_CASES[case]
    assert parse_vtt(text) == expected


# ---------------------------------------------------------------------------------------------------
# ToyWorld
# ---------------------------------------------------------------------------------------------------


def test_read_toyworld(tmp_path: Path) -> None:
    root = tmp_path / "toyworld"
    touch(root, "clips/000000.mp4", "clips/000001.mp4")
    df = pd.DataFrame(
        {
            "clip_id": ["toyworld/000000", "toyworld/000001", "toyworld/000002"],
            "dataset": ["toyworld"] * 3,
            "video_path": [f"clips/00000{i}.mp4" for i in range(3)],
            "start": [0.0] * 3,
            "end": [2.0] * 3,
            "captions": [[{"start": 0.0, "end": 2.0, "text": "a red cube spins"}], [], []],
            "split": ["train", "val", "test"],
            "label_shape": ["cube", "sphere", "cone"],
        }
    )
    df.attrs["root"] = str(root)  # what the relative paths above are relative to
    save_manifest(df, root / "manifest.parquet")
    got = read_toyworld(root)
    assert got["clip_id"].tolist() == ["toyworld/000000", "toyworld/000001"]
    assert got["video_path"].tolist() == [str(root / "clips/000000.mp4"), str(root / "clips/000001.mp4")]
    assert got["label_shape"].tolist() == ["cube", "sphere"]
    assert got["has_text"].tolist() == [True, False]
    assert got.attrs["skipped"] == 1 and got.attrs["root"] == str(root)
    assert read_toyworld(root / "manifest.parquet")["clip_id"].tolist() == got["clip_id"].tolist()


# ---------------------------------------------------------------------------------------------------
# HowTo100M
# ---------------------------------------------------------------------------------------------------

HOWTO_CAPTIONS = {
    "vidA": {"start": [10.0, 0.5, 20.0], "end": [11.0, 1.5, 30.0], "text": ["second", "first", "long one"]},
    "vid_B-2": {"start": [5.0, 5.0, 7.0, 8.0], "end": [6.0, 6.0, 6.0, 9.0], "text": ["dup", "dup too", "bad", " "]},
    "vidC": {"start": [2.0], "end": [3.0], "text": ["in a sub-folder"]},
    "gone": {"start": [1.0], "end": [2.0], "text": ["not downloaded"]},
}


def _howto_layout(tmp_path: Path, fmt: str) -> tuple[Path, Path]:
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


def test_caption_window() -> None:
    assert caption_window(10.0, 11.0, 3.2) == (8.9, 12.1)  # centred
    assert caption_window(0.5, 1.5, 3.2) == (0.0, 3.2)  # shifted, not shortened, at the start
    assert caption_window(20.0, 30.0, 3.2) == (20.0, 30.0)  # longer captions keep their length
    assert caption_window(5.0, 5.0, 1.0) == (4.5, 5.5)


@pytest.mark.parametrize("fmt", ["json", "csv"])
def test_read_howto100m_per_caption(tmp_path: Path, fmt: str) -> None:
    videos, captions = _howto_layout(tmp_path, fmt)
    df = read_howto100m(videos, captions, clip_seconds=3.2, val_fraction=0.0)

    caps_a = _cues((0.5, 1.5, "first"), (10.0, 11.0, "second"), (20.0, 30.0, "long one"))
    caps_b = _cues((5.0, 6.0, "dup"), (5.0, 6.0, "dup too"))
    caps_c = _cues((2.0, 3.0, "in a sub-folder"))
    assert df["clip_id"].tolist() == [
        "vidA_0_3200",
        "vidA_8900_12100",
        "vidA_20000_30000",
        "vidC_900_4100",
        "vid_B-2_3900_7100",  # two captions, one window: one clip
    ]
    assert df["video_path"].tolist() == [str(videos / "vidA.mp4")] * 3 + [
        str(videos / "sub" / "vidC.mkv"),
        str(videos / "vid_B-2.webm"),
    ]
    assert list(zip(df["start"], df["end"])) == [(0.0, 3.2), (8.9, 12.1), (20.0, 30.0), (0.9, 4.1), (3.9, 7.1)]
    assert df["captions"].tolist() == [caps_a, caps_a, caps_a, caps_c, caps_b]
    assert df["video_id"].tolist() == ["vidA"] * 3 + ["vidC", "vid_B-2"]
    assert set(df["split"]) == {"train"} and set(df["dataset"]) == {"howto100m"}
    assert df["audio_path"].isna().all() and df["has_text"].all()
    assert df.attrs["skipped"] == 1  # "gone"
    assert df.attrs["dropped_captions"] == 2  # end < start, blank text
    assert df.attrs["uncaptioned"] == 1


def test_read_howto100m_per_video_and_formats_agree(tmp_path: Path) -> None:
    videos, captions_json = _howto_layout(tmp_path, "json")
    _, captions_csv = _howto_layout(tmp_path, "csv")
    df = read_howto100m(videos, captions_json, clip_seconds=None)
    assert df["clip_id"].tolist() == ["vidA", "vidC", "vid_B-2"]
    assert df["start"].tolist() == [0.0, 0.0, 0.0] and df["end"].isna().all()
    assert [len(c) for c in df["captions"]] == [3, 1, 2]
    pd.testing.assert_frame_equal(df, read_howto100m(videos, captions_csv, clip_seconds=None))

    # the stored manifest gives the same table back
    save_manifest(df, tmp_path / "howto.parquet")
    pd.testing.assert_frame_equal(load_manifest(tmp_path / "howto.parquet"), df)


def test_howto100m_split_by_video_never_straddles(tmp_path: Path) -> None:
    videos = tmp_path / "videos"
    captions = {}
    for i in range(60):
        vid = f"v{i:03d}"
        touch(videos, f"{vid}.mp4")
        captions[vid] = {"start": [0.0, 10.0, 20.0], "end": [1.0, 11.0, 21.0], "text": ["a", "b", "c"]}
    (tmp_path / "caption.json").write_text(json.dumps(captions), encoding="utf-8")

    df = read_howto100m(videos, tmp_path / "caption.json", val_fraction=0.3, test_fraction=0.3)
    assert len(df) == 180
    per_video = df.groupby("video_id")["split"].nunique()
    assert (per_video == 1).all()
    counts = df.drop_duplicates("video_id")["split"].value_counts()
    assert set(counts.index) == {"train", "val", "test"}
    for vid, split in df.drop_duplicates("video_id")[["video_id", "split"]].itertuples(index=False):
        assert split == hash_split(vid, 0, 0.3, 0.3)
    # deterministic, and the seed matters
    again = read_howto100m(videos, tmp_path / "caption.json", val_fraction=0.3, test_fraction=0.3)
    assert again["split"].tolist() == df["split"].tolist()
    other = read_howto100m(videos, tmp_path / "caption.json", split_seed=1, val_fraction=0.3, test_fraction=0.3)
    assert other["split"].tolist() != df["split"].tolist()


def test_hash_split_fractions() -> None:
    splits = [hash_split(f"id{i}", 0, 0.2, 0.1) for i in range(5000)]
    assert abs(splits.count("val") / 5000 - 0.2) < 0.03 and abs(splits.count("test") / 5000 - 0.1) < 0.03
    assert {hash_split(f"id{i}") for i in range(100)} == {"train"}


def test_read_howto100m_errors(tmp_path: Path) -> None:
    videos, captions = _howto_layout(tmp_path, "json")
    with pytest.raises(ValueError, match="val_fraction"):
        read_howto100m(videos, captions, val_fraction=0.8, test_fraction=0.3)
    with pytest.raises(ValueError, match="clip_seconds"):
        read_howto100m(videos, captions, clip_seconds=0)
    with pytest.raises(FileNotFoundError):
        read_howto100m(tmp_path / "nope", captions)
    (tmp_path / "bad.json").write_text(json.dumps({"vidA": {"start": [1.0]}}), encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad\.json: video 'vidA'"):
        read_howto100m(videos, tmp_path / "bad.json")


# ---------------------------------------------------------------------------------------------------
# AudioSet
# ---------------------------------------------------------------------------------------------------

SEGMENTS = """\
# Segments csv created Sun Mar  5 10:54:31 2017
# num_ytids=6, num_segs=6, num_unique_labels=3, num_positive_labels=8
# YTID, start_seconds, end_seconds, positive_labels
--PJHxphWEs, 30.000, 40.000, "/m/09x0r,/t/dd00088"
-0RWZT-miFs, 420.000, 430.000, "/m/03v3yw"
-1LrH01Ei1w, 0.500, 10.500, "/m/04rlf"
Y_abc, 10.000, 20.000, "/m/09x0r,/m/unknown"
bare_id, 60.000, 70.000, "/m/04rlf"
missing, 0.000, 10.000, "/m/04rlf"
--PJHxphWEs, 30.000, 40.000, "/m/09x0r"
"""

CLASS_LABELS = """\
index,mid,display_name
0,/m/09x0r,"Speech"
1,/t/dd00088,"Male speech, man speaking"
2,/m/03v3yw,"Keys jangling"
3,/m/04rlf,"Music"
"""


def _audioset_layout(tmp_path: Path) -> tuple[Path, Path, Path]:
    clips = tmp_path / "clips"
    touch(
        clips,
        "--PJHxphWEs_30000.flac",  # <YTID>_<start_ms>
        "--PJHxphWEs_30000.mp4",  # same stem, audio preferred
        "eval/-0RWZT-miFs_420.000.wav",  # <YTID>_<start as written>, in a sub-folder
        "Y-1LrH01Ei1w_0.500_10.500.wav",  # Y<YTID>_<start>_<end>
        "Y_abc_10.mp4",  # <YTID>_<integer start>, a YTID that itself starts with Y
        "bare_id.mp4",  # <YTID>
        "unrelated_0.wav",
    )
    segments = tmp_path / "eval_segments.csv"
    segments.write_text(SEGMENTS, encoding="utf-8")
    labels = tmp_path / "class_labels_indices.csv"
    labels.write_text(CLASS_LABELS, encoding="utf-8")
    return segments, clips, labels


def test_read_audioset(tmp_path: Path) -> None:
    segments, clips, labels = _audioset_layout(tmp_path)
    df = read_audioset(segments, clips, labels)
    assert df["clip_id"].tolist() == [
        "--PJHxphWEs_30000",
        "-0RWZT-miFs_420000",
        "-1LrH01Ei1w_500",
        "Y_abc_10000",
        "bare_id_60000",
    ]
    assert df["audio_path"].tolist() == [
        str(clips / "--PJHxphWEs_30000.flac"),
        str(clips / "eval" / "-0RWZT-miFs_420.000.wav"),
        str(clips / "Y-1LrH01Ei1w_0.500_10.500.wav"),
        None,
        None,
    ]
    assert df["video_path"].tolist() == [None, None, None, str(clips / "Y_abc_10.mp4"), str(clips / "bare_id.mp4")]
    assert df["label_class"].tolist() == [
        "Speech;Male speech, man speaking",
        "Keys jangling",
        "Music",
        "Speech;/m/unknown",
        "Music",
    ]
    assert df["label_mid"].tolist() == [
        "/m/09x0r;/t/dd00088",
        "/m/03v3yw",
        "/m/04rlf",
        "/m/09x0r;/m/unknown",
        "/m/04rlf",
    ]
    assert df["video_id"].tolist() == ["--PJHxphWEs", "-0RWZT-miFs", "-1LrH01Ei1w", "Y_abc", "bare_id"]
    assert df["start"].tolist() == [0.0] * 5 and df["end"].isna().all()  # files are the cut segments
    assert set(df["split"]) == {"test"}  # an *eval* CSV
    assert not df["has_text"].any()
    assert df.attrs["skipped"] == 1 and df.attrs["duplicates"] == 1


def test_read_audioset_options(tmp_path: Path) -> None:
    segments, clips, _ = _audioset_layout(tmp_path)
    df = read_audioset(segments, clips, split="train", full_videos=True)
    assert set(df["split"]) == {"train"}
    assert df["label_class"].tolist()[0] == "/m/09x0r;/t/dd00088"  # no names: the ids
    # only the bare <YTID> file is a whole video: it gets the segment's window
    assert list(zip(df["start"], df["end"].fillna(-1))) == [(0.0, -1), (0.0, -1), (0.0, -1), (0.0, -1), (60.0, 70.0)]
    renamed = tmp_path / "balanced_train_segments.csv"
    renamed.write_text(SEGMENTS, encoding="utf-8")
    assert set(read_audioset(renamed, clips)["split"]) == {"train"}


# ---------------------------------------------------------------------------------------------------
# Folders
# ---------------------------------------------------------------------------------------------------


def test_read_video_folder(tmp_path: Path) -> None:
    root = tmp_path / "mine"
    touch(root, "cooking/egg.mp4", "talk.webm", "plain.mkv", "clip.avi", ".hidden.mp4", ".cache/x.mp4", "readme.txt")
    (root / "cooking" / "egg.srt").write_bytes(
        b"\xef\xbb\xbf1\r\n00:00:02,000 --> 00:00:03,000\r\n<i>crack</i>\r\n\r\n2\r\n00:00:00,000 --> 00:00:01,000\r\n"
        b"heat the pan\r\n"
    )
    (root / "talk.en.vtt").write_text("WEBVTT\n\n00:01.000 --> 00:02.000\nhello\n", encoding="utf-8")
    (root / "talk.fr.vtt").write_text("WEBVTT\n\n00:01.000 --> 00:02.000\nbonjour\n", encoding="utf-8")
    (root / "clip.srt").write_bytes("1\n00:00:01,000 --> 00:00:02,000\ncaf\xe9\n".encode("cp1252"))

    df = read_video_folder(root, split="val")
    assert df["clip_id"].tolist() == ["clip.avi", "plain.mkv", "talk.webm", "cooking/egg.mp4"]
    assert df["video_path"].tolist() == [str(root / p) for p in df["clip_id"]]
    assert df["captions"].tolist() == [
        _cues((1.0, 2.0, "café")),
        [],
        _cues((1.0, 2.0, "hello")),  # the first tagged sidecar by name
        _cues((0.0, 1.0, "heat the pan"), (2.0, 3.0, "crack")),  # sorted by start
    ]
    assert df["has_text"].tolist() == [True, False, True, True]
    assert set(df["split"]) == {"val"} and set(df["dataset"]) == {"folder"}
    assert df["start"].tolist() == [0.0] * 4 and df["end"].isna().all()
    assert df.attrs["skipped"] == 0


def test_read_class_folders_flat(tmp_path: Path) -> None:
    root = tmp_path / "sounds"
    touch(root, "dog/a.wav", "dog/deeper/b.flac", "cat/c.mp3", "cat/notes.txt", "loose.wav")
    df = read_class_folders(root, modality="audio")
    assert df["clip_id"].tolist() == ["cat/c.mp3", "dog/a.wav", "dog/deeper/b.flac"]
    assert df["audio_path"].tolist() == [str(root / p) for p in df["clip_id"]]
    assert df["video_path"].isna().all() and df["image_path"].isna().all()
    assert df["label_class"].tolist() == ["cat", "dog", "dog"]
    assert set(df["split"]) == {"train"} and set(df["dataset"]) == {"classes"}


def test_read_class_folders_with_splits(tmp_path: Path) -> None:
    root = tmp_path / "images"
    touch(root, "train/cat/1.jpg", "train/dog/2.PNG", "validation/cat/3.jpeg", "test/dog/4.webp", "train/x.jpg")
    df = read_class_folders(root, modality="image")
    assert df["clip_id"].tolist() == ["test/dog/4.webp", "train/cat/1.jpg", "train/dog/2.PNG", "validation/cat/3.jpeg"]
    assert df["split"].tolist() == ["test", "train", "train", "val"]
    assert df["label_class"].tolist() == ["dog", "cat", "dog", "cat"]
    assert df["image_path"].tolist() == [str(root / p) for p in df["clip_id"]]
    with pytest.raises(ValueError, match="modality"):
        read_class_folders(root, modality="text")


# ---------------------------------------------------------------------------------------------------
# ESC-50, UCF101, HMDB51
# ---------------------------------------------------------------------------------------------------


def test_read_esc50(tmp_path: Path) -> None:
    root = esc50_layout(tmp_path / "ESC-50-master")
    df = read_esc50(root)
    assert df["clip_id"].tolist() == ["1-100032-A-0", "1-100038-A-14", "2-100648-A-43", "5-9032-A-0"]
    assert df["audio_path"].tolist() == [str(root / "audio" / f"{c}.wav") for c in df["clip_id"]]
    assert df["label_class"].tolist() == ["dog", "chirping_birds", "chainsaw", "dog"]
    assert df["label_target"].tolist() == [0, 14, 43, 0]
    assert df["fold"].tolist() == [1, 1, 2, 5]
    assert df["esc10"].tolist() == [True, False, False, True]
    assert set(df["split"]) == {"train"} and df["video_path"].isna().all()
    assert df.attrs["skipped"] == 1
    assert read_esc50(root, test_fold=1)["split"].tolist() == ["test", "test", "train", "train"]


def ucf101_layout(tmp_path: Path, flat: bool = False) -> tuple[Path, Path]:
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


@pytest.mark.parametrize("flat", [False, True])
def test_read_ucf101(tmp_path: Path, flat: bool) -> None:
    videos, lists = ucf101_layout(tmp_path, flat)
    df = read_ucf_hmdb(videos, lists, dataset="ucf101", split=1)
    assert df["clip_id"].tolist() == [
        "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi",
        "HandstandPushups/v_HandStandPushups_g08_c01.avi",
        "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi",
        "YoYo/v_YoYo_g01_c01.avi",
    ]
    assert df["video_path"].tolist() == [str(videos / (Path(c).name if flat else c)) for c in df["clip_id"]]
    assert df["split"].tolist() == ["train", "train", "test", "test"]
    assert df["label_class"].tolist() == ["ApplyEyeMakeup", "HandstandPushups", "ApplyEyeMakeup", "YoYo"]
    assert df["label_target"].tolist() == [0, 36, 0, 100]
    assert set(df["dataset"]) == {"ucf101"} and df.attrs["skipped"] == 1
    with pytest.raises(FileNotFoundError, match="trainlist02"):
        read_ucf_hmdb(videos, lists, dataset="ucf101", split=2)


def test_read_hmdb51(tmp_path: Path) -> None:
    videos, splits = tmp_path / "hmdb51", tmp_path / "testTrainMulti_7030_splits"
    touch(
        videos, "brush_hair/a_brush_hair_0.avi", "brush_hair/b_brush_hair_1.avi", "brush_hair/c.avi", "cartwheel/d.avi"
    )
    splits.mkdir()
    (splits / "brush_hair_test_split1.txt").write_text("a_brush_hair_0.avi 1 \nb_brush_hair_1.avi 2 \nc.avi 0 \n")
    (splits / "cartwheel_test_split1.txt").write_text("d.avi 2\r\ne_missing.avi 1\r\n")
    (splits / "cartwheel_test_split2.txt").write_text("d.avi 1\n")
    df = read_ucf_hmdb(videos, splits, dataset="hmdb51", split=1)
    assert df["clip_id"].tolist() == [
        "brush_hair/a_brush_hair_0.avi",
        "brush_hair/b_brush_hair_1.avi",
        "cartwheel/d.avi",
    ]
    assert df["video_path"].tolist() == [str(videos / c) for c in df["clip_id"]]
    assert df["split"].tolist() == ["train", "test", "test"]
    assert df["label_class"].tolist() == ["brush_hair", "brush_hair", "cartwheel"]
    assert df["label_target"].tolist() == [0, 0, 1]
    assert df.attrs["skipped"] == 1
    assert read_ucf_hmdb(videos, splits, dataset="hmdb51", split=2)["split"].tolist() == ["train"]
    (splits / "cartwheel_test_split3.txt").write_text("d.avi train\n")
    with pytest.raises(ValueError, match=r"cartwheel_test_split3\.txt: line 1"):
        read_ucf_hmdb(videos, splits, dataset="hmdb51", split=3)


def test_readers_round_trip_through_files(tmp_path: Path) -> None:
    """Every reader's output survives save/load unchanged (paths made relative and back)."""
    root = esc50_layout(tmp_path / "esc")
    for df in (read_esc50(root, test_fold=5), read_ucf_hmdb(*ucf101_layout(tmp_path), dataset="ucf101")):
        for name in ("m.parquet", "m.csv"):
            save_manifest(df, tmp_path / name)
            loaded = load_manifest(tmp_path / name)
            pd.testing.assert_frame_equal(loaded, df)
            assert all(math.isnan(e) for e in loaded["end"])


def test_readers_return_absolute_paths_from_relative_arguments(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    esc50_layout(tmp_path / "esc")
    touch(tmp_path, "mine/a.mp4", "cls/dog/b.wav")
    videos, captions = _howto_layout(tmp_path, "json")
    frames = [
        read_esc50("esc"),
        read_video_folder("mine"),
        read_class_folders("cls", modality="audio"),
        read_howto100m("videos", "caption.json"),
        read_ucf_hmdb(*[p.relative_to(tmp_path) for p in ucf101_layout(tmp_path)]),
    ]
    for df in frames:
        paths = [p for col in ("video_path", "audio_path") for p in df[col] if p is not None]
        assert paths and all(Path(p).is_absolute() and Path(p).is_file() for p in paths)
        assert Path(df.attrs["root"]).is_absolute()
