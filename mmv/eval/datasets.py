"""The image items the evaluation embeds: :class:`ImageDataset` (a manifest's ``image_path`` files) and
:class:`FramesAsImages` (the middle frame of each window of a :class:`~mmv.data.dataset.ClipDataset`), both
yielding ``image`` uint8 ``[S, S, 3]`` items for :func:`mmv.embed.embed_manifest`.

The readers of evaluation datasets (ESC-50, UCF101/HMDB51, MSR-VTT, YouCook2, class folders) are in
:mod:`mmv.data.readers`, with every other layout; ``training.evaluate`` reads them through
:mod:`mmv.data.readers.registry`.
"""

from __future__ import annotations

import logging
import math
import os
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

logger = logging.getLogger(__name__)


def read_image(path: str | os.PathLike, size: int) -> torch.Tensor:
    """An image file as uint8 ``[size, size, 3]`` RGB: short side resized to ``size``, centre crop (the
    evaluation clip transform, :class:`mmv.data.transforms.EvalVideoTransform`, on a one-frame clip).

    Raises:
        ValueError: the file is empty or not an image OpenCV decodes.
    """
    import cv2

    from mmv.data.transforms import EvalVideoTransform

    data = np.fromfile(os.fspath(path), dtype=np.uint8)
    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if bgr is None:
        raise ValueError(f"{path}: not a decodable image")
    rgb = torch.from_numpy(np.ascontiguousarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)))
    return EvalVideoTransform(size)(rgb[None])[0]


class ImageDataset(Dataset):
    """The ``image_path`` files of a manifest as evaluation items (one window each).

    Item ``i`` is row ``i``: ``{"image": uint8 [S, S, 3], "clip_id", "index": i, "window": 0, "labels": {},
    "has_audio": False}``, or ``None`` (dropped by :func:`mmv.data.collate.collate_clips`, logged) when the row
    has no image or the file cannot be decoded.

    Args:
        manifest: a loaded manifest (paths absolute).
        size: S.
    """

    num_windows = 1

    def __init__(self, manifest: pd.DataFrame, size: int) -> None:
        self.paths = manifest["image_path"].tolist() if "image_path" in manifest.columns else [None] * len(manifest)
        self.clip_ids = manifest["clip_id"].astype(str).tolist()
        self.size = int(size)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> dict[str, Any] | None:
        path = self.paths[i]
        if path is None or (isinstance(path, float) and math.isnan(path)):
            return None
        try:
            image = read_image(path, self.size)
        except (OSError, ValueError) as err:
            logger.warning("skipping image of clip %s: %s", self.clip_ids[i], err)
            return None
        return {"image": image, "clip_id": self.clip_ids[i], "index": i, "window": 0, "labels": {}, "has_audio": False}


class FramesAsImages(Dataset):
    """A video :class:`~mmv.data.dataset.ClipDataset` whose items carry the middle frame of their window as
    ``image`` (uint8 ``[S, S, 3]``): still images from a manifest of videos, one per evaluation window.

    Args:
        clips: the dataset (with a video config; ``'eval'`` mode for linearly spaced windows).
        keep_video: keep the ``video`` key too (one decode for both), else drop it.
    """

    def __init__(self, clips: Dataset, keep_video: bool = False) -> None:
        self.clips = clips
        self.keep_video = keep_video
        self.num_windows = getattr(clips, "num_windows", 1)

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, i: int) -> dict[str, Any] | None:
        sample = self.clips[i]
        if sample is None:
            return None
        video = sample["video"] if self.keep_video else sample.pop("video")
        sample["image"] = video[video.shape[0] // 2]
        return sample
