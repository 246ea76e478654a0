"""Toy-world audio: how a clip's objects sound, synthesised sample by sample.

Part of :mod:`mmv.toyworld` (which re-exports the public names below). A clip's soundtrack is
``clip_seconds`` (4 s) of mono audio at ``sample_rate`` (16 kHz): the tone of each sounding object, an optional
distractor and a noise floor (:func:`synthesize_audio`).

How the primary object's attributes are heard (its labels describe it):

==========  =====================================================================================
attribute   audio
==========  =====================================================================================
shape       timbre (:data:`SHAPE_TIMBRE`, ``label_sound``): circle = ``sine`` (one partial),
            square = ``square`` (odd harmonics 1/k), triangle = ``sawtooth`` (all harmonics 1/k),
            star = ``bell`` (FM, carrier:modulator 1:sqrt 2, index 1: inharmonic partials)
colour      base pitch (:data:`COLOUR_PITCH_HZ`), low to high in the order of light's own frequency:
            196, 247, 311, 392, 494, 622 Hz (G3 B3 D#4 G4 B4 D#5, 4 semitones apart) for red, yellow,
            green, cyan, blue, purple, times a random jitter of +-0.4 semitone
size        loudness (:data:`SIZE_GAIN`): large 0.6, small 0.3 peak (-6 dB)
motion      envelope / rhythm (:func:`motion_envelope`): static = steady; right = pulses accelerating
            2 -> 6 Hz; left = pulses slowing 6 -> 2 Hz; up = pitch glide -3 -> +3 semitones; down =
            glide +3 -> -3; grow = crescendo -18 -> 0 dB; shrink = decrescendo; bounce = a struck pulse
            at each floor impact (in sync with the frames); all with 15 ms edge fades
==========  =====================================================================================

Why the sound does not determine the picture (nor the reverse): the pitch jitter and the up/down glides blur
the colour's pitch (a glide crosses the neighbouring colours' pitches); ``second_object_prob`` (30 %) of clips
hold a second object of another colour, silent half of the time and otherwise at ``SECOND_OBJECT_GAIN``
(0.4x) loudness; ``noise_prob`` (20 %) of clips carry a distractor unrelated to the picture (``hiss``, ``hum``
at 50 Hz with harmonics, or ``bursts`` of noise like a bumped microphone); every clip has a -54 dB noise floor.
The right/left rhythms are mirror images and the up/down glides run opposite ways, so a flipped clip
contradicts its soundtrack.
"""

from __future__ import annotations

import math

import numpy as np

from mmv.toyworld.spec import ClipSpec, ObjectSpec, ToyWorldConfig

#: Base pitch of each colour in Hz: 4 semitones apart, lowest for red (the lowest light frequency).
COLOUR_PITCH_HZ: dict[str, float] = {
    "red": 196.00,
    "yellow": 246.94,
    "green": 311.13,
    "cyan": 392.00,
    "blue": 493.88,
    "purple": 622.25,
}
#: Timbre (``label_sound``) of each shape.
#: Peak amplitude of each size's sound (large objects are louder).
SIZE_GAIN: dict[str, float] = {"small": 0.3, "large": 0.6}

GLIDE_SEMITONES = 6.0  # total pitch glide of up/down (from -3 to +3 semitones around the base pitch)
CRESCENDO_DB = 18.0  # level change of grow/shrink
PULSE_RATES_HZ = (2.0, 6.0)  # pulse rate at the start and end of 'right' (reversed for 'left')
SECOND_OBJECT_GAIN = 0.4  # loudness of a sounding second object relative to its size's gain
MAX_PARTIAL_HZ = 7000.0  # band limit of the additive square/sawtooth (keeps them alias-free at 16 kHz)


def _harmonic_sum(phase: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``sum_k weights[k-1] * sin(k * phase)`` by the Chebyshev recurrence (no sin per partial)."""
    s_prev, s_k = np.zeros_like(phase), np.sin(phase)
    two_cos = 2.0 * np.cos(phase)
    out = weights[0] * s_k
    for w in weights[1:]:
        s_prev, s_k = s_k, two_cos * s_k - s_prev
        if w:
            out += w * s_k
    return out


def _oscillator(timbre: str, freq: np.ndarray, sample_rate: int) -> np.ndarray:
    """Band-limited waveform of a timbre following the instantaneous frequency ``freq`` [S], peak about 1."""
    phase = 2.0 * np.pi * np.cumsum(freq) / sample_rate
    n = max(1, int(min(MAX_PARTIAL_HZ, 0.45 * sample_rate) // float(freq.max())))
    k = np.arange(1, n + 1)
    if timbre == "sine":
        return np.sin(phase)
    if timbre == "square":  # odd harmonics, 1/k (Gibbs overshoot of the band-limited sum is ~1.18)
        return _harmonic_sum(phase, np.where(k % 2 == 1, 1.0 / k, 0.0) * (4 / np.pi) / 1.18)
    if timbre == "sawtooth":  # every harmonic, 1/k
        return _harmonic_sum(phase, ((-1.0) ** (k + 1)) / k * (2 / np.pi) / 1.18)
    if timbre == "bell":  # FM: inharmonic sidebands at |1 +- k*sqrt 2| f, carrier still the strongest
        return np.sin(phase + 1.0 * np.sin(np.sqrt(2.0) * phase))
    raise ValueError(f"unknown timbre {timbre!r}")


def _pulses(t: np.ndarray, onsets: np.ndarray, decay: float, attack: float = 0.005) -> np.ndarray:
    """A struck envelope: at each onset a 5-ms rise then an exponential decay; 0 before the first onset."""
    onsets = np.sort(onsets[(onsets >= 0) & (onsets < t[-1] + 1e-9)])
    if onsets.size == 0:
        return np.zeros_like(t)
    last = np.searchsorted(onsets, t, side="right") - 1
    dt = np.maximum(t - onsets[np.maximum(last, 0)], 0.0)  # time since the last onset (0 before the first)
    env = np.exp(-dt / decay) * (1.0 - np.exp(-dt / attack))
    return np.where(last >= 0, env, 0.0)


def motion_envelope(obj: ObjectSpec, t: np.ndarray, clip_seconds: float) -> tuple[np.ndarray, np.ndarray]:
    """The amplitude envelope and the pitch multiplier of an object's sound, per sample.

    Args:
        obj: The object.
        t: Sample times in seconds, ``[S]``.
        clip_seconds: Clip length.

    Returns:
        ``(amplitude [S] in [0, 1], frequency multiplier [S])``.
    """
    u = t / clip_seconds
    amp, mult = np.ones_like(t), np.ones_like(t)
    if obj.motion in ("up", "down"):
        sign = 1.0 if obj.motion == "up" else -1.0
        mult = 2.0 ** (sign * GLIDE_SEMITONES * (u - 0.5) / 12.0)
    elif obj.motion in ("grow", "shrink"):
        level = u if obj.motion == "grow" else 1.0 - u
        amp = 10.0 ** (CRESCENDO_DB * (level - 1.0) / 20.0)
    elif obj.motion in ("right", "left"):
        r0, r1 = PULSE_RATES_HZ if obj.motion == "right" else PULSE_RATES_HZ[::-1]
        rate = r0 + (r1 - r0) * u  # pulses per second
        count = np.concatenate([[0.0], np.cumsum(rate[:-1]) * (t[1] - t[0])])  # pulses so far, [S]
        onsets = t[np.searchsorted(count, np.arange(math.floor(count[-1]) + 1))]  # where the count passes k
        amp = 0.1 + 0.9 * _pulses(t, onsets, decay=0.07)
    elif obj.motion == "bounce":
        onsets = (np.arange(0, clip_seconds / obj.bounce_period + 2) - obj.bounce_phase) * obj.bounce_period
        amp = 0.03 + 0.97 * _pulses(t, onsets, decay=0.18)
    return amp, mult


def synthesize_audio(spec: ClipSpec, cfg: ToyWorldConfig | None = None) -> np.ndarray:
    """The clip's soundtrack: each sounding object's tone, the distractor and a noise floor.

    Args:
        spec: The clip.
        cfg: Length and sample rate.

    Returns:
        float32 ``[S]`` in [-1, 1], ``S = round(clip_seconds * sample_rate)``.
    """

    cfg = cfg or ToyWorldConfig()
    sr, n = cfg.sample_rate, cfg.num_samples
    t = np.arange(n) / sr
    out = np.zeros(n)
    for obj in spec.objects:
        if obj.gain <= 0:
            continue
        amp, mult = motion_envelope(obj, t, cfg.clip_seconds)
        out += obj.gain * amp * _oscillator(obj.timbre, obj.pitch_hz * mult, sr)
    rng = np.random.default_rng(spec.noise_seed)
    out += 0.002 * rng.standard_normal(n)  # noise floor (-54 dB)
    if spec.noise == "hiss":
        hiss = np.convolve(rng.standard_normal(n), np.ones(3) / 3, mode="same")  # gentle low-pass
        out += spec.noise_level * hiss / 2.0
    elif spec.noise == "hum":
        phase = 2 * np.pi * 50.0 * t
        out += spec.noise_level * (np.sin(phase) + 0.5 * np.sin(2 * phase) + 0.3 * np.sin(3 * phase)) / 1.5
    elif spec.noise == "bursts":
        onsets = rng.uniform(0, cfg.clip_seconds, size=int(rng.integers(2, 5)))
        out += 2.0 * spec.noise_level * _pulses(t, onsets, decay=0.06) * rng.standard_normal(n) / 2.0
    fade = np.minimum(1.0, np.minimum(t, t[-1] - t) / 0.015)  # 15-ms fades: no click at the clip's edges
    out *= fade
    peak = float(np.abs(out).max())
    if peak > 0.98:
        out *= 0.98 / peak
    return out.astype(np.float32)
