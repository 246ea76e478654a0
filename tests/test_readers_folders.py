"""Layouts ``folder`` (videos with subtitle sidecars) and ``classes`` (class-per-folder sets)."""

from __future__ import annotations

from pathlib import Path

import pytest
from layouts import cues, touch

from mmv.data.readers.folders import read_class_folders, read_video_folder


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
        cues((1.0, 2.0, "café")),
        [],
        cues((1.0, 2.0, "hello")),  # the first tagged sidecar by name
        cues((0.0, 1.0, "heat the pan"), (2.0, 3.0, "crack")),  # sorted by start
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
