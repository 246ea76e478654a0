"""Media I/O, audio: decoded samples equal what was written, exact window arithmetic, FLAC cache, resampling.

The files are synthesised in temporary directories: the clip's 440 Hz AAC track (``conftest.clip``), and
WAV/FLAC files whose samples are known exactly.
"""

from __future__ import annotations

import os
import wave
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import FPS, NUM_FRAMES, SR, TONE, _dominant_hz, _rms, _tone, _write_m4a

from mmv.data.media import AudioInfo, MediaError, audio_info, audio_window, extract_audio, read_audio, resample_audio


def test_read_audio_from_mp4_returns_the_tone(clip: Path, tmp_path: Path) -> None:
    x = read_audio(clip, 0.5, 2.0, SR, cache_dir=tmp_path)
    assert x.shape == (32000,) and x.dtype == np.float32
    assert abs(_dominant_hz(x, SR) - TONE) < 2.0
    assert _rms(x) == pytest.approx(0.5 / np.sqrt(2), rel=0.1)
    # In sync with the written tone, sample for sample (AAC priming is removed): lossy, so a loose bound.
    assert np.abs(x - _tone(4.0)[8000:40000]).max() < 0.1
    y = read_audio(clip, 0.5, 2.0, 48000, cache_dir=tmp_path)  # resampled from the cached 16 kHz track
    assert y.shape == (96000,)
    assert abs(_dominant_hz(y, 48000) - TONE) < 2.0
    assert np.abs(y[::3] - x).max() < 0.01  # 3x upsampling keeps the original samples (nearly)


def test_container_audio_is_extracted_once(clip: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    read_audio(clip, 0.0, 1.0, SR, cache_dir=cache)
    flac = extract_audio(clip, cache)
    assert flac.parent == cache and flac.suffix == ".flac"
    assert [p.name for p in cache.iterdir()] == [flac.name]  # one file, no temporary left
    assert sf.info(str(flac)).samplerate == SR and sf.info(str(flac)).channels == 1
    assert sf.info(str(flac)).frames == NUM_FRAMES / FPS * SR  # the encoder's end padding is cut
    stamp = flac.stat().st_mtime_ns
    os.utime(flac, ns=(stamp - 10**9, stamp - 10**9))  # back-date: a rewrite would move it forward
    read_audio(clip, 1.0, 1.0, SR, cache_dir=cache)
    assert extract_audio(clip, cache) == flac
    assert flac.stat().st_mtime_ns == stamp - 10**9
    assert len(list(cache.iterdir())) == 1


def test_cache_dir_from_environment(clip: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MMV_CACHE_DIR", str(tmp_path))
    flac = extract_audio(clip)
    assert flac.parent == tmp_path / "audio" and flac.is_file()


def test_audio_info(clip: Path, tmp_path: Path) -> None:
    assert audio_info(clip) == AudioInfo(duration=4.0, sample_rate=SR, channels=1)
    path = tmp_path / "s.wav"
    sf.write(str(path), np.zeros((9600, 2), np.int16), 96000, subtype="PCM_24")
    assert audio_info(path) == AudioInfo(duration=0.1, sample_rate=96000, channels=2)


def test_stereo_m4a_is_mixed_to_mono(tmp_path: Path) -> None:
    path = tmp_path / "stereo.m4a"
    _write_m4a(path, [_tone(2.0, amp=0.6), _tone(2.0, amp=0.2)], SR)
    assert audio_info(path).channels == 2
    x = read_audio(path, 0.5, 1.0, SR, cache_dir=tmp_path / "cache")
    assert _rms(x) == pytest.approx(0.4 / np.sqrt(2), rel=0.1)  # mean of the channels: amplitude 0.4
    assert abs(_dominant_hz(x, SR) - TONE) < 2.0


@pytest.mark.parametrize(
    ("start", "duration", "native", "rate", "expected"),
    [
        (0.5, 1.0, 16000, 16000, (8000, 16000, 16000)),
        (0.25, 0.5, 96000, 16000, (24000, 48000, 8000)),
        (1 / 3, 0.1, 44100, 16000, (14700, 4410, 1600)),
        (0.00003, 0.001, 16000, 16000, (0, 16, 16)),  # 0.48 samples -> 0
        (0.1, 0.0333, 48000, 16000, (4800, 1599, 533)),  # 532.8 -> 533 output samples, ceil(533 * 3) input
        (3.2, 3.2, 48000, 48000, (153600, 153600, 153600)),  # the paper's 3.2 s at 48 kHz
        (1.0, 1.0, 8000, 48000, (8000, 8000, 48000)),
    ],
)
def test_audio_window_table(
    start: float, duration: float, native: int, rate: int, expected: tuple[int, int, int]
) -> None:
    assert audio_window(start, duration, native, rate) == expected


@pytest.mark.parametrize(
    ("start", "duration", "first", "length"),
    [
        (0.0, 0.5, 0, 8000),
        (0.25, 0.25, 4000, 4000),
        (0.1, 0.0333, 1600, 533),
        (0.00003, 0.001, 0, 16),
        (0.99, 0.01, 15840, 160),  # ends exactly at the end of the file
    ],
)
def test_wav_window_is_exact(ramp_wav: Path, start: float, duration: float, first: int, length: int) -> None:
    x = read_audio(ramp_wav, start, duration, 16000)
    assert x.shape == (length,)
    np.testing.assert_array_equal(x, (np.arange(first, first + length) - 16000) / 32768.0)


def test_wav_short_tail_is_zero_padded_long_one_is_an_error(ramp_wav: Path) -> None:
    x = read_audio(ramp_wav, 0.995, 0.013, 16000)  # 8 ms past the end (< 10 ms)
    assert x.shape == (208,)
    np.testing.assert_array_equal(x[:80], (np.arange(15920, 16000) - 16000) / 32768.0)
    assert not x[80:].any()
    with pytest.raises(MediaError, match="window past the end"):
        read_audio(ramp_wav, 0.5, 0.6, 16000)  # 100 ms past the end
    with pytest.raises(MediaError, match="window past the end"):
        read_audio(ramp_wav, 2.0, 0.1, 16000)


def test_unsigned_8bit_wav(tmp_path: Path) -> None:
    path = tmp_path / "u8.wav"
    raw = np.arange(256, dtype=np.uint8).repeat(4)  # every 8-bit value, 4 times
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(1)  # 8-bit WAV is unsigned, 128 = silence
        w.setframerate(8000)
        w.writeframes(raw.tobytes())
    assert audio_info(path) == AudioInfo(duration=0.128, sample_rate=8000, channels=1)
    x = read_audio(path, 0.0, 0.128, 8000)
    np.testing.assert_array_equal(x, (raw.astype(np.float32) - 128) / 128)


@pytest.fixture(scope="module")
def stereo_96k(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    """1 s of 24-bit stereo at 96 kHz: left = 1 kHz + 30 kHz, right = 1 kHz; returns the int samples."""
    t = np.arange(96000) / 96000
    left = 0.5 * np.sin(2 * np.pi * 1000 * t) + 0.3 * np.sin(2 * np.pi * 30000 * t)
    right = 0.5 * np.sin(2 * np.pi * 1000 * t)
    ints = np.round(np.stack([left, right], 1) * 2**23).astype(np.int32)  # [S, 2]
    path = tmp_path_factory.mktemp("hi") / "stereo96k.wav"
    sf.write(str(path), ints << 8, 96000, subtype="PCM_24")  # int32 full scale -> 24-bit
    return path, ints


def test_96k_stereo_is_the_mean_of_channels(stereo_96k: tuple[Path, np.ndarray]) -> None:
    path, ints = stereo_96k
    x = read_audio(path, 0.25, 0.5, 96000)
    assert x.shape == (48000,)
    expected = (ints[24000:72000] / 2**23).mean(axis=1)
    np.testing.assert_allclose(x, expected, rtol=0, atol=1e-7)


def test_96k_to_16k_is_band_limited(stereo_96k: tuple[Path, np.ndarray]) -> None:
    path, ints = stereo_96k
    x = read_audio(path, 0.25, 0.5, SR)
    assert x.shape == (8000,)
    assert abs(_dominant_hz(x, SR) - 1000.0) < 2.0
    assert _rms(x) == pytest.approx(0.5 / np.sqrt(2), rel=0.02)
    # The 30 kHz tone of the left channel (0.15 after mixing) would alias to 2 kHz without a low-pass.
    spectrum = np.abs(np.fft.rfft(x)) / (len(x) / 2)  # amplitude per 2-Hz bin
    freqs = np.fft.rfftfreq(len(x), 1 / SR)
    assert spectrum[np.argmin(np.abs(freqs - 2000))] < 1e-3
    # The window is read with filter margins: it equals the same slice of the whole file resampled.
    full = resample_audio((ints / 2**23).mean(axis=1), 96000, SR)
    np.testing.assert_allclose(x, full[4000:12000], rtol=0, atol=1e-6)


def test_numpy_resampler_matches_scipy() -> None:
    signal = pytest.importorskip("scipy.signal")
    from mmv.data.media.audio import _resample_numpy

    x = np.random.default_rng(0).standard_normal(3000)
    for up, down in [(1, 6), (160, 441), (441, 160), (3, 2)]:
        np.testing.assert_allclose(_resample_numpy(x, up, down), signal.resample_poly(x, up, down), atol=1e-12)


def test_flac_window_is_exact(tmp_path: Path) -> None:
    path = tmp_path / "ramp.flac"
    ints = (np.arange(48000) * 7 % 65536 - 32768).astype(np.int16)
    sf.write(str(path), ints, 48000, format="FLAC", subtype="PCM_16")
    x = read_audio(path, 0.5, 0.25, 48000)
    np.testing.assert_array_equal(x, ints[24000:36000] / 32768.0)
