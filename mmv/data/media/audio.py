"""Audio windows: **soundfile** reads them, a FLAC cache holds container tracks, resampling is band-limited.

**soundfile** (libsndfile) reads *audio files* (WAV of any bit depth, 8-bit unsigned included, FLAC, OGG):
it seeks to a sample and reads only the window.

**Why a FLAC cache for container audio.** Seeking in compressed audio inside a video container is slow
and, for AAC, not sample-accurate (priming samples, packet granularity); decoding the whole track for
every 3-s training window would cost more than the video itself. So the track is decoded *once*
(:func:`extract_audio`: PyAV, native sample rate, mixed to mono) into a FLAC file in a cache directory
(``cache_dir``, else ``$MMV_CACHE_DIR/audio``, else ``~/.cache/mmv/audio``), named by a hash of the
absolute path, size and modification time (so an edited source gets a fresh entry) and written atomically
(temporary file + rename, safe with many workers). FLAC is lossless, about half the size of PCM, and
soundfile seeks in it to the sample, so every later window is a cheap exact read.

**Time convention** (the tests hold the exact tables): the window starts at native sample
``round(start * native_rate)`` and has ``S = round(duration * sample_rate)`` output samples. Missing
samples at the end of the file are zero-padded up to ``max(1% of the window, 10 ms)``; a window reaching
further is ``"window past the end"``. Resampling is band-limited (polyphase Kaiser-windowed sinc, the
filter of ``scipy.signal.resample_poly``, with a NumPy implementation when SciPy is absent); the window is
read with enough margin on both sides that the result equals the same slice of the whole file resampled.
"""

from __future__ import annotations

import hashlib
import math
import os
from pathlib import Path

import av
import numpy as np
import soundfile as sf

from mmv.data.media.probe import SOUNDFILE_SUFFIXES, MediaError, _open_container, _soundfile_info
from mmv.fileio import atomic_file

# Audio: a missing tail up to max(_PAD_FRACTION * window, _PAD_SECONDS) is zero-padded.
_PAD_FRACTION = 0.01
_PAD_SECONDS = 0.010
# Kaiser beta and half-length factor of the resampling filter (the scipy.signal.resample_poly defaults).
_KAISER_BETA = 5.0
_HALF_LEN_FACTOR = 10


def _resample_filter(up: int, down: int) -> np.ndarray:
    """``scipy.signal.resample_poly``'s default filter: Kaiser(5.0)-windowed sinc, gain ``up``."""
    max_rate = max(up, down)
    half_len = _HALF_LEN_FACTOR * max_rate
    n = np.arange(2 * half_len + 1, dtype=np.float64) - half_len
    h = np.sinc(n / max_rate) * np.kaiser(2 * half_len + 1, _KAISER_BETA)
    return h * (up / h.sum())


def _resample_numpy(x: np.ndarray, up: int, down: int) -> np.ndarray:
    """Polyphase resampling by ``up / down``, aligned like ``resample_poly``: ``y[k]`` sits at ``x[k*down/up]``.

    ``y[k] = sum_j h[j] * xu[k*down + half - j]`` with ``xu`` the zero-stuffed input; only the taps that hit
    a non-zero sample are evaluated: ``y[k] = sum_t hp[r_k, t] * x[n_k // up - t]``, ``n_k = k*down + half``,
    ``r_k = n_k % up``, ``hp[r, t] = h[r + t*up]``.
    """
    h = _resample_filter(up, down)
    half = (len(h) - 1) // 2
    taps = -(-len(h) // up)
    hp = np.zeros(taps * up, dtype=np.float64)
    hp[: len(h)] = h
    hp = hp.reshape(taps, up).T  # [up, taps]
    n_out = -(-len(x) * up // down)
    # Zero padding so that every x index n // up - t, t in [0, taps), lands inside the padded array.
    xp = np.concatenate([np.zeros(taps, np.float64), np.asarray(x, np.float64), np.zeros(taps + 1, np.float64)])
    y = np.empty(n_out, dtype=np.float64)
    t = np.arange(taps)
    for k0 in range(0, n_out, 16384):
        n = np.arange(k0, min(n_out, k0 + 16384), dtype=np.int64) * down + half
        idx = (n // up)[:, None] - t[None, :] + taps  # [K, taps], into xp
        valid = idx < len(xp)
        vals = np.where(valid, xp[np.minimum(idx, len(xp) - 1)], 0.0)
        y[k0 : k0 + len(n)] = np.einsum("kt,kt->k", hp[n % up], vals)
    return y


def resample_audio(audio: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """Band-limited resampling of a mono signal (``scipy.signal.resample_poly`` when SciPy is installed).

    The rational ratio ``target_sr / orig_sr`` is reduced by the gcd; the filter is a Kaiser(5.0)-windowed
    sinc with cut-off at the lower Nyquist frequency. Output sample ``k`` sits at input time
    ``k / target_sr`` (no delay); the signal is zero-padded beyond its ends.

    Args:
        audio: ``[S]`` float.
        orig_sr: its sample rate.
        target_sr: the wanted sample rate.

    Returns:
        float32 ``[ceil(S * target_sr / orig_sr)]``.
    """
    orig_sr, target_sr = int(orig_sr), int(target_sr)
    if orig_sr <= 0 or target_sr <= 0:
        raise ValueError(f"sample rates must be positive, got {orig_sr} -> {target_sr}")
    x = np.asarray(audio)
    if x.ndim != 1:
        raise ValueError(f"audio: must be 1-D [S], got shape {x.shape}")
    if orig_sr == target_sr:
        return x.astype(np.float32, copy=True)
    g = math.gcd(orig_sr, target_sr)
    up, down = target_sr // g, orig_sr // g
    try:
        from scipy.signal import resample_poly
    except ImportError:  # pragma: no cover - SciPy ships with scikit-learn in our environment
        y = _resample_numpy(x, up, down)
    else:
        y = resample_poly(x.astype(np.float64), up, down)
    return y.astype(np.float32)


def audio_window(start: float, duration: float, native_sr: int, sample_rate: int) -> tuple[int, int, int]:
    """The samples :func:`read_audio` reads: ``(first native sample, native samples, output samples)``.

    ``first = round(start * native_sr)``; ``S = round(duration * sample_rate)`` output samples, which need
    ``ceil(S * native_sr / sample_rate)`` native samples (``S`` when no resampling happens).
    """
    out = round(duration * sample_rate)
    first = round(start * native_sr)
    need = out if native_sr == sample_rate else -(-out * native_sr // sample_rate)
    return first, need, out


def _read_sound_window(
    path: Path, start: float, duration: float, sample_rate: int, shown: str | os.PathLike[str]
) -> np.ndarray:
    """Reads ``[start, start + duration)`` of a soundfile-readable file as mono float32 at ``sample_rate``."""
    info = _soundfile_info(path, shown)
    native = info.sample_rate
    total = round(info.duration * native)
    first, need, out = audio_window(start, duration, native, sample_rate)
    missing = first + need - total
    if missing > 0:
        tolerance = max(_PAD_FRACTION * duration, _PAD_SECONDS) * native
        if missing > tolerance:
            raise MediaError(
                shown,
                f"window past the end: [{start:.3f}, {start + duration:.3f}) s, the audio lasts {info.duration:.3f} s",
            )
    if native == sample_rate:
        margin_in = margin_out = 0
    else:
        g = math.gcd(native, sample_rate)
        up, down = sample_rate // g, native // g
        # Enough context for the filter's half-length (10 * max(up, down) taps at the upsampled rate), in a
        # multiple of `down` input samples so that it maps to a whole number of output samples.
        c = -(-_HALF_LEN_FACTOR * max(up, down) // (up * down))
        margin_in, margin_out = c * down, c * up
    lo, hi = first - margin_in, first + need + margin_in
    a, b = max(lo, 0), min(hi, total)
    try:
        with sf.SoundFile(str(path)) as f:
            f.seek(a)
            data = f.read(b - a, dtype="float32", always_2d=True)  # [n, C]
    except (sf.LibsndfileError, RuntimeError, ValueError) as e:
        raise MediaError(shown, f"corrupt or unsupported audio file: {e}") from e
    mono = data.mean(axis=1, dtype=np.float64) if data.shape[1] > 1 else data[:, 0].astype(np.float64)
    x = np.zeros(hi - lo, dtype=np.float64)
    x[a - lo : a - lo + len(mono)] = mono
    if native != sample_rate:
        x = resample_audio(x, native, sample_rate)
    y = np.zeros(out, dtype=np.float32)
    seg = x[margin_out : margin_out + out]
    y[: len(seg)] = seg
    return np.clip(y, -1.0, 1.0)


def _cache_dir(cache_dir: str | os.PathLike[str] | None) -> Path:
    if cache_dir is not None:
        return Path(cache_dir)
    root = os.environ.get("MMV_CACHE_DIR")
    return (Path(root) if root else Path.home() / ".cache" / "mmv") / "audio"


def audio_cache_path(path: str | os.PathLike[str], cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Where :func:`extract_audio` puts (or finds) the FLAC of ``path``'s audio track.

    The name is ``<stem>-<sha1(absolute path, size, mtime_ns)[:16]>.flac``: a modified source gets a new entry.

    Raises:
        MediaError: the file does not exist.
    """
    p = Path(path)
    try:
        st = p.stat()
    except OSError as e:
        raise MediaError(path, "file not found" if isinstance(e, FileNotFoundError) else f"cannot read: {e}") from e
    key = f"{p.resolve()}\0{st.st_size}\0{st.st_mtime_ns}".encode()
    digest = hashlib.sha1(key, usedforsecurity=False).hexdigest()[:16]
    stem = "".join(c if c.isalnum() or c in "-_." else "_" for c in p.stem)[:48]
    return _cache_dir(cache_dir) / f"{stem}-{digest}.flac"


def _decode_track(container: av.container.InputContainer, path: str | os.PathLike[str], sink: sf.SoundFile) -> int:
    """Decodes the first audio stream to mono float at its native rate into ``sink``; returns samples written.

    Samples are placed in the time of the video: when the audio stream starts later than the video stream,
    zeros are written first; when earlier, the leading samples are dropped. The tail is cut at the stream's
    declared duration (AAC decoders return the encoder's end padding too).
    """
    stream = container.streams.audio[0]
    rate = int(stream.rate)
    ref = container.streams.video[0] if container.streams.video else stream
    ref_start = float(ref.start_time * ref.time_base) if ref.start_time is not None and ref.time_base else 0.0
    limit = None
    if stream.duration is not None and stream.time_base is not None:
        start = float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0
        limit = round((start - ref_start + float(stream.duration * stream.time_base)) * rate)
    resampler = av.AudioResampler(format="fltp")  # planar float, same layout and rate
    written, skip, started = 0, 0, False

    def write(block: np.ndarray) -> None:
        nonlocal written, skip
        if skip:
            cut = min(skip, len(block))
            block, skip = block[cut:], skip - cut
        if limit is not None:
            block = block[: max(0, limit - written)]
        if len(block):
            sink.write(block.astype(np.float32))
            written += len(block)

    def emit(frames: list[av.AudioFrame]) -> None:
        nonlocal started, skip
        for fr in frames:
            arr = fr.to_ndarray()  # [C, n] planar
            if not started:
                started = True
                t0 = fr.time if fr.time is not None else ref_start
                offset = round((t0 - ref_start) * rate)
                if offset > 0:
                    write(np.zeros(offset, dtype=np.float32))
                else:
                    skip = -offset
            write(arr.mean(axis=0) if arr.shape[0] > 1 else arr[0])

    try:
        for packet in container.demux(stream):
            try:
                frames = packet.decode()
            except av.FFmpegError:
                continue  # a damaged packet: skip it, as ffmpeg does
            for fr in frames:
                emit(resampler.resample(fr))
        emit(resampler.resample(None))
    except av.FFmpegError as e:
        raise MediaError(path, f"corrupt or unsupported container: audio track unreadable ({e})") from e
    return written


def extract_audio(path: str | os.PathLike[str], cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Decodes a container's audio track once into a mono FLAC file (native rate) in the cache.

    A later call with an unchanged source returns the cached file without decoding. The file is written
    to a temporary name and renamed, so concurrent workers never see a partial file.

    Args:
        path: a container with an audio stream (mp4, m4a, webm, mkv, avi, mov, ...).
        cache_dir: where to store it; default ``$MMV_CACHE_DIR/audio``, else ``~/.cache/mmv/audio``.

    Returns:
        The FLAC file's path (see :func:`audio_cache_path`).

    Raises:
        MediaError: unreadable file, no audio stream, zero duration, or the cache cannot be written.
    """
    target = audio_cache_path(path, cache_dir)
    if target.is_file():
        return target
    with _open_container(path) as container:
        if not container.streams.audio:
            raise MediaError(path, "no audio stream")
        rate = int(container.streams.audio[0].rate)
        if rate <= 0:
            raise MediaError(path, "corrupt or unsupported container: the audio stream has no sample rate")
        try:
            with atomic_file(target) as tmp:
                with sf.SoundFile(tmp, "w", samplerate=rate, channels=1, format="FLAC", subtype="PCM_16") as sink:
                    n = _decode_track(container, path, sink)
                if n == 0:
                    raise MediaError(path, "zero duration: the audio track decodes to no samples")
        except (OSError, sf.LibsndfileError, RuntimeError) as e:
            raise MediaError(path, f"cannot write the audio cache {target}: {e}") from e
    return target


def read_audio(
    path: str | os.PathLike[str],
    start: float,
    duration: float,
    sample_rate: int,
    cache_dir: str | os.PathLike[str] | None = None,
) -> np.ndarray:
    """Reads ``duration`` seconds from ``start``: mono, resampled to ``sample_rate``, in ``[-1, 1]``.

    WAV/FLAC/OGG are read directly (only the window, plus the resampler's margin). Any other suffix is a
    container: its track is extracted once into the FLAC cache (:func:`extract_audio`) and the window is
    read from there. See the module docstring for the exact sample arithmetic (:func:`audio_window`).

    Args:
        path: an audio file or a container with an audio track.
        start: seconds, ``>= 0``.
        duration: seconds, ``> 0``.
        sample_rate: output rate, Hz.
        cache_dir: the FLAC cache for containers (see :func:`extract_audio`).

    Returns:
        float32 ``[S]``, ``S = round(duration * sample_rate)``; channels are averaged.

    Raises:
        MediaError: any failure to read, ``"no audio stream"``, ``"window past the end"``.
        ValueError: negative ``start``, non-positive ``duration`` or ``sample_rate``.
    """
    if not (start >= 0 and math.isfinite(start)):
        raise ValueError(f"start: must be a finite number >= 0, got {start}")
    if not (duration > 0 and math.isfinite(duration)):
        raise ValueError(f"duration: must be > 0, got {duration}")
    if int(sample_rate) != sample_rate or sample_rate <= 0:
        raise ValueError(f"sample_rate: must be a positive int, got {sample_rate}")
    p = Path(path)
    if p.suffix.lower() in SOUNDFILE_SUFFIXES:
        return _read_sound_window(p, start, duration, int(sample_rate), path)
    flac = extract_audio(path, cache_dir)
    return _read_sound_window(flac, start, duration, int(sample_rate), path)
