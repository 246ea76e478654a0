"""Media I/O, writing: invalid input is rejected before anything is written, files are replaced atomically."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import FPS, _frames, _tone

from mmv.data.media import AudioInfo, audio_info, read_audio, video_info, write_audio, write_video


@pytest.mark.parametrize(
    ("frames", "kwargs"),
    [
        (np.zeros((2, 63, 64, 3), np.uint8), {}),  # odd height
        (np.zeros((2, 64, 65, 3), np.uint8), {}),  # odd width
        (np.zeros((2, 64, 64, 3), np.float32), {}),  # float frames
        (np.zeros((2, 64, 64, 3), np.int16), {}),
        (np.zeros((64, 64, 3), np.uint8), {}),  # no time axis
        (np.zeros((2, 64, 64, 4), np.uint8), {}),  # RGBA
        (np.zeros((0, 64, 64, 3), np.uint8), {}),  # no frames
        (np.zeros((2, 64, 64, 3), np.uint8), {"audio": np.zeros(1600, np.int16)}),  # integer audio
        (np.zeros((2, 64, 64, 3), np.uint8), {"audio": np.zeros((1600, 2), np.float32)}),  # stereo
        (np.zeros((2, 64, 64, 3), np.uint8), {"audio": np.zeros(1600, np.float32), "sample_rate": 12345}),
        (np.zeros((2, 64, 64, 3), np.uint8), {"crf": 52}),
        (np.zeros((2, 64, 64, 3), np.uint8), {"fps": 0}),
    ],
)
def test_write_video_rejects_bad_input(tmp_path: Path, frames: np.ndarray, kwargs: dict) -> None:
    kwargs = {"fps": FPS, **kwargs}
    with pytest.raises(ValueError):
        write_video(tmp_path / "bad.mp4", frames, **kwargs)
    assert list(tmp_path.iterdir()) == []


def test_write_video_is_atomic_and_replaces(tmp_path: Path) -> None:
    path = tmp_path / "out.mp4"
    path.write_bytes(b"old")
    write_video(path, _frames(2, 16, 16), FPS)
    assert [p.name for p in tmp_path.iterdir()] == ["out.mp4"]  # no temporary file left behind
    assert video_info(path).num_frames == 2


@pytest.mark.parametrize("suffix", [".wav", ".flac"])
def test_write_audio_round_trip(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"a{suffix}"
    x = _tone(0.5, sr=22050, amp=0.9)
    write_audio(path, x, 22050)
    assert audio_info(path) == AudioInfo(duration=0.5, sample_rate=22050, channels=1)
    y = read_audio(path, 0.0, 0.5, 22050)
    np.testing.assert_allclose(y, x, rtol=0, atol=1.01 / 32767)  # 16-bit quantisation only
    stereo = np.stack([x, -x], axis=1)
    write_audio(path, stereo, 22050)
    assert audio_info(path).channels == 2
    assert np.abs(read_audio(path, 0.1, 0.2, 22050)).max() < 1e-4  # x and -x average to silence
    assert [p.name for p in tmp_path.iterdir()] == [path.name]
    with pytest.raises(ValueError):
        write_audio(tmp_path / "a.mp3", x, 22050)
