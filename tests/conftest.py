"""Shared test fixtures and helpers: ``__main__`` kept across AppTest runs, and those of the media tests
(``tests/test_media_*.py``).

Every media file is synthesised in a temporary directory: an MP4 whose frame ``i`` is a flat colour that
encodes ``i`` and whose audio is a 440 Hz tone (:func:`clip`), and a WAV whose samples are known exactly
(:func:`ramp_wav`). The media test modules import the constants and helpers from here.
"""

from __future__ import annotations

import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf

from mmv.data.media import write_video

FPS = 8
NUM_FRAMES = 32  # 4 s
SIZE = 64
SR = 16000
TONE = 440.0


@pytest.fixture(autouse=True)
def _keep_main_module():
    """Puts the real ``__main__`` back after each test.

    Streamlit's AppTest runs the app script as ``__main__`` and leaves it in ``sys.modules``; a later test that
    starts "spawn" processes (the toy world's pool) would then run the app in every child, which dies, and the
    pool replaces it forever.
    """
    main = sys.modules["__main__"]
    yield
    sys.modules["__main__"] = main


@pytest.fixture(scope="module")
def one_faiss_thread():
    """faiss on one OpenMP thread for a module (``pytestmark = pytest.mark.usefixtures("one_faiss_thread")``):
    spinning OpenMP threads on 2 shared cores make small faiss calls many times slower."""
    import faiss

    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(before)


# 32 flat colours on a 4 x 4 x 2 grid of RGB levels: any two differ by >= 64 in some channel.
_LEVELS = np.array([16, 80, 144, 208])
COLOURS = np.array([(r, g, b) for r in _LEVELS for g in _LEVELS for b in (40, 200)], dtype=np.uint8)


def _frames(n: int = NUM_FRAMES, height: int = SIZE, width: int = SIZE) -> np.ndarray:
    """``[n, H, W, 3]`` uint8, frame ``i`` filled with ``COLOURS[i]``."""
    return np.broadcast_to(COLOURS[:n, None, None, :], (n, height, width, 3)).copy()


def _tone(seconds: float, sr: int = SR, freq: float = TONE, amp: float = 0.5) -> np.ndarray:
    t = np.arange(round(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _which_frame(frames: np.ndarray) -> list[int]:
    """For each decoded frame, the index of the nearest written colour."""
    mean = frames.reshape(len(frames), -1, 3).mean(axis=1)  # [T, 3]
    return np.abs(mean[:, None, :] - COLOURS[None].astype(float)).sum(-1).argmin(1).tolist()


def _dominant_hz(x: np.ndarray, sr: int) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / sr)[spectrum.argmax()])


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


def _write_m4a(path: Path, channels: list[np.ndarray], sr: int) -> None:
    """An audio-only AAC .m4a (no video stream), one array per channel."""
    data = np.stack(channels).astype(np.float32)  # [C, S]
    with av.open(str(path), "w", format="mp4") as c:
        stream = c.add_stream("aac", rate=sr, layout="stereo" if len(channels) == 2 else "mono")
        frame = av.AudioFrame.from_ndarray(data, format="fltp", layout=stream.layout.name)
        frame.sample_rate, frame.pts, frame.time_base = sr, 0, Fraction(1, sr)
        c.mux(stream.encode(frame))
        c.mux(stream.encode(None))


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 4-s 64x64 8-fps MP4 (crf 18) with a 440 Hz tone at 16 kHz."""
    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    write_video(path, _frames(), FPS, audio=_tone(NUM_FRAMES / FPS), sample_rate=SR, crf=18)
    return path


@pytest.fixture(scope="module")
def ramp_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """1 s of 16-bit mono at 16 kHz whose sample k holds the integer k - 16000 (a ramp through zero)."""
    path = tmp_path_factory.mktemp("ramp") / "ramp.wav"
    sf.write(str(path), (np.arange(16000) - 16000).astype(np.int16), 16000, subtype="PCM_16")
    return path
