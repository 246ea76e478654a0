"""The audio front end: waveform -> log-mel spectrogram, as the audio tower expects it.

The paper's setting (``shared/mmv_spec.md`` section 1.2, DMVR's ``compute_audio_spectrogram`` defaults):
48 kHz mono in [-1, 1], a 2048-sample periodic Hann window with hop 1024 and FFT length 2048, the
*magnitude* (not power) of the STFT, 80 mel bins over 80-7600 Hz, then ``log(mel + 1e-6)``.

Framing follows TensorFlow's ``tf.signal.stft(..., pad_end=True)``: no centering, and the end of the
signal is zero-padded so that ``ceil(S / hop)`` frames exist (153,600 samples -> 150 frames). The
spectrogram is returned time-major, ``[B, frames, n_mels]``, the "time = height, mel = width" image the
audio ResNet takes.

The mel filterbank is computed here from the formulas (no librosa at run time) and matches
``librosa.filters.mel`` for both mel scales (``'htk'``, ``'slaney'``) and both normalisations
(``None``, ``'slaney'``); ``tests/test_audio.py`` checks this.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from mmv.config import AudioConfig

MEL_SCALES = ("htk", "slaney")
MEL_NORMS = (None, "slaney")

# Slaney's "Auditory Toolbox" scale: linear below 1 kHz (200/3 Hz per mel), logarithmic above.
_SLANEY_F_SP = 200.0 / 3.0
_SLANEY_MIN_LOG_HZ = 1000.0
_SLANEY_MIN_LOG_MEL = _SLANEY_MIN_LOG_HZ / _SLANEY_F_SP  # 15.0
_SLANEY_LOGSTEP = math.log(6.4) / 27.0


def hz_to_mel(freq: np.ndarray | float, mel_scale: str = "htk") -> np.ndarray:
    """Converts frequencies in Hz to mels (float64).

    Args:
        freq: frequencies in Hz, any shape.
        mel_scale: ``'htk'`` (``2595 log10(1 + f / 700)``) or ``'slaney'`` (linear below 1 kHz, log above).

    Returns:
        Mels, same shape as ``freq``.
    """
    f = np.asarray(freq, dtype=np.float64)
    if mel_scale == "htk":
        return 2595.0 * np.log10(1.0 + f / 700.0)
    if mel_scale != "slaney":
        raise ValueError(f"mel_scale: must be one of {MEL_SCALES}, got {mel_scale!r}")
    linear = f / _SLANEY_F_SP
    logpart = _SLANEY_MIN_LOG_MEL + np.log(np.maximum(f, _SLANEY_MIN_LOG_HZ) / _SLANEY_MIN_LOG_HZ) / _SLANEY_LOGSTEP
    return np.where(f >= _SLANEY_MIN_LOG_HZ, logpart, linear)


def mel_to_hz(mels: np.ndarray | float, mel_scale: str = "htk") -> np.ndarray:
    """Inverse of :func:`hz_to_mel` (float64)."""
    m = np.asarray(mels, dtype=np.float64)
    if mel_scale == "htk":
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)
    if mel_scale != "slaney":
        raise ValueError(f"mel_scale: must be one of {MEL_SCALES}, got {mel_scale!r}")
    linear = _SLANEY_F_SP * m
    logpart = _SLANEY_MIN_LOG_HZ * np.exp(_SLANEY_LOGSTEP * (np.maximum(m, _SLANEY_MIN_LOG_MEL) - _SLANEY_MIN_LOG_MEL))
    return np.where(m >= _SLANEY_MIN_LOG_MEL, logpart, linear)


def mel_filterbank(
    sample_rate: int,
    n_fft: int,
    n_mels: int,
    fmin: float,
    fmax: float,
    mel_scale: str = "htk",
    norm: str | None = None,
) -> torch.Tensor:
    """Triangular mel filters mapping an rFFT magnitude spectrum to mel bins.

    ``n_mels + 2`` points are spaced evenly on the mel scale between ``fmin`` and ``fmax``; filter ``m``
    rises linearly (in Hz) from point ``m`` to point ``m + 1`` and falls back to zero at ``m + 2``, peak 1.
    With ``norm='slaney'`` each triangle is divided by half its width in Hz so that all have equal area.
    This is the construction of ``librosa.filters.mel(..., htk=(mel_scale == 'htk'), norm=norm)``; the
    arithmetic is float64 and the result is cast to float32.

    Args:
        sample_rate: sampling rate in Hz.
        n_fft: FFT length; the spectrum has ``n_fft // 2 + 1`` bins at ``k * sample_rate / n_fft`` Hz.
        n_mels: number of mel bins.
        fmin: lowest filter edge in Hz.
        fmax: highest filter edge in Hz (at most ``sample_rate / 2``).
        mel_scale: ``'htk'`` or ``'slaney'``.
        norm: ``None`` (peak-1 triangles) or ``'slaney'`` (area-normalised triangles).

    Returns:
        ``[n_fft // 2 + 1, n_mels]`` float32 matrix, so that ``mel = magnitude @ filterbank``. (Note this
        is the transpose of librosa's ``[n_mels, n_fft // 2 + 1]``.)
    """
    if mel_scale not in MEL_SCALES:
        raise ValueError(f"mel_scale: must be one of {MEL_SCALES}, got {mel_scale!r}")
    if norm not in MEL_NORMS:
        raise ValueError(f"norm: must be one of {MEL_NORMS}, got {norm!r}")
    if n_fft <= 0 or n_mels <= 0 or sample_rate <= 0:
        raise ValueError(f"sample_rate, n_fft and n_mels must be positive, got {sample_rate}, {n_fft}, {n_mels}")
    if not 0.0 <= fmin < fmax <= sample_rate / 2:
        raise ValueError(f"need 0 <= fmin < fmax <= sample_rate / 2, got fmin={fmin}, fmax={fmax}")

    fft_freqs = np.arange(n_fft // 2 + 1, dtype=np.float64) * (float(sample_rate) / n_fft)
    mel_points = np.linspace(hz_to_mel(fmin, mel_scale), hz_to_mel(fmax, mel_scale), n_mels + 2)
    hz_points = mel_to_hz(mel_points, mel_scale)  # [n_mels + 2]
    widths = np.diff(hz_points)  # [n_mels + 1]
    offsets = hz_points[:, None] - fft_freqs[None, :]  # [n_mels + 2, n_bins]
    rising = -offsets[:-2] / widths[:-1, None]  # (f - left) / (centre - left)
    falling = offsets[2:] / widths[1:, None]  # (right - f) / (right - centre)
    weights = np.maximum(0.0, np.minimum(rising, falling))  # [n_mels, n_bins]
    if norm == "slaney":
        weights *= (2.0 / (hz_points[2:] - hz_points[:-2]))[:, None]
    return torch.from_numpy(np.ascontiguousarray(weights.T)).to(torch.float32)


def num_frames(num_samples: int, hop_length: int) -> int:
    """Frames of an end-padded STFT: ``ceil(num_samples / hop_length)`` (TF ``pad_end=True``)."""
    if num_samples <= 0:
        raise ValueError(f"num_samples: must be positive, got {num_samples}")
    return -(-num_samples // hop_length)


class LogMelSpectrogram(nn.Module):
    """Waveform ``[B, S]`` (or ``[S]``) in [-1, 1] -> log-mel spectrogram ``[B, frames, n_mels]``.

    ``frames = ceil(S / hop_length)``: the signal is zero-padded at the end to
    ``(frames - 1) * hop_length + n_fft`` samples and framed without centering. Each frame is multiplied
    by a periodic Hann window of length ``n_fft``; the magnitude of its rFFT is mapped to mel bins with
    :func:`mel_filterbank` and ``log(mel + log_offset)`` is returned.

    The computation is always float32, also under autocast (a bf16 STFT would be far too coarse for
    ``log(x + 1e-6)``); cast the output yourself if the tower wants a lower precision. The window and the
    filterbank are non-persistent buffers: they follow ``.to(device)`` but are not in the state dict,
    since the config determines them.

    Args:
        cfg: the :class:`~mmv.config.AudioConfig` giving sample rate, FFT/hop sizes, mel range, scale,
            normalisation and log offset.
    """

    window: torch.Tensor
    filterbank: torch.Tensor

    def __init__(self, cfg: AudioConfig) -> None:
        super().__init__()
        self.sample_rate = cfg.sample_rate
        self.n_fft = cfg.n_fft
        self.hop_length = cfg.hop_length
        self.n_mels = cfg.n_mels
        self.log_offset = float(cfg.log_offset)
        window = torch.hann_window(cfg.n_fft, periodic=True, dtype=torch.float64).to(torch.float32)
        fb = mel_filterbank(cfg.sample_rate, cfg.n_fft, cfg.n_mels, cfg.fmin, cfg.fmax, cfg.mel_scale, cfg.mel_norm)
        self.register_buffer("window", window, persistent=False)
        self.register_buffer("filterbank", fb, persistent=False)  # [n_fft // 2 + 1, n_mels]

    def num_frames(self, num_samples: int) -> int:
        """Frames produced for a waveform of ``num_samples`` samples: ``ceil(num_samples / hop_length)``."""
        return num_frames(num_samples, self.hop_length)

    def magnitude(self, waveform: torch.Tensor) -> torch.Tensor:
        """The end-padded magnitude STFT.

        Args:
            waveform: ``[B, S]`` float tensor.

        Returns:
            ``[B, frames, n_fft // 2 + 1]`` float32 magnitudes.
        """
        x = waveform.float()
        frames = self.num_frames(x.shape[-1])
        total = (frames - 1) * self.hop_length + self.n_fft
        x = nn.functional.pad(x, (0, total - x.shape[-1]))
        segments = x.unfold(-1, self.n_fft, self.hop_length)  # [B, frames, n_fft]
        spectrum = torch.fft.rfft(segments * self.window, n=self.n_fft, dim=-1)
        return spectrum.abs()

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        """Computes the log-mel spectrogram.

        Args:
            waveform: ``[B, S]`` or ``[S]`` float tensor, values in [-1, 1].

        Returns:
            ``[B, ceil(S / hop_length), n_mels]`` float32 (``[1, ...]`` for a ``[S]`` input).
        """
        if waveform.dim() == 1:
            waveform = waveform.unsqueeze(0)
        if waveform.dim() != 2:
            raise ValueError(f"waveform: expected [B, S] or [S], got shape {tuple(waveform.shape)}")
        if waveform.shape[-1] == 0:
            raise ValueError(f"waveform: needs at least one sample, got shape {tuple(waveform.shape)}")
        with torch.autocast(device_type=waveform.device.type, enabled=False):
            mel = self.magnitude(waveform) @ self.filterbank.float()
            return torch.log(mel + self.log_offset)
