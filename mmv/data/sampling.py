"""Clip sampling: where, in time, a training or evaluation clip is cut from a manifest row.

A manifest row (``docs/formats.md``) names a *region* of a media file, ``[start, end]`` seconds. A
:class:`ClipSampler` picks one or several *windows* inside that region; the decoders
(:mod:`mmv.data.media`) then read exactly those windows. Sampling and decoding are separate, as in
pytorchvideo, so the window arithmetic is tested here without any media file.

Window lengths:

* the **video span** is ``num_frames / fps`` seconds (``VideoConfig``): 16 frames at 8 fps is 2 s;
* the **audio window** is ``AudioConfig.duration`` seconds, sampled in sync with the video. Rule: the
  audio window is *centred on the video window's centre* and then clamped into the region. When the two
  durations are equal (the paper's 3.2 s of both) this is simply "audio starts when the video starts";
  when they differ (e.g. 2 s of video and 3.2 s of audio) both windows share their midpoint, unless the
  audio window would stick out of the region, in which case it is shifted back inside (it then still
  covers the whole video window whenever the region is long enough for the audio).

Positions:

* ``'random'`` (training): the start is uniform over ``[0, duration - window]`` of the region;
* ``'uniform'`` (evaluation, the multi-window protocol of ``shared/mmv_spec.md`` section 8.6): window
  ``k`` of ``n`` starts at ``linspace(0, duration - window, n)[k]``, as DMVR's ``sample_linspace_sequence``
  does, so ``n = 1`` gives the *first* window;
* ``'center'``: one window in the middle of the region (a convenient single-window evaluation).

A region shorter than the window yields start 0 (the region's start) and the window is flagged
``short``: :class:`mmv.data.dataset.ClipDataset` then reads what exists and pads the rest (video: the last
frame repeated; audio: zeros).

All times are float seconds; starts returned by the functions here are *offsets into the region*, and
:class:`ClipWindow` holds absolute file times.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mmv.config import AudioConfig, VideoConfig
from mmv.data.manifest import captions_in_window

SAMPLING_MODES = ("random", "uniform", "center")

# Durations within this many seconds of the window count as equal (float noise from fps arithmetic).
_EPS = 1e-9


def is_short(duration: float, window: float) -> bool:
    """True when a region of ``duration`` seconds cannot hold a ``window``-second window."""
    return duration < window - _EPS


def random_window(duration: float, window: float, rng: np.random.Generator) -> float:
    """Start offset of one random window, uniform over ``[0, duration - window]``.

    Args:
        duration: length of the region, seconds.
        window: length of the window, seconds.
        rng: the generator the draw comes from (one draw, always, so streams stay aligned).

    Returns:
        The start offset, seconds; ``0.0`` when the region is shorter than the window (see :func:`is_short`,
        which :class:`ClipSampler` records as :attr:`ClipWindow.short`).
    """
    _check(duration, window)
    u = float(rng.random())
    return u * max(0.0, duration - window)


def uniform_windows(duration: float, window: float, n: int) -> list[float]:
    """Start offsets of ``n`` linearly spaced windows: ``linspace(0, duration - window, n)``.

    The first window starts at 0 and the last one ends at ``duration`` (for ``n >= 2``); ``n = 1`` gives
    ``[0.0]``. A region shorter than the window gives ``n`` zeros.

    Args:
        duration: length of the region, seconds.
        window: length of the window, seconds.
        n: number of windows, at least 1.

    Returns:
        ``n`` start offsets, seconds, non-decreasing.
    """
    _check(duration, window)
    if n < 1:
        raise ValueError(f"n: must be >= 1, got {n}")
    last = max(0.0, duration - window)
    return [float(x) for x in np.linspace(0.0, last, n)]


def center_window(duration: float, window: float) -> float:
    """Start offset of the window centred in the region (``0.0`` for a short region)."""
    _check(duration, window)
    return max(0.0, duration - window) / 2.0


def audio_window(video_start: float, video_span: float, audio_duration: float, lo: float, hi: float) -> float:
    """Start of the audio window that goes with a video window (absolute seconds).

    The audio window is centred on the video window's centre, then clamped into ``[lo, hi]``; when the
    region is shorter than the audio window it starts at ``lo``.

    Args:
        video_start: start of the video window, seconds.
        video_span: length of the video window, seconds.
        audio_duration: length of the audio window, seconds.
        lo: start of the region, seconds.
        hi: end of the region, seconds.

    Returns:
        The audio window's start, seconds.
    """
    start = video_start + (video_span - audio_duration) / 2.0
    return min(max(start, lo), max(lo, hi - audio_duration))


@dataclass(frozen=True)
class ClipWindow:
    """One window picked by a :class:`ClipSampler`, in absolute file seconds.

    Attributes:
        start: start of the video window (the clip's reference time; captions are matched to
            ``[start, end]``).
        end: ``start + span``.
        audio_start: start of the audio window (see the module docstring).
        audio_end: ``audio_start + audio duration``.
        index: which window of the sampler's ``num_windows`` (0 for a single window).
        short: the region is shorter than the video or the audio window (the dataset pads the missing end).
    """

    start: float
    end: float
    audio_start: float
    audio_end: float
    index: int = 0
    short: bool = False


class ClipSampler:
    """Picks clip windows inside a region ``[start, end]`` of a media file.

    Args:
        span: length of the video window, seconds (``num_frames / fps``). With no video, pass the audio
            duration.
        audio_duration: length of the audio window, seconds (``None``: same as ``span``).
        mode: ``'random'`` (training), ``'uniform'`` (``num_windows`` linearly spaced windows) or
            ``'center'``.
        num_windows: windows per region: ``'uniform'`` spaces them, ``'random'`` draws them
            independently, ``'center'`` needs 1.
    """

    def __init__(
        self, span: float, audio_duration: float | None = None, mode: str = "random", num_windows: int = 1
    ) -> None:
        if mode not in SAMPLING_MODES:
            raise ValueError(f"mode: must be one of {SAMPLING_MODES}, got {mode!r}")
        if not span > 0:
            raise ValueError(f"span: must be > 0 seconds, got {span!r}")
        if audio_duration is not None and not audio_duration > 0:
            raise ValueError(f"audio_duration: must be > 0 seconds, got {audio_duration!r}")
        if num_windows < 1 or (mode == "center" and num_windows != 1):
            raise ValueError(f"num_windows: must be >= 1 (exactly 1 for 'center'), got {num_windows}")
        self.span = float(span)
        self.audio_duration = float(span if audio_duration is None else audio_duration)
        self.mode = mode
        self.num_windows = int(num_windows)

    @classmethod
    def from_configs(
        cls,
        video: VideoConfig | None,
        audio: AudioConfig | None,
        mode: str = "random",
        num_windows: int = 1,
    ) -> ClipSampler:
        """The sampler for a dataset's modalities: video span ``num_frames / fps``, audio ``duration``.

        With neither video nor audio (text only) the window is 1 s, used only to pick captions.
        """
        if video is not None:
            span = video.num_frames / video.fps
        elif audio is not None:
            span = audio.duration
        else:
            span = 1.0
        return cls(span, audio.duration if audio is not None else None, mode, num_windows)

    def __repr__(self) -> str:
        return (
            f"ClipSampler(span={self.span:g}, audio_duration={self.audio_duration:g}, mode={self.mode!r}, "
            f"num_windows={self.num_windows})"
        )

    def sample(
        self, start: float, end: float, rng: np.random.Generator | None = None, window_index: int = 0
    ) -> ClipWindow:
        """Window ``window_index`` of ``num_windows`` inside ``[start, end]``.

        Args:
            start: region start, seconds.
            end: region end, seconds.
            rng: needed for ``'random'``; ignored otherwise.
            window_index: in ``[0, num_windows)``; for ``'random'`` only the draw from ``rng`` matters.

        Returns:
            The window in absolute seconds.
        """
        if not 0 <= window_index < self.num_windows:
            raise IndexError(f"window_index: {window_index} not in [0, {self.num_windows})")
        duration = end - start
        if self.mode == "random":
            if rng is None:
                raise ValueError("ClipSampler('random').sample needs an rng")
            offset = random_window(duration, self.span, rng)
        elif self.mode == "uniform":
            offset = uniform_windows(duration, self.span, self.num_windows)[window_index]
        else:
            offset = center_window(duration, self.span)
        return self._window(start, end, offset, window_index)

    def __call__(self, start: float, end: float, rng: np.random.Generator | None = None) -> list[ClipWindow]:
        """All ``num_windows`` windows of the region ``[start, end]``, in window order."""
        return [self.sample(start, end, rng, k) for k in range(self.num_windows)]

    def _window(self, start: float, end: float, offset: float, index: int) -> ClipWindow:
        v0 = start + offset
        a0 = audio_window(v0, self.span, self.audio_duration, start, end)
        short = is_short(end - start, max(self.span, self.audio_duration))
        return ClipWindow(v0, v0 + self.span, a0, a0 + self.audio_duration, index, short)


def select_captions(captions: Sequence[dict[str, Any]], window: ClipWindow, k: int) -> list[str]:
    """The texts of the ``k`` captions nearest in time to a clip's video window (MIL-NCE's bag).

    Thin wrapper over :func:`mmv.data.manifest.captions_in_window` (which defines "nearest") returning the
    caption strings in the order it gives them.

    Args:
        captions: ``{start, end, text}`` dicts in file time.
        window: the clip window.
        k: bag size K.

    Returns:
        At most ``k`` caption texts (empty for a clip without narration).
    """
    if k < 1:
        raise ValueError(f"k: must be >= 1, got {k}")
    if captions is None or len(captions) == 0:
        return []
    return [str(c["text"]) for c in captions_in_window(list(captions), window.start, window.end, k)]


def _check(duration: float, window: float) -> None:
    if not window > 0:
        raise ValueError(f"window: must be > 0 seconds, got {window!r}")
    if not duration >= 0:
        raise ValueError(f"duration: must be >= 0 seconds, got {duration!r}")
