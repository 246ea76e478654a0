"""Layout ``msrvtt``: the JSFusion CSV and the full test set's one row per caption."""

from __future__ import annotations

from pathlib import Path

import pytest
from layouts import touch

from mmv.data.readers.msrvtt import read_msrvtt
from mmv.eval.zero_shot import media_groups

JSFUSION = """\
key,vid_key,video_id,sentence
ret0,msr7579,video7579,a girl wearing red top and black trouser is putting a sweater on a dog
ret1,msr7725,video7725,young people sit around the edges of a room clapping
ret2,msr9999,video9999,a video that was never downloaded
"""


def test_read_msrvtt_jsfusion(tmp_path: Path) -> None:
    (tmp_path / "MSRVTT_JSFUSION_test.csv").write_text(JSFUSION)
    touch(tmp_path / "videos", "video7579.mp4", "sub/video7725.webm")
    df = read_msrvtt(tmp_path / "MSRVTT_JSFUSION_test.csv", tmp_path / "videos")
    assert df["clip_id"].tolist() == ["ret0", "ret1"] and df.attrs["skipped"] == 1
    assert df["video_id"].tolist() == ["video7579", "video7725"] and set(df["split"]) == {"test"}
    assert df["video_path"].tolist() == [str(tmp_path / "videos" / p) for p in ("video7579.mp4", "sub/video7725.webm")]
    assert df["captions"][1] == [
        {"start": 0.0, "end": 0.0, "text": "young people sit around the edges of a room clapping"}
    ]
    assert df["start"].tolist() == [0.0, 0.0] and df["end"].isna().all() and df["has_text"].all()
    assert media_groups(df).tolist() == [0, 1]


def test_read_msrvtt_full_test_set_lists_a_video_per_caption(tmp_path: Path) -> None:
    # MIL-NCE's layout (video_id,sentence): a video with several captions is several rows of one media group.
    (tmp_path / "test.csv").write_text("video_id,sentence\nvideo1,a cat\nvideo1,a small cat\nvideo2,a dog\n")
    touch(tmp_path, "video1.mp4", "video2.mp4")
    df = read_msrvtt(tmp_path / "test.csv", tmp_path)
    assert df["clip_id"].tolist() == ["video1#0", "video1#1", "video2"]
    assert media_groups(df).tolist() == [0, 0, 1]
    with pytest.raises(ValueError, match="missing column"):
        (tmp_path / "bad.csv").write_text("video,text\nvideo1,a cat\n")
        read_msrvtt(tmp_path / "bad.csv", tmp_path)
