"""An in-memory clip dataset: each row's media are decoded once, every later window is cut from memory.

On a 2-core CPU the loader competes with the model for the cores: decoding an H.264 window costs about as
much as a tiny model's forward pass over it. For small datasets (the toy world's 1,600 training clips) it is
cheaper to decode every clip once and keep its frames and samples in RAM. :class:`CachedClipDataset` is a
:class:`~mmv.data.dataset.ClipDataset` whose two media readers are replaced by lookups in that cache; the
sampling of windows, the transforms (crops, colour), the captions and the labels are the base class's,
unchanged, so an item is drawn from the same random stream as with :class:`ClipDataset`.

**What is cached, per row.** Video: every *source* frame shown in the row's region ``[start, end]``, uint8,
at native size or with the short side resized to ``cache_frame_size`` (OpenCV ``INTER_AREA``, as
:func:`mmv.data.media.read_video` resizes). Audio: the whole region's waveform at the model's sample rate,
float32 (``None`` for a video without a sound track, which then gives ``has_audio = False`` as before).

**Exactness.** A window's frames are looked up with the same time convention as the decoder (output frame
``i`` is source frame ``floor((start + i / fps) * source_fps)``, :func:`mmv.data.media.frame_indices`), so
with ``cache_frame_size=None`` the video of every item equals :class:`ClipDataset`'s bit for bit. The audio
window starts ``round((audio_start - start) * sample_rate)`` samples into the cached region: identical to
reading the file when the region starts at 0 s and the file's rate is the model's (the toy world), and
otherwise within one sample of it (and of its resampling filter's edge effects).

**Memory.** ``frames x H x W x 3`` bytes of video plus ``4 x sample_rate x seconds`` of audio per row: the
toy world's 1,600 training clips (32 frames of 128 x 128 and 4 s at 16 kHz) take about 2.5 GB of video at
native size and 0.63 GB with ``cache_frame_size=64``, plus 0.41 GB of audio. The build stops with a
``MemoryError`` once ``max_bytes`` is passed.

**Unreadable media** are found while filling the cache; the row's error is kept and raised again on every
access, so the base class skips the item and counts it exactly as it would have (``None`` from
``__getitem__``, recorded in :attr:`skips`).

**Workers.** The cache is filled in the main process (with ``cache_workers`` DataLoader worker processes
decoding rows in parallel). Training DataLoader workers started by ``fork`` (Linux's default) share the
arrays copy-on-write; with ``spawn`` each worker would receive a pickled copy, so prefer ``num_workers=0``
or ``fork`` there.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from mmv.data import media
from mmv.data.dataset import ClipDataset
from mmv.data.sampling import ClipWindow

#: Default upper bound of the cache, bytes.
DEFAULT_MAX_BYTES = 8 * 2**30


class _RowDecoder(Dataset):
    """Decodes the media of one region per item (run by DataLoader workers while the cache is filled)."""

    def __init__(self, jobs: list[dict[str, Any]], frame_size: int | None, sample_rate: int | None, cache_dir: Any):
        self.jobs, self.frame_size, self.sample_rate, self.cache_dir = jobs, frame_size, sample_rate, cache_dir

    def __len__(self) -> int:
        return len(self.jobs)

    def __getitem__(self, i: int) -> dict[str, Any]:
        job = self.jobs[i]
        out: dict[str, Any] = {"row": job["row"], "error": None, "frames": None, "audio": None}
        try:
            if job["video"] is not None:
                out.update(self._video(job["video"], job["start"], job["end"]))
            if job["audio"] is not None:
                out["audio"] = self._audio(job["audio"], job["start"], job["end"], job["audio_is_container"])
        except media.MediaError as err:
            out["error"] = (err.path, err.reason)
            out["frames"] = out["audio"] = None
        return out

    def _video(self, path: str, start: float, end: float) -> dict[str, Any]:
        info = media.video_info(path)
        first = int(media.frame_indices([start], info.fps)[0])
        last = min(info.num_frames - 1, int(media.frame_indices([end], info.fps)[0]))
        if first > last:
            raise media.MediaError(path, f"window past the end: the region starts at {start:.3f} s")
        # Output frame i at start + i / source_fps shows source frame floor(start * fps) + i = first + i.
        frames = media.read_video(path, start, last - first + 1, info.fps, self.frame_size)
        return {"frames": frames, "first_frame": first, "source_frames": info.num_frames, "source_fps": info.fps}

    def _audio(self, path: str, start: float, end: float, container: bool) -> np.ndarray | None:
        try:
            return media.read_audio(path, start, end - start, self.sample_rate, self.cache_dir)
        except media.MediaError as err:
            if container and err.reason.startswith("no audio stream"):
                return None  # a silent video: no audio, as ClipDataset._read_audio decides
            raise


def _identity(item: Any) -> Any:
    return item


class CachedClipDataset(ClipDataset):
    """A :class:`ClipDataset` that decodes every row once into memory (module docstring).

    Takes every argument of :class:`ClipDataset` (positional or by name), plus:

    Args:
        cache_frame_size: short side of the cached frames (``None``: native size). Use at least the model's
            ``frame_size``; the transforms crop and resize from the cached frames.
        cache_workers: processes decoding rows while the cache is filled (0: in this process).
        max_bytes: the cache's upper bound; passing it raises ``MemoryError``.
        progress: print a line when the cache is filled (rows, bytes, seconds).

    Attributes:
        cache_bytes: bytes held by the cache.
        cache_seconds: wall time spent filling it.
    """

    def __init__(
        self,
        *args: Any,
        cache_frame_size: int | None = None,
        cache_workers: int = 0,
        max_bytes: int = DEFAULT_MAX_BYTES,
        progress: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        if cache_frame_size is not None and cache_frame_size < 1:
            raise ValueError(f"cache_frame_size: must be >= 1 or None, got {cache_frame_size}")
        self.cache_frame_size = cache_frame_size
        n = self.num_clips
        self._frames: list[np.ndarray | None] = [None] * n
        self._video_meta: list[tuple[int, int, float] | None] = [None] * n  # first, source frames, source fps
        self._audio: list[np.ndarray | None] = [None] * n
        self._errors: dict[int, tuple[str, str]] = {}
        self.cache_bytes = 0
        start = time.perf_counter()
        self._fill(cache_workers, max_bytes)
        self.cache_seconds = time.perf_counter() - start
        if progress:
            print(
                f"CachedClipDataset: {n} clips decoded into {self.cache_bytes / 2**20:.0f} MiB "
                f"in {self.cache_seconds:.1f} s ({len(self._errors)} unreadable)",
                flush=True,
            )

    # -- filling ------------------------------------------------------------------------------------

    def _jobs(self) -> list[dict[str, Any]]:
        jobs = []
        for row in range(self.num_clips):
            video, audio = self._rows["video_path"][row], self._rows["audio_path"][row]
            job = {"row": row, "video": None, "audio": None, "audio_is_container": audio is None}
            try:
                job["start"], job["end"] = self._region(row)
            except media.MediaError as err:
                self._errors[row] = (err.path, err.reason)
                continue
            if self.video_cfg is not None and video is not None:
                job["video"] = video
            if self.audio_cfg is not None and (audio or video) is not None and job["end"] > job["start"]:
                job["audio"] = audio or video
            jobs.append(job)
        return jobs

    def _fill(self, workers: int, max_bytes: int) -> None:
        decoder = _RowDecoder(
            self._jobs(),
            self.cache_frame_size,
            self.audio_cfg.sample_rate if self.audio_cfg is not None else None,
            self.cache_dir,
        )
        if workers > 0:
            items: Any = DataLoader(decoder, batch_size=None, num_workers=workers, collate_fn=_identity)
        else:
            items = (decoder[i] for i in range(len(decoder)))
        for item in items:
            row = item["row"]
            if item["error"] is not None:
                self._errors[row] = item["error"]
                continue
            if item["frames"] is not None:
                self._frames[row] = np.ascontiguousarray(item["frames"])
                self._video_meta[row] = (item["first_frame"], item["source_frames"], item["source_fps"])
                self.cache_bytes += self._frames[row].nbytes
            if item["audio"] is not None:
                self._audio[row] = np.ascontiguousarray(item["audio"], dtype=np.float32)
                self.cache_bytes += self._audio[row].nbytes
            if self.cache_bytes > max_bytes:
                raise MemoryError(
                    f"CachedClipDataset: more than max_bytes={max_bytes} bytes after {row + 1} of "
                    f"{self.num_clips} clips; lower cache_frame_size, use fewer clips or ClipDataset"
                )

    # -- reading from memory ------------------------------------------------------------------------

    def _raise_if_bad(self, row: int) -> None:
        if row in self._errors:
            raise media.MediaError(*self._errors[row])

    def _read_video(self, row: int, window: ClipWindow, end: float) -> torch.Tensor:
        self._raise_if_bad(row)
        frames, meta = self._frames[row], self._video_meta[row]
        if frames is None or meta is None:
            raise media.MediaError(str(self._rows["clip_id"][row]), "no video stream: the row has no video_path")
        first, source_frames, source_fps = meta
        cfg = self.video_cfg
        n = cfg.num_frames
        avail = min(n, max(1, math.ceil((end - window.start) * cfg.fps - 1e-6)))  # as ClipDataset._read_video
        times = window.start + np.arange(avail, dtype=np.float64) / cfg.fps
        index = media.frame_indices(times, source_fps)
        if int(index.max()) > source_frames:
            path = str(self._rows["video_path"][row])
            raise media.MediaError(path, f"window past the end: needs source frame {int(index.max())}")
        # Index source_frames (less than one frame past the end) repeats the last frame, as the decoder does.
        local = np.minimum(index - first, len(frames) - 1)
        if int(local.min()) < 0:
            raise ValueError(f"window at {window.start:.3f} s starts before the cached region of row {row}")
        if avail < n:
            local = np.concatenate([local, np.full(n - avail, local[-1])])
        return torch.from_numpy(frames[local])

    def _read_audio(self, row: int, window: ClipWindow, end: float) -> tuple[torch.Tensor, bool]:
        self._raise_if_bad(row)
        cfg = self.audio_cfg
        out = np.zeros(cfg.num_samples, dtype=np.float32)
        wave = self._audio[row]
        duration = min(cfg.duration, end - window.audio_start)
        if wave is None or duration <= 0:
            return torch.from_numpy(out), False
        start, _ = self._region(row)
        offset = round((window.audio_start - start) * cfg.sample_rate)
        take = min(round(duration * cfg.sample_rate), cfg.num_samples)
        seg = wave[max(offset, 0) : max(offset, 0) + take]
        out[: len(seg)] = seg
        return torch.from_numpy(out), True
