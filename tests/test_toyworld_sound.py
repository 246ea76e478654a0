"""Toy-world audio: what is heard in the raw soundtrack (timbre, pitch, loudness, envelopes, bounce sync)."""

from __future__ import annotations

import numpy as np
import pytest
from toyworld_helpers import CFG, SR, clean, find_spec, relative_level, rms_db, spectrum

import mmv.toyworld as tw
from mmv.toyworld import render, sound


def test_timbre_and_pitch_tables() -> None:
    assert set(tw.SHAPE_TIMBRE) == set(tw.SHAPES) and len(set(tw.SHAPE_TIMBRE.values())) == len(tw.SHAPES)
    pitches = [sound.COLOUR_PITCH_HZ[c] for c in tw.COLOURS]
    semitones = 12 * np.log2(np.array(pitches[1:]) / np.array(pitches[:-1]))
    assert np.all(semitones > 2 * CFG.pitch_jitter_semitones + 3)  # jittered pitches never meet


def test_synth_shapes() -> None:
    audio = sound.synthesize_audio(tw.clip_spec(0, 0, CFG), CFG)
    assert audio.shape == (64000,) and audio.dtype == np.float32
    assert np.abs(audio).max() <= 1.0


@pytest.mark.parametrize("timbre", ["sine", "square", "sawtooth", "bell"])
def test_timbre_and_pitch(timbre: str) -> None:
    _, spec = find_spec(clean("static", timbre))
    f0 = spec.primary.pitch_hz
    freqs, mag = spectrum(sound.synthesize_audio(spec, CFG))
    assert freqs[mag.argmax()] == pytest.approx(f0, rel=0.005)
    assert 12 * abs(np.log2(f0 / sound.COLOUR_PITCH_HZ[spec.primary.colour])) <= CFG.pitch_jitter_semitones + 1e-9
    h2, h3 = relative_level(freqs, mag, 2 * f0), relative_level(freqs, mag, 3 * f0)
    fm = relative_level(freqs, mag, (1 + np.sqrt(2)) * f0)
    expected = {  # (2nd harmonic, 3rd harmonic, FM sideband at (1 + sqrt 2) f0) relative to the fundamental
        "sine": ((0, 0.01), (0, 0.01), (0, 0.01)),
        "square": ((0, 0.01), (0.25, 0.4), (0, 0.01)),  # odd harmonics at 1/k
        "sawtooth": ((0.4, 0.65), (0.25, 0.4), (0, 0.01)),  # every harmonic at 1/k
        "bell": ((0, 0.01), (0, 0.01), (0.45, 0.65)),  # J1(1) / J0(1) = 0.58
    }[timbre]
    for value, (lo, hi) in zip((h2, h3, fm), expected):
        assert lo <= value <= hi, (timbre, h2, h3, fm)


def test_loudness_follows_size() -> None:
    _, small = find_spec(clean("static", "sine", size="small"))
    _, large = find_spec(clean("static", "sine", size="large"))
    diff = rms_db(sound.synthesize_audio(large, CFG)) - rms_db(sound.synthesize_audio(small, CFG))
    assert diff == pytest.approx(20 * np.log10(sound.SIZE_GAIN["large"] / sound.SIZE_GAIN["small"]), abs=0.3)


def test_synthesis_is_numerically_clean() -> None:
    with np.errstate(all="raise"):  # no overflow or invalid value anywhere (e.g. in the pulse envelopes)
        for i in range(64):
            audio = sound.synthesize_audio(tw.clip_spec(1, i, CFG), CFG)
            assert np.isfinite(audio).all() and np.abs(audio).max() <= 0.98 + 1e-6


def test_envelopes_follow_motion() -> None:
    quarter = CFG.num_samples // 4
    for motion, sign in (("grow", 1), ("shrink", -1)):
        _, spec = find_spec(clean(motion, "sine"))
        x = sound.synthesize_audio(spec, CFG)
        assert sign * (rms_db(x[-quarter:]) - rms_db(x[:quarter])) > 10
    for motion, sign in (("up", 1), ("down", -1)):
        _, spec = find_spec(clean(motion, "sine"))
        x = sound.synthesize_audio(spec, CFG)
        f_first = spectrum(x[:quarter])[0][spectrum(x[:quarter])[1].argmax()]
        f_last = spectrum(x[-quarter:])[0][spectrum(x[-quarter:])[1].argmax()]
        assert sign * 12 * np.log2(f_last / f_first) > 3  # the glide is 6 semitones end to end
    for motion in ("right", "left"):
        _, spec = find_spec(clean(motion, "sine"))
        amp, _ = sound.motion_envelope(spec.primary, np.arange(CFG.num_samples) / SR, CFG.clip_seconds)
        onsets = np.nonzero((amp[1:] > 0.5) & (amp[:-1] <= 0.5))[0] / SR
        gaps = np.diff(onsets)
        assert len(onsets) >= 10
        assert (gaps[-1] < gaps[0]) == (motion == "right")  # right accelerates, left slows down


def test_bounce_sound_is_in_sync_with_the_impacts() -> None:
    _, spec = find_spec(clean("bounce", "sine"))
    obj = spec.primary
    x = sound.synthesize_audio(spec, CFG)
    env = np.abs(x).reshape(-1, 160).max(axis=1)  # 10-ms peak envelope
    onsets = np.nonzero((env[1:] > 0.3 * env.max()) & (env[:-1] <= 0.3 * env.max()))[0] * 0.01
    t = np.arange(0, CFG.clip_seconds, 0.001)
    _, y, _ = render.object_trajectory(obj, t, CFG.clip_seconds)
    lowest = t[1:-1][(y[1:-1] >= y[:-2]) & (y[1:-1] >= y[2:])]  # the floor touches (y grows downwards)
    lowest = lowest[(lowest > 0.05) & (lowest < CFG.clip_seconds - 0.05)]
    assert len(onsets) == len(lowest) >= 2
    np.testing.assert_allclose(onsets, lowest, atol=0.02)
