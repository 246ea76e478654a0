"""Layout ``youcook2``: MIL-NCE's validation CSV and the official annotations JSON."""

from __future__ import annotations

import json
from pathlib import Path

from layouts import touch

from mmv.data.readers.youcook2 import read_youcook2
from mmv.eval.zero_shot import media_groups

YOUCOOK = """\
end,start,task,text,video_id
60,47,226,pick the ends off the verdalago,xHr8X2Wpmno
89,67,226,combine lemon juice sumac garlic salt and oil in a bowl,xHr8X2Wpmno
20,30,226,ends before it starts,xHr8X2Wpmno
26,16,105,combine salt butter milk and hot sauce in a bowl,V53XmPeyjIU
36,33,105,a video that is missing,missingvideo
"""


def test_read_youcook2_csv(tmp_path: Path) -> None:
    (tmp_path / "validation_youcook.csv").write_text(YOUCOOK)
    touch(tmp_path / "videos", "validation/226/xHr8X2Wpmno.mp4", "validation/105/V53XmPeyjIU.mkv")
    df = read_youcook2(tmp_path / "validation_youcook.csv", tmp_path / "videos")
    assert df["clip_id"].tolist() == ["xHr8X2Wpmno_47000_60000", "xHr8X2Wpmno_67000_89000", "V53XmPeyjIU_16000_26000"]
    assert (df.attrs["dropped"], df.attrs["skipped"]) == (1, 1)
    assert df["start"].tolist() == [47.0, 67.0, 16.0] and df["end"].tolist() == [60.0, 89.0, 26.0]
    assert df["captions"][0] == [{"start": 47.0, "end": 60.0, "text": "pick the ends off the verdalago"}]
    assert df["task"].tolist() == ["226", "226", "105"] and df["video_path"][2].endswith("V53XmPeyjIU.mkv")
    assert media_groups(df).tolist() == [0, 1, 2]  # two segments of one video are two clips


def test_read_youcook2_annotations_json(tmp_path: Path) -> None:
    database = {
        "abc": {"subset": "validation", "recipe_type": "113", "annotations": [{"segment": [5, 9], "sentence": "cut"}]},
        "def": {"subset": "training", "recipe_type": "113", "annotations": [{"segment": [1, 2], "sentence": "x"}]},
    }
    (tmp_path / "ann.json").write_text(json.dumps({"database": database}))
    touch(tmp_path, "abc.mp4", "def.mp4")
    df = read_youcook2(tmp_path / "ann.json", tmp_path)
    assert df["clip_id"].tolist() == ["abc_5000_9000"] and df["captions"][0][0]["text"] == "cut"
