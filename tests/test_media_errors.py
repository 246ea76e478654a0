"""Media I/O, errors: invalid arguments, and a corpus of broken files that must each fail with a
:class:`MediaError` naming the problem.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
import soundfile as sf
from conftest import FPS, SR, TONE, _dominant_hz, _frames, _tone, _write_m4a

from mmv.data.media import MediaError, audio_info, read_audio, read_frames_at, read_video, video_info, write_video


def test_invalid_arguments_are_value_errors(clip: Path, ramp_wav: Path) -> None:
    with pytest.raises(ValueError):
        read_video(clip, -0.1, 4, FPS)
    with pytest.raises(ValueError):
        read_video(clip, 0.0, 0, FPS)
    with pytest.raises(ValueError):
        read_video(clip, 0.0, 4, 0.0)
    with pytest.raises(ValueError):
        read_audio(ramp_wav, 0.0, 0.0, SR)
    with pytest.raises(ValueError):
        read_audio(ramp_wav, -1.0, 0.1, SR)


# ------------------------------------------------------------------------------------- broken files


def _corpus(root: Path, good: Path) -> dict[str, Path]:
    """The broken files (and ``audio_only``, valid audio but no video), named by kind."""
    files = {}
    files["zero"] = root / "zero.mp4"
    files["zero"].write_bytes(b"")
    data = good.read_bytes()
    files["truncated"] = root / "truncated.mp4"
    files["truncated"].write_bytes(data[: len(data) // 2])
    files["silent"] = root / "silent.mp4"
    write_video(files["silent"], _frames(4, 16, 16), FPS)
    files["audio_only"] = root / "audio_only.m4a"
    _write_m4a(files["audio_only"], [_tone(1.0)], SR)
    files["png"] = root / "image.mp4"
    _, png = cv2.imencode(".png", np.zeros((8, 8, 3), np.uint8))
    files["png"].write_bytes(png.tobytes())
    files["text"] = root / "notes.mp4"
    files["text"].write_text("WEBVTT\n\n00:00.000 --> 00:01.000\nthis is a caption, not a video\n")
    files["wav_as_flac"] = root / "sound.flac"  # a WAV named .flac
    sf.write(str(files["wav_as_flac"]), np.zeros(160, np.int16), 16000, format="WAV", subtype="PCM_16")
    files["garbage"] = root / "garbage.mkv"
    files["garbage"].write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    files["bad_wav"] = root / "bad.wav"
    files["bad_wav"].write_bytes(b"RIFF\x24\x00\x00\x00WAVEjunkjunkjunkjunk" + bytes(64))
    files["missing"] = root / "missing.mp4"
    return files


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory, clip: Path) -> dict[str, Path]:
    return _corpus(tmp_path_factory.mktemp("broken"), clip)


@pytest.mark.parametrize(
    ("name", "reader", "keyword"),
    [
        ("zero", "read_video", "empty file"),
        ("zero", "read_audio", "empty file"),
        ("truncated", "read_video", "truncated"),
        ("truncated", "read_audio", "truncated"),
        ("truncated", "video_info", "truncated"),
        ("silent", "read_audio", "no audio stream"),
        ("silent", "audio_info", "no audio stream"),
        ("audio_only", "read_video", "no video stream"),
        ("audio_only", "video_info", "no video stream"),
        ("audio_only", "read_frames_at", "no video stream"),
        ("png", "read_video", "wrong extension"),
        ("text", "read_video", "wrong extension"),
        ("text", "read_audio", "wrong extension"),
        ("wav_as_flac", "read_audio", "wrong extension"),
        ("garbage", "read_video", "corrupt or unsupported"),
        ("bad_wav", "read_audio", "corrupt or unsupported"),
        ("missing", "read_video", "file not found"),
        ("missing", "read_audio", "file not found"),
        ("missing", "audio_info", "file not found"),
    ],
)
def test_broken_files_raise_media_error(
    corpus: dict[str, Path], tmp_path: Path, name: str, reader: str, keyword: str
) -> None:
    path = corpus[name]
    call = {
        "read_video": lambda: read_video(path, 0.0, 4, FPS),
        "read_frames_at": lambda: read_frames_at(path, [0.0]),
        "video_info": lambda: video_info(path),
        "read_audio": lambda: read_audio(path, 0.0, 0.5, SR, cache_dir=tmp_path),
        "audio_info": lambda: audio_info(path),
    }[reader]
    with pytest.raises(MediaError) as info:
        call()
    err = info.value
    assert keyword in err.reason
    assert err.path == str(path)
    assert str(err) == f"{path}: {err.reason}"
    assert not list(tmp_path.glob("*.tmp"))  # a failed extraction leaves nothing in the cache


def test_audio_only_m4a_is_still_valid_audio(corpus: dict[str, Path], tmp_path: Path) -> None:
    x = read_audio(corpus["audio_only"], 0.25, 0.5, SR, cache_dir=tmp_path)
    assert x.shape == (8000,) and abs(_dominant_hz(x, SR) - TONE) < 2.0


def test_window_past_the_end_of_a_container(clip: Path, tmp_path: Path) -> None:
    with pytest.raises(MediaError, match="window past the end") as info:
        read_audio(clip, 3.5, 1.0, SR, cache_dir=tmp_path)
    assert info.value.path == str(clip)  # the error names the video, not the cached FLAC
    with pytest.raises(MediaError, match="window past the end"):
        read_video(clip, 3.0, 16, FPS)


def test_media_error_pickles_and_chains() -> None:
    err = MediaError("/x/y.mp4", "no video stream")
    copy = pickle.loads(pickle.dumps(err))
    assert (copy.path, copy.reason, str(copy)) == ("/x/y.mp4", "no video stream", "/x/y.mp4: no video stream")


def test_library_errors_are_chained(corpus: dict[str, Path]) -> None:
    with pytest.raises(MediaError) as info:
        video_info(corpus["garbage"])
    assert isinstance(info.value.__cause__, av.FFmpegError)
