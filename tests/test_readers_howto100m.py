"""Layout ``howto100m`` on tiny fake layouts (placeholder files: nothing is decoded)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from layouts import cues, howto_layout, touch

from mmv.data.manifest import load_manifest, save_manifest
from mmv.data.readers.howto100m import caption_window, hash_split, read_howto100m


def test_caption_window() -> None:
    assert caption_window(10.0, 11.0, 3.2) == (8.9, 12.1)  # centred
    assert caption_window(0.5, 1.5, 3.2) == (0.0, 3.2)  # shifted, not shortened, at the start
    assert caption_window(20.0, 30.0, 3.2) == (20.0, 30.0)  # longer captions keep their length
    assert caption_window(5.0, 5.0, 1.0) == (4.5, 5.5)


@pytest.mark.parametrize("fmt", ["json", "csv"])
def test_read_howto100m_per_caption(tmp_path: Path, fmt: str) -> None:
    videos, captions = howto_layout(tmp_path, fmt)
    df = read_howto100m(videos, captions, clip_seconds=3.2, val_fraction=0.0)

    caps_a = cues((0.5, 1.5, "first"), (10.0, 11.0, "second"), (20.0, 30.0, "long one"))
    caps_b = cues((5.0, 6.0, "dup"), (5.0, 6.0, "dup too"))
    caps_c = cues((2.0, 3.0, "in a sub-folder"))
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
    videos, captions_json = howto_layout(tmp_path, "json")
    _, captions_csv = howto_layout(tmp_path, "csv")
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
    videos, captions = howto_layout(tmp_path, "json")
    with pytest.raises(ValueError, match="val_fraction"):
        read_howto100m(videos, captions, val_fraction=0.8, test_fraction=0.3)
    with pytest.raises(ValueError, match="clip_seconds"):
        read_howto100m(videos, captions, clip_seconds=0)
    with pytest.raises(FileNotFoundError):
        read_howto100m(tmp_path / "nope", captions)
    (tmp_path / "bad.json").write_text(json.dumps({"vidA": {"start": [1.0]}}), encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad\.json: video 'vidA'"):
        read_howto100m(videos, tmp_path / "bad.json")
