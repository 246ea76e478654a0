"""Media I/O, video: decoded frames equal what was written, exact frame-index arithmetic, resizing, seeking.

The clip (``conftest.clip``) is an MP4 whose frame ``i`` is a flat colour that encodes ``i``.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from conftest import COLOURS, FPS, NUM_FRAMES, SIZE, _frames, _which_frame

from mmv.data.media import MediaError, VideoInfo, frame_indices, read_frames_at, read_video, video_info, write_video


def test_video_info(clip: Path) -> None:
    assert video_info(clip) == VideoInfo(duration=4.0, fps=8.0, num_frames=32, width=SIZE, height=SIZE, has_audio=True)


def test_video_round_trip_matches_written_frames(clip: Path) -> None:
    frames = read_video(clip, 0.0, NUM_FRAMES, FPS)
    assert frames.shape == (NUM_FRAMES, SIZE, SIZE, 3) and frames.dtype == np.uint8
    assert _which_frame(frames) == list(range(NUM_FRAMES))
    error = np.abs(frames.astype(np.int16) - _frames().astype(np.int16)).mean()
    assert error < 6.0, error  # flat colours at crf 18: only the YUV round trip remains
    # RGB order, not OpenCV's BGR: the first frame is (16, 16, 40).
    assert np.abs(frames[0, 32, 32].astype(int) - [16, 16, 40]).max() <= 4


@pytest.mark.parametrize(
    ("start", "num_frames", "fps", "expected"),
    [
        (1.0, 8, 4, [8, 10, 12, 14, 16, 18, 20, 22]),  # half the source rate: every second frame
        (1.0, 6, 16, [8, 8, 9, 9, 10, 10]),  # twice the source rate: each frame twice
        (0.3, 4, 8, [2, 3, 4, 5]),  # 0.3 s is inside frame 2 (0.25 - 0.375 s)
        (0.0, 3, 3, [0, 2, 5]),  # 0, 1/3, 2/3 s -> floor(0, 2.67, 5.33)
        (3.5, 4, 8, [28, 29, 30, 31]),  # the last frames
        (2.9, 1, 8, [23]),
    ],
)
def test_read_video_picks_the_frame_shown_at_each_time(
    clip: Path, start: float, num_frames: int, fps: float, expected: list[int]
) -> None:
    assert _which_frame(read_video(clip, start, num_frames, fps)) == expected


@pytest.mark.parametrize(
    ("times", "source_fps", "expected"),
    [
        ([0.0, 0.124, 0.125, 0.126, 3.999], 8, [0, 0, 1, 1, 31]),
        ([0.7, 2.3, 0.1 * 3], 10, [7, 23, 3]),  # float noise: 2.3 * 10 = 22.999999999999996
        ([1 / 3, 2 / 3, 1.0], 30, [10, 20, 30]),
        ([1.0, 5 * 1001 / 30000], 30000 / 1001, [29, 5]),  # NTSC 29.97 fps
        ([0.04, 0.0399], 25, [1, 0]),
    ],
)
def test_frame_index_table(times: list[float], source_fps: float, expected: list[int]) -> None:
    assert frame_indices(times, source_fps).tolist() == expected


def test_resize_short_side_and_exact(tmp_path: Path) -> None:
    path = tmp_path / "wide.mp4"
    write_video(path, _frames(4, height=48, width=64), FPS)
    info = video_info(path)
    assert (info.height, info.width, info.num_frames, info.has_audio) == (48, 64, 4, False)
    assert read_video(path, 0.0, 2, FPS, size=24).shape == (2, 24, 32, 3)  # short side 48 -> 24, aspect kept
    small = read_video(path, 0.0, 2, FPS, size=(20, 30))
    assert small.shape == (2, 20, 30, 3)
    assert _which_frame(small) == [0, 1]
    assert np.abs(small[1].astype(int) - COLOURS[1]).mean() < 6  # INTER_AREA of a flat colour stays flat
    with pytest.raises(ValueError):
        read_video(path, 0.0, 2, FPS, size=0)


def test_read_frames_at_keeps_the_order_of_times(clip: Path) -> None:
    frames = read_frames_at(clip, [3.9, 0.0, 1.0, 1.01, 2.5])
    assert frames.shape == (5, SIZE, SIZE, 3)
    assert _which_frame(frames) == [31, 0, 8, 8, 20]
    assert read_frames_at(clip, []).shape == (0, SIZE, SIZE, 3)


def test_video_window_end_tolerance_is_one_frame(clip: Path) -> None:
    # 33 frames from 0 at 8 fps: the last time is 4.0 s = the duration -> frame 31 repeated.
    frames = read_video(clip, 0.0, NUM_FRAMES + 1, FPS)
    assert _which_frame(frames[-3:]) == [30, 31, 31]
    with pytest.raises(MediaError, match="window past the end"):
        read_video(clip, 0.0, NUM_FRAMES + 2, FPS)  # 4.125 s: more than one frame past the end
    with pytest.raises(MediaError, match="window past the end"):
        read_video(clip, 3.5, 8, FPS)
    with pytest.raises(MediaError, match="window past the end"):
        read_frames_at(clip, [0.0, 4.2])


def test_stream_shorter_than_its_header(clip: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A header announcing 34 frames over a stream of 32: one missing frame repeats, two are an error."""
    from mmv.data import media
    from mmv.data.media import video as media_video

    real = media.video_info(clip)
    # read_video looks video_info up in the module that defines it, mmv.data.media.video.
    monkeypatch.setattr(media_video, "video_info", lambda path: replace(real, num_frames=34, duration=34 / FPS))
    frames = read_video(clip, 3.75, 3, FPS)  # frames 30, 31 and the missing 32
    assert _which_frame(frames) == [30, 31, 31]
    with pytest.raises(MediaError, match="unreadable frame 33") as info:
        read_video(clip, 3.75, 4, FPS)
    assert "truncated or corrupt" in info.value.reason
    assert _which_frame(read_frames_at(clip, [4.0, 0.0])) == [31, 0]  # seek straight past the end, then back


def test_read_frames_at_seeks_across_a_long_video(tmp_path: Path) -> None:
    path = tmp_path / "long.mp4"
    n = 300  # 12 s at 25 fps; frame i shows colour i % 32
    write_video(path, _frames(NUM_FRAMES, 16, 16)[np.arange(n) % NUM_FRAMES], 25)
    times = [11.5, 0.5, 6.0, 6.04, 3.3, 11.96, 0.0]
    expected = [int(np.floor(t * 25 + 1e-6)) % NUM_FRAMES for t in times]
    assert _which_frame(read_frames_at(path, times)) == expected
    assert _which_frame(read_video(path, 9.0, 4, 5)) == [(225 + 5 * i) % NUM_FRAMES for i in range(4)]


def test_video_info_fractional_fps(tmp_path: Path) -> None:
    path = tmp_path / "ntsc.mp4"
    write_video(path, _frames(6, 16, 16), 30000 / 1001)
    info = video_info(path)
    assert info.fps == pytest.approx(30000 / 1001, rel=1e-6)
    assert info.num_frames == 6
    assert info.duration == pytest.approx(6 * 1001 / 30000, rel=1e-6)
