"""Video frames: **OpenCV** (``cv2.VideoCapture``, FFmpeg backend) decodes them.

OpenCV seeks to a frame index (``CAP_PROP_POS_FRAMES``: FFmpeg jumps to the keyframe before it and decodes
forward to the exact frame), then :func:`read_video` walks forward with ``grab()`` (demux + decode, no colour
conversion) and calls ``retrieve()`` (YUV -> BGR) only for the frames it returns. A clip never costs more
than the decoding from the preceding keyframe to its last frame, whatever the length of the file. One
decoding thread per capture: data-loader workers run in parallel processes, and for small frames threads
cost more than they give. The container is checked and probed first (:func:`mmv.data.media.probe.video_info`).

**Time convention** (the tests hold the exact tables): output frame ``i`` has time ``start + i / fps`` and
shows source frame ``floor(time * source_fps)`` (the last source frame shown at or before that time, with
1e-6 frame of slack for float noise). ``VideoInfo.num_frames`` frames exist; an index equal to
``num_frames`` (a time less than one source frame past the end) repeats the last frame, anything later is
``"window past the end"``. A file whose stream holds fewer frames than its header claims is treated the
same way: one missing frame is padded by repetition, more is an error.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from mmv.data.media.probe import MediaError, VideoInfo, video_info

# Slack, in source frames, when a frame time is turned into an index (2.3 s * 10 fps = 22.999999999999996).
_INDEX_EPS = 1e-6
# OpenCV decoding threads per capture (see the module docstring).
_CV2_THREADS = 1
# read_frames_at: a forward gap of more source frames than this is crossed by seeking, not grabbing.
_SEEK_GAP = 64


def frame_indices(times: Sequence[float] | np.ndarray, source_fps: float) -> np.ndarray:
    """Source frame shown at each time: ``floor(t * source_fps)`` with 1e-6 frame of float slack.

    Args:
        times: seconds, ``[N]``.
        source_fps: the video's frame rate.

    Returns:
        int64 indices, ``[N]``.
    """
    t = np.asarray(times, dtype=np.float64)
    return np.floor(t * source_fps + _INDEX_EPS).astype(np.int64)


def _target_size(height: int, width: int, size: int | tuple[int, int] | None) -> tuple[int, int] | None:
    """``(H, W)`` after resizing, or ``None`` when no resize is needed."""
    if size is None:
        return None
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        if size <= 0:
            raise ValueError(f"size: must be positive, got {size}")
        short = min(height, width)
        out = (
            (int(size), max(1, round(width * size / short)))
            if height <= width
            else (max(1, round(height * size / short)), int(size))
        )
    elif isinstance(size, (tuple, list)) and len(size) == 2 and all(int(s) > 0 for s in size):
        out = (int(size[0]), int(size[1]))
    else:
        raise ValueError(f"size: must be a positive int or an (H, W) pair, got {size!r}")
    return None if out == (height, width) else out


def _open_capture(p: Path, path: str | os.PathLike[str]) -> cv2.VideoCapture:
    try:
        cap = cv2.VideoCapture(str(p), cv2.CAP_FFMPEG, [cv2.CAP_PROP_N_THREADS, _CV2_THREADS])
    except cv2.error as e:
        raise MediaError(path, f"unsupported format: OpenCV cannot open the video ({e})") from e
    if not cap.isOpened():
        cap.release()
        raise MediaError(path, "unsupported format: OpenCV cannot decode the video stream")
    return cap


def _decode_indices(
    path: str | os.PathLike[str],
    info: VideoInfo,
    indices: np.ndarray,
    size: int | tuple[int, int] | None,
    seek_gap: int | None,
) -> np.ndarray:
    """Decodes the source frames ``indices`` (any order, repeats allowed) as RGB ``[N, H, W, 3]``.

    The capture seeks to the first (smallest) index, then grabs forward; with ``seek_gap`` set it also
    seeks across forward gaps longer than that. Index ``num_frames`` (and, if the stream is shorter than
    its header, one index past the last decodable frame) repeats the last frame.
    """
    target = _target_size(info.height, info.width, size)
    out_h, out_w = target if target is not None else (info.height, info.width)
    result = np.empty((len(indices), out_h, out_w, 3), dtype=np.uint8)
    if len(indices) == 0:
        return result
    if indices.min() < 0:
        raise ValueError("times: must be >= 0")
    if indices.max() > info.num_frames:
        last = int(indices.max())
        raise MediaError(
            path,
            f"window past the end: needs source frame {last} (t = {last / info.fps:.3f} s), "
            f"the video has {info.num_frames} frames ({info.duration:.3f} s at {info.fps:g} fps)",
        )
    decoder = _Decoder(path, info, target)
    try:
        decoded = decoder.decode(sorted({int(i) for i in indices}), math.inf if seek_gap is None else seek_gap)
    except cv2.error as e:
        raise MediaError(path, f"unreadable frame: OpenCV failed ({e})") from e
    finally:
        decoder.cap.release()
    for k, index in enumerate(indices):
        result[k] = decoded[int(index)]
    return result


class _Decoder:
    """One OpenCV capture of ``path`` that decodes source frames in increasing order (:func:`_decode_indices`),
    resized to ``target`` ``(H, W)`` when given. The caller releases ``cap``."""

    def __init__(self, path: str | os.PathLike[str], info: VideoInfo, target: tuple[int, int] | None) -> None:
        self.path, self.info, self.target = path, info, target
        self.cap = _open_capture(Path(path), path)
        self.decoded: dict[int, np.ndarray] = {}

    def decode(self, wanted: list[int], gap: float) -> dict[int, np.ndarray]:
        """``{index: RGB frame}`` of the sorted distinct ``wanted``; forward gaps over ``gap`` are sought."""
        pos, fresh = 0, True  # pos: index of the frame the next grab() returns (a new capture is at frame 0)
        for n, index in enumerate(wanted):
            if (fresh and index > 0) or index < pos or index - pos > gap:
                self._seek(index)
                pos = index
            fresh = False
            while pos < index and self.cap.grab():
                pos += 1
            if pos == index and self.cap.grab():
                ok, bgr = self.cap.retrieve()
                if not ok or bgr is None:
                    raise MediaError(self.path, f"unreadable frame {index}: decoding failed")
                self.decoded[index] = self._convert(bgr)
                pos += 1
                continue
            self._repeat_last(wanted[n:], pos)
            break
        return self.decoded

    def _repeat_last(self, rest: list[int], pos: int) -> None:
        """The stream ends before ``rest[0]``: frames 0..pos-1 decode. One frame past them repeats the last;
        any later one is an error."""
        index = rest[0]
        if index > pos or pos == 0:
            raise self._ended(index, pos)
        last = self.decoded.get(pos - 1)
        if last is None:
            self._seek(pos - 1)
            ok = self.cap.grab()
            ok, bgr = self.cap.retrieve() if ok else (False, None)
            if not ok or bgr is None:
                raise self._ended(index, pos - 1)
            last = self._convert(bgr)
        for j in rest:
            if j > pos:
                raise self._ended(j, pos)
            self.decoded[j] = last

    def _convert(self, bgr: np.ndarray) -> np.ndarray:
        if self.target is not None:
            bgr = cv2.resize(bgr, (self.target[1], self.target[0]), interpolation=cv2.INTER_AREA)
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    def _seek(self, index: int) -> None:
        if not self.cap.set(cv2.CAP_PROP_POS_FRAMES, float(index)):
            raise MediaError(self.path, f"unreadable frame {index}: seeking failed")

    def _ended(self, index: int, decodable: int) -> MediaError:
        """The error for a frame ``index`` that does not decode, when ``decodable`` frames do."""
        if index >= self.info.num_frames:
            return MediaError(
                self.path, f"window past the end: needs source frame {index}, only {decodable} frames decode"
            )
        return MediaError(
            self.path,
            f"unreadable frame {index}: decoding stops after {decodable} of the {self.info.num_frames} frames "
            "the header announces (truncated or corrupt stream)",
        )


def read_video(
    path: str | os.PathLike[str],
    start: float,
    num_frames: int,
    fps: float,
    size: int | tuple[int, int] | None = None,
) -> np.ndarray:
    """Reads ``num_frames`` frames sampled at ``fps`` from ``start`` seconds.

    Output frame ``i`` is the source frame shown at ``start + i / fps`` (:func:`frame_indices`). OpenCV
    seeks to the first one and grabs forward, retrieving (colour-converting) only the frames returned.

    Args:
        path: a video container.
        start: seconds, ``>= 0``.
        num_frames: ``T >= 1``.
        fps: sampling rate of the output frames (need not be the source's: 4 fps from an 8-fps source
            takes every second frame, 16 fps repeats frames).
        size: ``None`` (native size), an int (the short side is resized to it, aspect kept) or ``(H, W)``
            (exact size); resizing uses ``cv2.INTER_AREA``.

    Returns:
        uint8 RGB frames, ``[T, H, W, 3]``.

    Raises:
        MediaError: any failure to read (see :class:`MediaError`), including ``"window past the end"`` when
            ``start + (T - 1) / fps`` is one source frame or more past the end of the video.
        ValueError: ``start < 0``, ``num_frames < 1``, ``fps <= 0``, a bad ``size``.
    """
    if not (start >= 0 and math.isfinite(start)):
        raise ValueError(f"start: must be a finite number >= 0, got {start}")
    if int(num_frames) != num_frames or num_frames < 1:
        raise ValueError(f"num_frames: must be an int >= 1, got {num_frames}")
    if not (fps > 0 and math.isfinite(fps)):
        raise ValueError(f"fps: must be > 0, got {fps}")
    info = video_info(path)
    times = start + np.arange(int(num_frames), dtype=np.float64) / fps
    return _decode_indices(path, info, frame_indices(times, info.fps), size, seek_gap=None)


def read_frames_at(path: str | os.PathLike[str], times: Sequence[float]) -> np.ndarray:
    """Reads the frames shown at arbitrary times (thumbnails), at native size.

    The times are visited in increasing order; gaps longer than a few dozen frames are crossed by seeking.

    Args:
        path: a video container.
        times: seconds, ``[N]``, any order, each ``>= 0``.

    Returns:
        uint8 RGB frames in the order of ``times``, ``[N, H, W, 3]``.

    Raises:
        MediaError: as :func:`read_video`.
        ValueError: a negative time.
    """
    t = np.asarray(times, dtype=np.float64).reshape(-1)
    if np.any(~np.isfinite(t)) or np.any(t < 0):
        raise ValueError("times: must be finite and >= 0")
    info = video_info(path)
    return _decode_indices(path, info, frame_indices(t, info.fps), None, seek_gap=_SEEK_GAP)
