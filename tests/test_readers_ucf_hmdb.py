"""Layouts ``ucf101`` and ``hmdb51``: official split lists, class targets, nested or flat videos."""

from __future__ import annotations

from pathlib import Path

import pytest
from layouts import touch, ucf101_layout

from mmv.data.readers.ucf_hmdb import read_ucf_hmdb


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
