"""The log-mel front end: filterbank against librosa, tones in the right bin, framing, exact STFT values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mmv.audio import LogMelSpectrogram, hz_to_mel, mel_filterbank, mel_to_hz, num_frames
from mmv.config import AudioConfig

PAPER = {"sample_rate": 48000, "n_fft": 2048, "n_mels": 80, "fmin": 80.0, "fmax": 7600.0}
SMALL = {"sample_rate": 16000, "n_fft": 512, "n_mels": 40, "fmin": 0.0, "fmax": 8000.0}


@pytest.mark.parametrize("setting", [PAPER, SMALL], ids=["paper", "small"])
@pytest.mark.parametrize("mel_scale", ["htk", "slaney"])
@pytest.mark.parametrize("norm", [None, "slaney"])
def test_filterbank_matches_librosa(setting: dict, mel_scale: str, norm: str | None) -> None:
    librosa = pytest.importorskip("librosa")
    ours = mel_filterbank(**setting, mel_scale=mel_scale, norm=norm)
    ref = librosa.filters.mel(
        sr=setting["sample_rate"],
        n_fft=setting["n_fft"],
        n_mels=setting["n_mels"],
        fmin=setting["fmin"],
        fmax=setting["fmax"],
        htk=mel_scale == "htk",
        norm=norm,
    )
    assert ours.dtype == torch.float32
    assert tuple(ours.shape) == (setting["n_fft"] // 2 + 1, setting["n_mels"])
    np.testing.assert_allclose(ours.numpy().T, ref, rtol=0, atol=1e-5)


@pytest.mark.parametrize("mel_scale", ["htk", "slaney"])
def test_mel_conversion_round_trip(mel_scale: str) -> None:
    freqs = np.array([0.0, 80.0, 500.0, 999.0, 1000.0, 1001.0, 4000.0, 7600.0, 24000.0])
    np.testing.assert_allclose(mel_to_hz(hz_to_mel(freqs, mel_scale), mel_scale), freqs, rtol=1e-12, atol=1e-9)


def test_filterbank_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="mel_scale"):
        mel_filterbank(**PAPER, mel_scale="bark")
    with pytest.raises(ValueError, match="norm"):
        mel_filterbank(**PAPER, norm="l2")
    with pytest.raises(ValueError, match="fmax"):
        mel_filterbank(48000, 2048, 80, 80.0, 30000.0)


def _htk_centres(n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    # Written independently of mmv.audio: HTK mel = 2595 log10(1 + f / 700).
    lo, hi = (2595.0 * math.log10(1.0 + f / 700.0) for f in (fmin, fmax))
    mels = np.linspace(lo, hi, n_mels + 2)[1:-1]
    return 700.0 * (10.0 ** (mels / 2595.0) - 1.0)


@pytest.mark.parametrize("tone_hz", [1000.0, 3000.0])
def test_tone_lands_in_nearest_mel_bin(tone_hz: float) -> None:
    cfg = AudioConfig()
    frontend = LogMelSpectrogram(cfg)
    t = np.arange(cfg.num_samples) / cfg.sample_rate
    wave = torch.from_numpy(0.5 * np.sin(2 * np.pi * tone_hz * t)).float()
    spec = frontend(wave[None])  # [1, 150, 80]
    # Frames fully inside the signal (the last one is partly zero padding).
    mean = spec[0, :-2].exp().mean(dim=0)
    centres = _htk_centres(cfg.n_mels, cfg.fmin, cfg.fmax)
    expected = int(np.argmin(np.abs(centres - tone_hz)))
    assert int(mean.argmax()) == expected


def test_frame_count_and_shapes() -> None:
    cfg = AudioConfig()
    frontend = LogMelSpectrogram(cfg)
    assert cfg.num_samples == 153_600
    assert frontend.num_frames(153_600) == 150 == num_frames(153_600, 1024)
    assert num_frames(153_601, 1024) == 151
    assert num_frames(1, 1024) == 1
    out = frontend(torch.zeros(2, 153_600))
    assert tuple(out.shape) == (2, 150, 80)
    assert out.dtype == torch.float32
    assert tuple(frontend(torch.zeros(1000)).shape) == (1, 1, 80)
    with pytest.raises(ValueError, match=r"\(2, 3, 4\)"):
        frontend(torch.zeros(2, 3, 4))


def test_stft_frames_match_numpy() -> None:
    cfg = AudioConfig(sample_rate=16000, n_fft=512, hop_length=160, n_mels=40, fmin=0.0, fmax=8000.0)
    frontend = LogMelSpectrogram(cfg)
    rng = np.random.default_rng(0)
    wave = rng.uniform(-1, 1, size=2000)  # not a multiple of the hop: the last frames are end-padded
    frames = num_frames(wave.size, cfg.hop_length)
    assert frames == 13
    padded = np.concatenate([wave, np.zeros((frames - 1) * cfg.hop_length + cfg.n_fft - wave.size)])
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(cfg.n_fft) / cfg.n_fft)  # periodic Hann
    mag = frontend.magnitude(torch.from_numpy(wave).float()[None])[0].double().numpy()
    fb = mel_filterbank(16000, 512, 40, 0.0, 8000.0).double().numpy()
    logmel = frontend(torch.from_numpy(wave).float())[0].double().numpy()
    for i in (0, 5, frames - 1):
        segment = padded[i * cfg.hop_length : i * cfg.hop_length + cfg.n_fft]
        ref = np.abs(np.fft.rfft(segment * window))
        np.testing.assert_allclose(mag[i], ref, rtol=1e-4, atol=1e-3)
        np.testing.assert_allclose(logmel[i], np.log(ref @ fb + cfg.log_offset), rtol=1e-4, atol=1e-4)


def test_silence_gives_log_offset() -> None:
    frontend = LogMelSpectrogram(AudioConfig())
    out = frontend(torch.zeros(1, 4096))
    torch.testing.assert_close(out, torch.full_like(out, math.log(1e-6)))


def test_buffers_not_in_state_dict_and_autocast_stays_float32() -> None:
    cfg = AudioConfig(sample_rate=16000, n_fft=512, hop_length=256, n_mels=40, fmin=0.0, fmax=8000.0)
    frontend = LogMelSpectrogram(cfg)
    assert frontend.state_dict() == {}
    assert {name for name, _ in frontend.named_buffers()} == {"window", "filterbank"}
    wave = torch.rand(2, 4000) * 2 - 1
    ref = frontend(wave)
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        out = frontend(wave.bfloat16())
    assert out.dtype == torch.float32
    # Only the input's rounding to bf16 differs.
    torch.testing.assert_close(out, frontend(wave.bfloat16().float()))
    assert (out - ref).abs().mean() < 0.05
