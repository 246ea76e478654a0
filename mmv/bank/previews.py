"""Thumbnails and short previews of the bank's clips (what a gallery shows next to a search result).

* **Thumbnail**: the frame shown at the middle of the clip's region ``[start, end]``, its longer side resized
  to ``size`` pixels (``cv2.INTER_AREA``), as a JPEG (quality 85). ``thumbs/<row>.jpg``.
* **Preview**: an MP4 a browser plays (H.264 yuv420p + AAC), of the first ``max_seconds`` of the region, with
  sound when the clip has any. ``previews/<row>.mp4``. When the source already *is* such a preview (an MP4 with
  H.264 yuv420p video and AAC or no audio, the region is the whole file, at most ``max_seconds`` long and at
  most ``LINK_MAX_BYTES``: every toy-world clip), it is hard-linked into the bank (copied when the bank is on
  another file system) instead of re-encoded: no quality loss, no encoding time, and no extra disk space with
  a link. Otherwise the window is decoded (frames at the source rate up to ``PREVIEW_MAX_FPS``, short side
  ``PREVIEW_SHORT_SIDE``; audio at its native rate when AAC supports it, else 44.1 kHz, through the FLAC cache
  of :func:`mmv.data.media.read_audio`) and re-encoded with :func:`mmv.data.media.write_video`.

Clips without a video (audio-only rows) get neither. Every failure raises :class:`mmv.data.media.MediaError`
(or ``ValueError``); the bank builder counts them and leaves the path empty.
"""

from __future__ import annotations

import math
import os
import shutil
from pathlib import Path

import av
import cv2
import numpy as np

from mmv.data import media

#: Longer side of a thumbnail, pixels.
THUMB_SIZE = 128
#: Longest preview, seconds (from the clip's start).
PREVIEW_SECONDS = 8.0
#: Short side of a re-encoded preview, pixels (never upscaled).
PREVIEW_SHORT_SIDE = 160
#: Highest frame rate of a re-encoded preview.
PREVIEW_MAX_FPS = 25.0
#: Largest source file linked (or copied) as its own preview.
LINK_MAX_BYTES = 4 * 1024 * 1024


def clip_region(video_path: str, start: float, end: float | None) -> tuple[float, float, media.VideoInfo]:
    """``(start, end, info)`` of a clip's region in its video; a null ``end`` is the end of the file."""
    info = media.video_info(video_path)
    stop = info.duration if end is None or (isinstance(end, float) and math.isnan(end)) else float(end)
    stop = min(stop, info.duration)
    if not stop > start:
        reason = f"window past the end: the region starts at {start:.3f} s, the video lasts {info.duration:.3f} s"
        raise media.MediaError(video_path, reason)
    return float(start), stop, info


Region = tuple[float, float, media.VideoInfo]


def write_thumbnail(video_path: str, region: Region, out: Path, size: int = THUMB_SIZE) -> None:
    """Writes the middle frame of a clip's region (:func:`clip_region`) of ``video_path`` as a JPEG."""
    start, stop, info = region
    # The middle of the region, kept one source frame inside the file.
    t = min((start + stop) / 2, max(0.0, info.duration - 1.0 / info.fps))
    frame = media.read_frames_at(video_path, [t])[0]  # [H, W, 3] RGB
    h, w = frame.shape[:2]
    scale = size / max(h, w)
    if scale < 1:
        frame = cv2.resize(frame, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 85])
    if not ok:
        raise media.MediaError(video_path, "cannot encode the thumbnail")
    out.write_bytes(data.tobytes())


def _linkable(path: str, start: float, stop: float, info: media.VideoInfo, max_seconds: float) -> bool:
    """Whether ``path`` can serve as its own preview (module docstring)."""
    if Path(path).suffix.lower() not in (".mp4", ".m4v") or os.path.getsize(path) > LINK_MAX_BYTES:
        return False
    if start > 1e-3 or stop < info.duration - 1e-3 or info.duration > max_seconds + 1e-3:
        return False
    try:
        with av.open(path) as container:
            v = container.streams.video[0].codec_context
            audio_ok = all(s.codec_context.name == "aac" for s in container.streams.audio)
            return v.name == "h264" and v.pix_fmt == "yuv420p" and audio_ok
    except (av.FFmpegError, OSError, IndexError):
        return False


def _even(x: float) -> int:
    return max(2, int(round(x / 2)) * 2)


def write_preview(
    video_path: str,
    audio_path: str | None,
    region: Region,
    out: Path,
    max_seconds: float = PREVIEW_SECONDS,
    cache_dir: str | os.PathLike | None = None,
) -> str:
    """Writes the clip's preview MP4 to ``out`` (module docstring).

    Args:
        video_path: the clip's video.
        audio_path: its separate audio file, or ``None`` for the video's own track.
        region: ``(start, end, info)`` from :func:`clip_region`.
        out: the ``.mp4`` to write.
        max_seconds: the preview's longest duration.
        cache_dir: FLAC cache for container audio.

    Returns:
        How it was made: ``"linked"``, ``"copied"`` or ``"encoded"``.
    """
    start, stop, info = region
    if audio_path is None and _linkable(video_path, start, stop, info, max_seconds):
        try:
            os.link(video_path, out)
            return "linked"
        except OSError:
            shutil.copyfile(video_path, out)
            return "copied"
    duration = min(stop - start, max_seconds)
    fps = min(info.fps, PREVIEW_MAX_FPS)
    n = max(1, math.floor(duration * fps + 1e-6))
    short = min(info.height, info.width)
    scale = min(1.0, PREVIEW_SHORT_SIDE / short)
    size = (_even(info.height * scale), _even(info.width * scale))
    frames = media.read_video(video_path, start, n, fps, size=size)
    audio, rate = None, 16000
    source = audio_path or video_path
    try:
        native = media.audio_info(source).sample_rate
        rate = native if native in media.AAC_SAMPLE_RATES else 44100
        audio = media.read_audio(source, start, n / fps, rate, cache_dir)
    except media.MediaError as err:
        if audio_path is not None or not err.reason.startswith("no audio stream"):
            raise
    media.write_video(out, np.ascontiguousarray(frames), fps, audio=audio, sample_rate=rate)
    return "encoded"
