"""Drawing clips: each clip's objects, background, distractor sound and captions from a seeded generator.

:func:`clip_spec` is deterministic per ``(seed, index)`` and independent of every other clip; the primary
object's shape, colour, size and motion are balanced over consecutive clips (:func:`balanced_attributes`).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from mmv.toyworld.narration import make_captions
from mmv.toyworld.render import COLOUR_RGB, GROW_SCALE, SIZE_RADIUS
from mmv.toyworld.sound import COLOUR_PITCH_HZ, SECOND_OBJECT_GAIN, SIZE_GAIN
from mmv.toyworld.spec import (
    BACKGROUND_PROBS,
    BACKGROUNDS,
    COLOURS,
    MOTIONS,
    NOISES,
    SHAPES,
    SIZES,
    ClipSpec,
    ObjectSpec,
    ToyWorldConfig,
    choose,
)


def _sample_object(
    rng: np.random.Generator,
    cfg: ToyWorldConfig,
    exclude_colour: str | None = None,
    silent: bool = False,
    fixed: Mapping[str, str] | None = None,
) -> ObjectSpec:
    drawn = {  # always drawn, so that fixing an attribute leaves the rest of the random stream as it was
        "shape": choose(rng, SHAPES),
        "colour": choose(rng, [c for c in COLOURS if c != exclude_colour]),
        "size": choose(rng, SIZES),
        "motion": choose(rng, MOTIONS),
    }
    drawn.update(fixed or {})
    shape, colour, size, motion = drawn["shape"], drawn["colour"], drawn["size"], drawn["motion"]
    radius = SIZE_RADIUS[size] * float(rng.uniform(0.92, 1.08))
    extent = radius * 1.45 * (GROW_SCALE[1] if motion == "grow" else 1.0)  # largest half-width of the shape
    lo, hi = extent + 0.03, 1.0 - extent - 0.03
    x0, y0 = float(rng.uniform(lo, hi)), float(rng.uniform(lo, hi))
    x1, y1 = x0, y0
    span = (lo, lo + 0.2 * (hi - lo)), (hi - 0.2 * (hi - lo), hi)  # the two ends of a crossing (>= 60 % of it)
    if motion in ("right", "left"):
        a, b = float(rng.uniform(*span[0])), float(rng.uniform(*span[1]))
        x0, x1 = (a, b) if motion == "right" else (b, a)
    elif motion in ("up", "down"):
        a, b = float(rng.uniform(*span[0])), float(rng.uniform(*span[1]))
        y0, y1 = (b, a) if motion == "up" else (a, b)
    height = 0.0
    if motion == "bounce":
        height = float(rng.uniform(0.25, 0.45))
        y0 = y1 = float(rng.uniform(max(lo + height, 0.6), hi))
        height = min(height, y0 - lo)
    brightness = int(rng.integers(-8, 9))
    rgb = tuple(int(np.clip(v + brightness, 0, 255)) for v in COLOUR_RGB[colour])
    jitter = float(rng.uniform(-cfg.pitch_jitter_semitones, cfg.pitch_jitter_semitones))
    gain = 0.0 if silent else SIZE_GAIN[size]
    return ObjectSpec(
        shape=shape,
        colour=colour,
        size=size,
        motion=motion,
        rgb=rgb,  # type: ignore[arg-type]
        radius=radius,
        x0=x0,
        y0=y0,
        x1=x1,
        y1=y1,
        angle=0.0 if shape == "circle" else float(rng.uniform(-15.0, 15.0)),
        bounce_period=float(rng.uniform(0.75, 1.4)),
        bounce_phase=float(rng.uniform(0.0, 1.0)),
        bounce_height=height,
        pitch_hz=COLOUR_PITCH_HZ[colour] * 2.0 ** (jitter / 12.0),
        gain=gain,
    )


def sample_attributes(
    rng: np.random.Generator, cfg: ToyWorldConfig | None = None, attributes: Mapping[str, str] | None = None
) -> ClipSpec:
    """Draws one clip: its objects, background, distractor sound and captions.

    Args:
        rng: The clip's generator (:func:`clip_spec` seeds it from ``(seed, index)``).
        cfg: The world's parameters (defaults if None).
        attributes: Fixed values for the primary object's ``shape``, ``colour``, ``size`` and/or ``motion``
            (the others are drawn), e.g. ``{"shape": "star", "motion": "up"}``.

    Returns:
        A :class:`ClipSpec` with its captions filled in by :func:`make_captions`.
    """
    cfg = cfg or ToyWorldConfig()
    tables = {"shape": SHAPES, "colour": COLOURS, "size": SIZES, "motion": MOTIONS}
    for key, value in (attributes or {}).items():
        if key not in tables or value not in tables[key]:
            raise ValueError(f"attributes: unknown {key}={value!r} (choose from {tables.get(key, tuple(tables))})")
    objects = [_sample_object(rng, cfg, fixed=attributes)]
    if rng.random() < cfg.second_object_prob:
        silent = bool(rng.random() < cfg.second_object_silent_prob)
        second = _sample_object(rng, cfg, exclude_colour=objects[0].colour, silent=silent)
        if not silent:
            second.gain *= SECOND_OBJECT_GAIN
        objects.append(second)
    background = choose(rng, BACKGROUNDS, p=BACKGROUND_PROBS)
    grey = rng.uniform(45, 200)
    bg_rgb = tuple(int(np.clip(grey + rng.uniform(-12, 12), 0, 255)) for _ in range(3))
    grey2 = np.clip(grey + rng.choice([-1, 1]) * rng.uniform(15, 40), 0, 255)
    bg_rgb2 = tuple(int(np.clip(grey2 + rng.uniform(-12, 12), 0, 255)) for _ in range(3))
    noise = choose(rng, NOISES) if rng.random() < cfg.noise_prob else "none"
    spec = ClipSpec(
        objects=objects,
        background=background,
        bg_rgb=bg_rgb,  # type: ignore[arg-type]
        bg_rgb2=bg_rgb2,  # type: ignore[arg-type]
        texture_seed=int(rng.integers(2**31)),
        noise=noise,
        noise_level=float(rng.uniform(0.04, 0.12)),
        noise_seed=int(rng.integers(2**31)),
    )
    spec.captions = make_captions(spec, rng, cfg)
    return spec


def balanced_attributes(seed: int, index: int) -> dict[str, str]:
    """The primary object's attributes of clip ``index``, balanced over consecutive clips.

    Each attribute walks through a fresh random permutation of its values every ``len(values)`` clips (clips
    0-5 have the 6 colours in some order, 6-11 again, ...), so any run of clips is nearly balanced in every
    attribute, while the combinations stay random. Depends on ``(seed, index)`` only.
    """
    out = {}
    for k, (name, values) in enumerate((("shape", SHAPES), ("colour", COLOURS), ("size", SIZES), ("motion", MOTIONS))):
        block, position = divmod(int(index), len(values))
        order = np.random.default_rng([int(seed), block, 1_000_003 + k]).permutation(len(values))
        out[name] = values[int(order[position])]
    return out


def clip_spec(seed: int, index: int, cfg: ToyWorldConfig | None = None) -> ClipSpec:
    """The spec of clip ``index`` of the world ``seed``: independent of every other clip and of the clip count.

    The primary object's attributes come from :func:`balanced_attributes`, everything else from a generator
    seeded by ``(seed, index)``.
    """
    rng = np.random.default_rng([int(seed), int(index)])
    return sample_attributes(rng, cfg, attributes=balanced_attributes(seed, index))


def assign_splits(num_clips: int, seed: int, cfg: ToyWorldConfig | None = None) -> list[str]:
    """``train``/``val``/``test`` per clip: exactly ``round(fraction * num_clips)`` train and val clips (the
    rest test), placed by a permutation seeded from ``seed``."""
    cfg = cfg or ToyWorldConfig()
    n_train = int(round(cfg.train_fraction * num_clips))
    n_val = min(num_clips - n_train, int(round(cfg.val_fraction * num_clips)))
    order = np.random.default_rng([int(seed), 2**31 - 1]).permutation(num_clips)
    splits = np.full(num_clips, "test", dtype=object)
    splits[order[:n_train]] = "train"
    splits[order[n_train : n_train + n_val]] = "val"
    return splits.tolist()
