"""Still images for deflation: a folder of image files, or frames sampled from a manifest's videos.

Both sources give an :class:`ImageSet`: uint8 ``[N, S, S, 3]`` images prepared like evaluation clips (short side
resized to S with antialiasing, centre crop S x S: :class:`mmv.data.transforms.EvalVideoTransform`), where
each came from, their labels (a manifest's ``label_*`` columns), and the files that could not be read. A bad file
is skipped and counted, never a crash: recalibration is a long job over unlabelled data of unknown quality.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd
import torch

from mmv.data.manifest import LABEL_PREFIX, load_manifest
from mmv.data.media import MediaError, read_frames_at, video_info
from mmv.data.transforms import EvalVideoTransform

#: Files :func:`load_image_folder` reads (case-insensitive).
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


@dataclass
class ImageSet:
    """Images with their provenance.

    Attributes:
        images: uint8 ``[N, S, S, 3]`` RGB.
        sources: ``[N]`` strings: the file path, or ``"<clip_id>@<seconds>s"`` for a video frame.
        labels: ``{name: [N] values}`` (a manifest's ``label_*`` columns without the prefix, plus ``clip_id``);
            empty for a folder.
        skipped: ``{path: reason}`` of the files (or clips) that could not be read.
    """

    images: torch.Tensor
    sources: list[str]
    labels: dict[str, list[Any]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.images)

    def subset(self, index: torch.Tensor | np.ndarray | list[int]) -> ImageSet:
        """The images at ``index`` (labels and sources follow; ``skipped`` is kept whole)."""
        idx = torch.as_tensor(np.asarray(index, dtype=np.int64))
        pick = idx.tolist()
        return ImageSet(
            images=self.images[idx],
            sources=[self.sources[i] for i in pick],
            labels={k: [v[i] for i in pick] for k, v in self.labels.items()},
            skipped=dict(self.skipped),
        )

    def split(self, held_out: int | float, seed: int = 0) -> tuple[ImageSet, ImageSet]:
        """A seeded random split into ``(train, held_out)``; ``held_out`` is a count or a fraction in (0, 1)."""
        n = len(self)
        k = int(round(held_out * n)) if isinstance(held_out, float) and held_out < 1 else int(held_out)
        if not 0 < k < n:
            raise ValueError(f"split: cannot hold out {held_out!r} of {n} images (need at least one on each side)")
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
        return self.subset(perm[k:].sort().values), self.subset(perm[:k].sort().values)


def prepare_image(image: np.ndarray | torch.Tensor, size: int) -> torch.Tensor:
    """uint8 ``[H, W, 3]`` -> ``[size, size, 3]``: short side to ``size`` (antialiased), centre crop."""
    x = torch.as_tensor(np.ascontiguousarray(image))
    return EvalVideoTransform(size)(x[None])[0]


def _read_image(path: Path) -> np.ndarray:
    """RGB uint8 ``[H, W, 3]``; raises ``ValueError`` with a reason when OpenCV cannot decode the file."""
    data = np.fromfile(str(path), dtype=np.uint8)
    if data.size == 0:
        raise ValueError("empty file")
    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError("not a decodable image")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _stack(images: list[torch.Tensor], size: int) -> torch.Tensor:
    return torch.stack(images) if images else torch.zeros(0, size, size, 3, dtype=torch.uint8)


def load_image_folder(
    directory: str | os.PathLike, size: int, max_images: int | None = None, seed: int = 0
) -> ImageSet:
    """Every image file under ``directory`` (recursively, sorted by path), prepared at ``size``.

    Args:
        directory: a folder of ``.jpg``/``.jpeg``/``.png``/``.bmp``/``.webp`` files.
        size: S of the ``[S, S, 3]`` output images.
        max_images: read a seeded random subset of this many files (``None``: all).
        seed: chooses the subset.

    Returns:
        The images in path order; unreadable files are in ``skipped`` with the reason.

    Raises:
        ValueError: ``directory`` is not a folder, or it holds no readable image.
    """
    root = Path(directory)
    if not root.is_dir():
        raise ValueError(f"{root}: not a directory of images")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if max_images is not None and len(files) > max_images:
        pick = np.sort(np.random.default_rng(seed).choice(len(files), size=max_images, replace=False))
        files = [files[i] for i in pick]
    images, sources, skipped = [], [], {}
    for path in files:
        try:
            images.append(prepare_image(_read_image(path), size))
            sources.append(str(path))
        except (OSError, ValueError, cv2.error) as e:
            skipped[str(path)] = str(e)
    if not images:
        raise ValueError(f"{root}: no readable image ({len(files)} image files, {len(skipped)} unreadable)")
    return ImageSet(_stack(images, size), sources, {}, skipped)


def _frame_times(start: float, end: float, fps: float, count: int, position: str, rng: np.random.Generator) -> list:
    """``count`` times in ``[start, end)``: evenly spaced centres (``'middle'``) or uniform at random."""
    last = max(start, end - 1.0 / fps)
    if position == "middle":
        return [start + (last - start) * (i + 0.5) / count for i in range(count)]
    return sorted(float(t) for t in rng.uniform(start, last, size=count))


def frames_from_manifest(
    manifest: pd.DataFrame | str | os.PathLike,
    size: int,
    *,
    split: str | None = None,
    frames_per_clip: int = 1,
    max_clips: int | None = None,
    position: str = "random",
    seed: int = 0,
) -> ImageSet:
    """Frames sampled from a manifest's videos (rows with an ``image_path`` give that image instead).

    Args:
        manifest: a manifest (path or DataFrame, :mod:`mmv.data.manifest`).
        size: S of the ``[S, S, 3]`` output images.
        split: keep only this split (``None``: every row).
        frames_per_clip: frames taken from each clip's ``[start, end)`` window.
        max_clips: use a seeded random subset of this many rows (``None``: all), kept in manifest order.
        position: ``'random'`` (uniform in the window, seeded per row) or ``'middle'`` (evenly spaced centres:
            one frame is the window's middle).
        seed: seeds the row subset and the random times.

    Returns:
        The frames, clip after clip, with ``labels['clip_id']`` and each ``label_*`` column; clips whose media
        cannot be read are in ``skipped``.

    Raises:
        ValueError: no row in the split, a bad ``position``, or no readable frame at all.
    """
    if position not in ("random", "middle"):
        raise ValueError(f"frames_from_manifest: position must be 'random' or 'middle', got {position!r}")
    df = load_manifest(manifest) if isinstance(manifest, (str, os.PathLike)) else manifest
    if split is not None:
        df = df[df["split"] == split]
    if max_clips is not None and len(df) > max_clips:
        pick = np.sort(np.random.default_rng(seed).choice(len(df), size=max_clips, replace=False))
        df = df.iloc[pick]
    if len(df) == 0:
        raise ValueError(f"frames_from_manifest: no clip in split {split!r}")
    label_cols = [c for c in df.columns if c.startswith(LABEL_PREFIX)]
    images: list[torch.Tensor] = []
    sources: list[str] = []
    labels: dict[str, list[Any]] = {"clip_id": [], **{c[len(LABEL_PREFIX) :]: [] for c in label_cols}}
    skipped: dict[str, str] = {}
    for row_number, row in enumerate(df.to_dict("records")):
        rng = np.random.default_rng([seed, row_number])
        image_path, video_path = row.get("image_path"), row.get("video_path")
        try:
            read = _row_frames(row, size, frames_per_clip, position, rng)
            if read is None:
                continue  # an audio-only row has no picture
            frames, names = read
        except (MediaError, OSError, ValueError, cv2.error) as e:
            skipped[str(image_path or video_path)] = str(e)
            continue
        images.extend(frames)
        sources.extend(names)
        labels["clip_id"].extend([row["clip_id"]] * len(frames))
        for c in label_cols:
            value = row[c]
            labels[c[len(LABEL_PREFIX) :]].extend([value.item() if hasattr(value, "item") else value] * len(frames))
    if not images:
        raise ValueError(f"frames_from_manifest: no readable frame ({len(skipped)} clips unreadable)")
    return ImageSet(_stack(images, size), sources, labels, skipped)


def _row_frames(
    row: dict[str, Any], size: int, frames_per_clip: int, position: str, rng: np.random.Generator
) -> tuple[torch.Tensor, list[str]] | None:
    """``([N, S, S, 3] uint8 frames, their source names)`` of one manifest row, or ``None`` for an audio-only row.

    A row with an ``image_path`` gives that image; otherwise ``frames_per_clip`` frames of its video's
    ``[start, end)`` window at :func:`_frame_times`. Raises what the media readers raise for a bad file.
    """
    image_path, video_path = row.get("image_path"), row.get("video_path")
    if image_path:
        return prepare_image(_read_image(Path(image_path)), size)[None], [str(image_path)]
    if not video_path:
        return None
    info = video_info(video_path)
    start = float(row.get("start") or 0.0)
    end = row.get("end")
    end = info.duration if end is None or not math.isfinite(end) else min(float(end), info.duration)
    times = _frame_times(start, end, info.fps, frames_per_clip, position, rng)
    frames = torch.stack([prepare_image(f, size) for f in read_frames_at(video_path, times)])
    return frames, [f"{row['clip_id']}@{t:.3f}s" for t in times]
