"""Clip sampling: exact window arithmetic from tables, sync of audio and video, caption bags."""

from __future__ import annotations

import numpy as np
import pytest

from mmv.config import AudioConfig, VideoConfig
from mmv.data.sampling import (
    ClipSampler,
    ClipWindow,
    audio_window,
    center_window,
    is_short,
    random_window,
    select_captions,
    uniform_windows,
)

# (file duration, window, n) -> starts = linspace(0, duration - window, n), 0s when short.
UNIFORM_TABLE = [
    (10.0, 2.0, 1, [0.0]),
    (10.0, 2.0, 2, [0.0, 8.0]),
    (10.0, 2.0, 5, [0.0, 2.0, 4.0, 6.0, 8.0]),
    (10.0, 3.2, 3, [0.0, 3.4, 6.8]),
    (4.0, 2.0, 3, [0.0, 1.0, 2.0]),
    (4.0, 2.0, 4, [0.0, 2.0 / 3.0, 4.0 / 3.0, 2.0]),
    (2.0, 2.0, 3, [0.0, 0.0, 0.0]),
    (1.5, 2.0, 2, [0.0, 0.0]),
    (0.0, 2.0, 1, [0.0]),
    (12.8, 3.2, 10, [k * 9.6 / 9 for k in range(10)]),
]


@pytest.mark.parametrize(("duration", "window", "n", "starts"), UNIFORM_TABLE)
def test_uniform_windows_table(duration: float, window: float, n: int, starts: list[float]) -> None:
    got = uniform_windows(duration, window, n)
    assert len(got) == n
    np.testing.assert_allclose(got, starts, rtol=0, atol=1e-12)
    if n >= 2 and duration >= window:
        assert got[-1] + window == pytest.approx(duration)


@pytest.mark.parametrize(
    ("duration", "window", "start", "short"),
    [
        (10.0, 2.0, 4.0, False),
        (4.0, 2.0, 1.0, False),
        (2.0, 2.0, 0.0, False),
        (1.0, 2.0, 0.0, True),
        (0.0, 1.0, 0.0, True),
    ],
)
def test_center_window_and_short_flag(duration: float, window: float, start: float, short: bool) -> None:
    assert center_window(duration, window) == pytest.approx(start)
    assert is_short(duration, window) is short


def test_random_window_is_uniform_over_valid_starts() -> None:
    rng = np.random.default_rng(0)
    starts = np.array([random_window(10.0, 2.0, rng) for _ in range(4000)])
    assert starts.min() >= 0.0 and starts.max() <= 8.0
    # Uniform on [0, 8]: mean 4, std 8 / sqrt(12); deciles equally filled.
    assert starts.mean() == pytest.approx(4.0, abs=0.15)
    assert starts.std() == pytest.approx(8.0 / np.sqrt(12.0), abs=0.1)
    counts = np.histogram(starts, bins=8, range=(0, 8))[0]
    assert counts.min() > 400 and counts.max() < 600


def test_random_window_short_and_exact_file() -> None:
    rng = np.random.default_rng(1)
    assert random_window(1.0, 2.0, rng) == 0.0
    assert random_window(2.0, 2.0, rng) == 0.0
    # Deterministic given the generator's state, and one draw per call.
    a = [random_window(10.0, 2.0, np.random.default_rng(7)) for _ in range(3)]
    assert a[0] == a[1] == a[2]
    r1, r2 = np.random.default_rng(3), np.random.default_rng(3)
    random_window(1.0, 2.0, r1)  # a short region still consumes a draw
    r2.random()
    assert r1.random() == r2.random()


@pytest.mark.parametrize(
    ("v0", "span", "adur", "lo", "hi", "a0"),
    [
        (3.0, 2.0, 2.0, 0.0, 10.0, 3.0),  # equal durations: audio starts with the video
        (3.0, 2.0, 3.2, 0.0, 10.0, 2.4),  # longer audio: same centre (4.0)
        (3.0, 3.2, 2.0, 0.0, 10.0, 3.6),  # shorter audio: same centre (4.6)
        (0.0, 2.0, 3.2, 0.0, 10.0, 0.0),  # clamped at the region start
        (8.0, 2.0, 3.2, 0.0, 10.0, 6.8),  # clamped at the region end
        (5.5, 2.0, 3.2, 5.0, 9.0, 5.0),  # clamped inside a region that does not start at 0
        (0.0, 2.0, 3.2, 0.0, 2.5, 0.0),  # region shorter than the audio window: start at lo
    ],
)
def test_audio_window_table(v0: float, span: float, adur: float, lo: float, hi: float, a0: float) -> None:
    assert audio_window(v0, span, adur, lo, hi) == pytest.approx(a0)


def test_sampler_uniform_windows_in_file_time() -> None:
    sampler = ClipSampler(2.0, 3.2, mode="uniform", num_windows=3)
    windows = sampler(5.0, 15.0)
    assert [w.index for w in windows] == [0, 1, 2]
    np.testing.assert_allclose([w.start for w in windows], [5.0, 9.0, 13.0])
    np.testing.assert_allclose([w.end for w in windows], [7.0, 11.0, 15.0])
    # Audio centred on the video window, clamped into [5, 15].
    np.testing.assert_allclose([w.audio_start for w in windows], [5.0, 8.4, 11.8])
    np.testing.assert_allclose([w.audio_end - w.audio_start for w in windows], [3.2] * 3)
    assert not any(w.short for w in windows)
    assert sampler.sample(5.0, 15.0, window_index=1) == windows[1]


def test_sampler_random_deterministic_and_inside_region() -> None:
    sampler = ClipSampler(2.0, mode="random")
    a = sampler.sample(1.0, 5.0, np.random.default_rng([0, 1, 2]))
    b = sampler.sample(1.0, 5.0, np.random.default_rng([0, 1, 2]))
    assert a == b
    for seed in range(50):
        w = sampler.sample(1.0, 5.0, np.random.default_rng(seed))
        assert 1.0 <= w.start <= 3.0 and w.end == pytest.approx(w.start + 2.0)
        assert w.audio_start == w.start  # equal durations
    with pytest.raises(ValueError, match="rng"):
        sampler.sample(0.0, 4.0)


def test_sampler_short_region_flags() -> None:
    w = ClipSampler(2.0, 3.2, mode="center").sample(0.0, 2.5)
    assert w == ClipWindow(0.25, 2.25, 0.0, 3.2, 0, True)  # the video fits, the audio does not
    assert not ClipSampler(2.0, mode="center").sample(0.0, 2.5).short


def test_sampler_from_configs() -> None:
    video, audio = VideoConfig(num_frames=16, fps=8.0), AudioConfig(sample_rate=16000, duration=3.2, fmax=7600.0)
    s = ClipSampler.from_configs(video, audio, "uniform", 4)
    assert (s.span, s.audio_duration, s.mode, s.num_windows) == (2.0, 3.2, "uniform", 4)
    s = ClipSampler.from_configs(None, audio)
    assert (s.span, s.audio_duration) == (3.2, 3.2)
    s = ClipSampler.from_configs(VideoConfig(num_frames=32, fps=10.0), None)
    assert (s.span, s.audio_duration) == (3.2, 3.2)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"span": 0.0},
        {"span": 2.0, "mode": "middle"},
        {"span": 2.0, "num_windows": 0},
        {"span": 2.0, "mode": "center", "num_windows": 2},
        {"span": 2.0, "audio_duration": -1.0},
    ],
)
def test_sampler_rejects_bad_arguments(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        ClipSampler(**kwargs)


def test_select_captions_nearest_k() -> None:
    captions = [
        {"start": 0.0, "end": 1.0, "text": "a"},
        {"start": 1.5, "end": 2.5, "text": "b"},
        {"start": 3.0, "end": 4.0, "text": "c"},
        {"start": 9.0, "end": 10.0, "text": "d"},
    ]
    window = ClipWindow(2.0, 4.0, 2.0, 4.0)
    assert select_captions(captions, window, 2) == ["b", "c"]
    assert select_captions(captions, window, 3) == ["b", "c", "a"]
    assert select_captions(captions, window, 10) == ["b", "c", "a", "d"]
    assert select_captions([], window, 4) == []
