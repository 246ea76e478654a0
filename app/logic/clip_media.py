"""Media of bank clips for display: what to play, thumbnails, and log-mel spectrogram images.

No Streamlit here. A clip is played from the bank's short preview (``meta.preview``, an mp4 with sound of the
clip's window, relative to the bank directory) when the bank has one, else from its source video between
``start`` and ``end``. Its spectrogram is the model's own log-mel front end (:class:`mmv.audio.LogMelSpectrogram`,
built from the bank's model config: no weights needed) on the clip's audio window, drawn with the viridis
colour map, low frequencies at the bottom.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

#: Viridis, 10 stops (plotly's ``sequential.Viridis``), interpolated to 256 entries.
_VIRIDIS = (
    "#440154",
    "#482878",
    "#3e4989",
    "#31688e",
    "#26828e",
    "#1f9e89",
    "#35b779",
    "#6ece58",
    "#b5de2b",
    "#fde725",
)


def _lut() -> np.ndarray:
    stops = np.array([[int(h[i : i + 2], 16) for i in (1, 3, 5)] for h in _VIRIDIS], dtype=np.float64)
    x = np.linspace(0, len(stops) - 1, 256)
    return np.stack([np.interp(x, np.arange(len(stops)), stops[:, c]) for c in range(3)], 1).round().astype(np.uint8)


LUT = _lut()


@dataclass(frozen=True)
class ClipMedia:
    """Where to play a clip from.

    Attributes:
        path: a video (or audio) file, or ``None`` when the clip has no playable media.
        start / end: seconds inside ``path`` (``end`` ``None``: to the end).
        is_video: ``path`` holds pictures (else audio only).
    """

    path: Path | None
    start: float = 0.0
    end: float | None = None
    is_video: bool = True


def _value(meta_row: Any, key: str) -> Any:
    value = meta_row.get(key) if hasattr(meta_row, "get") else None
    if value is None or (isinstance(value, float) and math.isnan(value)) or value == "":
        return None
    return value


def _resolve(bank: Any, path: str) -> Path:
    p = Path(path)
    if p.is_absolute():
        return p
    for base in (getattr(bank, "root_of_media", None), getattr(bank, "dir", None)):
        if base is not None and (Path(base) / p).exists():
            return Path(base) / p
    return Path(getattr(bank, "dir", ".")) / p


def clip_media(bank: Any, row: int) -> ClipMedia:
    """What to play for bank row ``row`` (the preview when there is one, else the source window)."""
    rec = bank.meta.iloc[int(row)]
    preview = _value(rec, "preview")
    if preview is not None and (Path(bank.dir) / preview).is_file():
        return ClipMedia(Path(bank.dir) / preview, 0.0, None, True)
    start = float(_value(rec, "start") or 0.0)
    end = _value(rec, "end")
    end = float(end) if end is not None else None
    video = _value(rec, "video_path")
    if video is not None:
        return ClipMedia(_resolve(bank, str(video)), start, end, True)
    audio = _value(rec, "audio_path")
    if audio is not None:
        return ClipMedia(_resolve(bank, str(audio)), start, end, False)
    return ClipMedia(None)


def thumbnail(bank: Any, row: int) -> Path | None:
    """The clip's thumbnail JPEG, or ``None``."""
    value = _value(bank.meta.iloc[int(row)], "thumbnail")
    if value is None:
        return None
    path = Path(bank.dir) / value
    return path if path.is_file() else None


def spectrogram_image(logmel: np.ndarray, scale: int = 2) -> np.ndarray:
    """A log-mel spectrogram ``[frames, mel_bins]`` as an RGB image ``[mel_bins * scale, frames * scale, 3]``.

    Values are mapped linearly from their 2nd to 99.5th percentile onto viridis (robust to silence, where
    ``log(1e-6)`` would squash everything else); time runs left to right, low frequencies at the bottom.
    """
    x = np.asarray(logmel, dtype=np.float64).T[::-1]  # [mel, frames], high frequencies first (top)
    lo, hi = np.percentile(x, 2.0), np.percentile(x, 99.5)
    idx = np.zeros_like(x) if hi <= lo else np.clip((x - lo) / (hi - lo), 0.0, 1.0)
    img = LUT[(idx * 255).round().astype(np.int64)]
    if scale > 1:
        img = img.repeat(scale, axis=0).repeat(scale, axis=1)
    return np.ascontiguousarray(img)


def audio_config(bank: Any) -> Any:
    """The :class:`~mmv.config.AudioConfig` of the model a bank was built with (for spectrograms; no weights needed)."""
    from mmv.config import MMVConfig

    cfg = bank.config
    cfg = cfg.get("config", cfg) if isinstance(cfg, dict) else cfg
    return MMVConfig.from_dict(cfg).audio if isinstance(cfg, dict) else cfg.audio


def clip_audio(bank: Any, row: int, audio_config: Any) -> np.ndarray | None:
    """The clip's audio window at the model's sample rate (float32 ``[N]``), or ``None`` when it has no sound.

    The window is the model's ``duration`` seconds centred in the clip (as the bank's single-window embedding).
    """
    from mmv.data.media import MediaError, read_audio

    rec = bank.meta.iloc[int(row)]
    if _value(rec, "has_audio") is False:
        return None
    path = _value(rec, "audio_path") or _value(rec, "video_path")
    if path is None:
        return None
    start = float(_value(rec, "start") or 0.0)
    end = _value(rec, "end")
    duration = float(audio_config.duration)
    if end is not None:
        start = start + max(0.0, (float(end) - start - duration) / 2.0)
        duration = min(duration, float(end) - start)
    try:
        return read_audio(_resolve(bank, str(path)), start, duration, int(audio_config.sample_rate))
    except (MediaError, ValueError):
        return None


def log_mel_of(wave: np.ndarray, audio_config: Any) -> np.ndarray:
    """The model's log-mel front end on a waveform ``[N]`` -> float32 ``[frames, mel_bins]`` (no weights needed)."""
    import torch

    from mmv.audio import LogMelSpectrogram

    with torch.no_grad():
        return LogMelSpectrogram(audio_config)(torch.as_tensor(wave, dtype=torch.float32)[None])[0].numpy()
