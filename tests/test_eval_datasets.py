"""Evaluation dataset readers (MSR-VTT, YouCook2, the registry of layouts) on tiny fake layouts, and
the image items (files and video frames) the evaluation embeds."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from layouts import esc50_layout, touch

from mmv.config import VideoConfig
from mmv.data.dataset import ClipDataset
from mmv.data.media import write_video
from mmv.data.readers.msrvtt import read_msrvtt
from mmv.data.readers.registry import read_layout
from mmv.data.readers.youcook2 import read_youcook2
from mmv.eval.datasets import FramesAsImages, ImageDataset, read_image
from mmv.eval.retrieval import media_groups

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


def test_read_eval_dataset_dispatches(tmp_path: Path) -> None:
    esc = read_layout("esc50", esc50_layout(tmp_path / "esc"))
    assert len(esc) == 4 and set(esc["split"]) == {"train"} and esc["fold"].tolist() == [1, 1, 2, 5]
    touch(tmp_path / "pets", "cat/a.jpg", "dog/b.png")
    pets = read_layout("classes", tmp_path / "pets", modality="image")
    assert pets["label_class"].tolist() == ["cat", "dog"] and pets["image_path"].notna().all()
    with pytest.raises(ValueError, match="split-files folder"):
        read_layout("ucf101", tmp_path)
    with pytest.raises(ValueError, match="unknown dataset kind"):
        read_layout("kinetics", tmp_path)


# ---------------------------------------------------------------------------------------------- images


def test_image_dataset_reads_and_crops(tmp_path: Path) -> None:
    import cv2

    image = np.zeros((40, 80, 3), dtype=np.uint8)
    image[:, :20], image[:, 20:60], image[:, 60:] = (255, 0, 0), (0, 255, 0), (0, 0, 255)  # RGB stripes
    cv2.imwrite(str(tmp_path / "a.png"), image[..., ::-1])
    (tmp_path / "bad.jpg").write_bytes(b"not an image")
    df = pd.DataFrame(
        {"clip_id": ["a", "bad", "none"], "image_path": [str(tmp_path / "a.png"), str(tmp_path / "bad.jpg"), None]}
    )
    data = ImageDataset(df, 20)
    item = data[0]
    assert item["image"].shape == (20, 20, 3) and item["image"].dtype == torch.uint8
    # Short side 40 -> 20 (the image becomes 20 x 40), centre crop 20: only the green middle stripe is left.
    assert (item["image"][:, 2:-2].float().mean((0, 1)) - torch.tensor([0.0, 255.0, 0.0])).abs().max() < 3
    assert (item["index"], item["window"], item["clip_id"]) == (0, 0, "a")
    assert data[1] is None and data[2] is None  # undecodable and absent images are skipped
    torch.testing.assert_close(read_image(tmp_path / "a.png", 20), item["image"])


def test_frames_as_images_take_the_middle_frame_of_each_window(tmp_path: Path) -> None:
    colours = np.arange(16, dtype=np.uint8)[:, None, None, None] * 15  # frame i is flat grey 15 i
    write_video(tmp_path / "v.mp4", np.broadcast_to(colours, (16, 32, 32, 3)).copy(), 4.0, crf=0)
    df = pd.DataFrame({"clip_id": ["v"], "video_path": [str(tmp_path / "v.mp4")], "split": ["test"]})
    clips = ClipDataset(df, video_cfg=VideoConfig(num_frames=4, fps=4.0, frame_size=32), mode="eval", num_windows=2)
    frames = FramesAsImages(clips, keep_video=True)
    assert frames.num_windows == 2 and len(frames) == 2
    for k in range(2):
        item = frames[k]
        torch.testing.assert_close(item["image"], item["video"][2])
    assert "video" not in FramesAsImages(clips)[0]
