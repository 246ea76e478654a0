"""The image items the evaluation embeds (mmv.eval.datasets): image files and video frames."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from mmv.config import VideoConfig
from mmv.data.dataset import ClipDataset
from mmv.data.media import write_video
from mmv.eval.datasets import FramesAsImages, ImageDataset, read_image


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
