"""Helpers shared by the toy-world tests (``tests/test_toyworld*.py``): finding clips, masks, spectra, levels."""

from __future__ import annotations

import os
import signal

import cv2
import numpy as np

import mmv.toyworld as tw

CFG = tw.ToyWorldConfig()
SR = CFG.sample_rate


def find_spec(pred, seed: int = 0, limit: int = 3000) -> tuple[int, tw.ClipSpec]:
    """The first clip of world ``seed`` whose spec satisfies ``pred``."""
    for i in range(limit):
        spec = tw.clip_spec(seed, i, CFG)
        if pred(spec):
            return i, spec
    raise AssertionError("no such clip")


def clean(motion: str | None = None, timbre: str | None = None, **attrs):
    """Predicate: one object, no distractor sound, plain background, and the given attributes."""

    def pred(spec: tw.ClipSpec) -> bool:
        obj = spec.primary
        return (
            len(spec.objects) == 1
            and spec.noise == "none"
            and spec.background == "plain"
            and (motion is None or obj.motion == motion)
            and (timbre is None or obj.timbre == timbre)
            and all(getattr(obj, k) == v for k, v in attrs.items())
        )

    return pred


def object_mask(frame: np.ndarray, background: np.ndarray, erode: int = 0) -> np.ndarray:
    """Pixels that differ clearly from the background, optionally eroded (drops anti-aliased and codec edges)."""
    mask = (np.abs(frame.astype(np.int32) - background.astype(np.int32)).sum(-1) > 60).astype(np.uint8)
    if erode:
        mask = cv2.erode(mask, np.ones((3, 3), np.uint8), iterations=erode)
    return mask.astype(bool)


def centroid(mask: np.ndarray) -> tuple[float, float]:
    ys, xs = np.nonzero(mask)
    return float(xs.mean()), float(ys.mean())


def spectrum(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mag = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return np.fft.rfftfreq(len(x), 1 / SR), mag


def relative_level(freqs: np.ndarray, mag: np.ndarray, hz: float) -> float:
    """Spectral peak near ``hz`` (+-1 %) over the global peak."""
    band = (freqs > 0.99 * hz) & (freqs < 1.01 * hz)
    return float(mag[band].max() / mag.max())


def rms_db(x: np.ndarray) -> float:
    return float(20 * np.log10(np.sqrt(np.mean(x.astype(np.float64) ** 2)) + 1e-12))


def killed_at_clip_12(job: tuple) -> int:
    """A toy-world job (``mmv.toyworld.generate.run_jobs``) whose worker dies at clip 12 as if killed for memory
    (``SIGKILL``); the other jobs return their clip's index."""
    if job[0] == 12:
        os.kill(os.getpid(), signal.SIGKILL)
    return job[0]
