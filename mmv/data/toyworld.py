"""The toy world: procedurally generated clips whose video, audio and narration are genuinely correlated.

Nothing can be downloaded at run time, so the demo model is trained on this synthetic world. Each clip is
``clip_seconds`` (4 s) of ``size`` x ``size`` (128 x 128) RGB video at ``fps`` (8, i.e. 32 frames) with
``sample_rate`` (16 kHz) mono audio: one sounding object, sometimes a second one, on a plain or lightly
textured background, plus 3-6 ASR-like narrations. The attributes are drawn per clip from a seeded generator
(:func:`clip_spec`: deterministic per ``(seed, index)``), so every label is exact ground truth; the primary
object's shape, colour, size and motion are balanced over consecutive clips (:func:`balanced_attributes`).

This module holds the attributes' values, :class:`ToyWorldConfig`, the clip specs and their sampling, and
:func:`generate`; each modality has its own module, whose docstring tables how the attributes show in it
(all public names are re-exported here):

- :mod:`mmv.data.toyworld_render`: the video (fill colour, radius, trajectory, background);
- :mod:`mmv.data.toyworld_sound`: the audio (timbre, pitch, loudness, envelope, distractors);
- :mod:`mmv.data.toyworld_narration`: the captions (synonyms, fillers, wrong and off-topic sentences).

==========  ===================================  =======================  ==========================
attribute   values (video)                       audio                    narration (synonyms)
==========  ===================================  =======================  ==========================
shape       circle, square, triangle, star       timbre                   "ball", "box", "wedge", ...
colour      red, yellow, green, cyan, blue,      base pitch (+-0.4        "crimson", "golden", ...
            purple                               semitone jitter)
size        small, large                         loudness                 "little", "big", ...
motion      static, right, left, up, down,       envelope / rhythm /      "rolls to the right",
            grow, shrink, bounce                 pitch glide              "rises", "hops", ...
==========  ===================================  =======================  ==========================

Neither modality determines the other: pitch jitter and glides, a second object (``second_object_prob``,
30 %: another colour, drawn behind the first, silent half of the time), distractor sounds (``noise_prob``,
20 %), clips without narration (``no_text_fraction``, 20 %) and wrong or off-topic captions.

**Flips contradict the data.** Narrations say "left"/"right" and "top"/"bottom", and the right/left motions
have mirror-image rhythms (accelerating vs slowing pulses), so a horizontally flipped clip contradicts both its
narration and its audio (and ``label_motion``); a vertical flip likewise swaps up/down against the pitch glide.
Keep flips off for this dataset (``toyworld.json`` records ``"horizontal_flip_consistent": false``).

Files written by :func:`generate` (``docs/formats.md``, "Clip manifest")::

    out_dir/clips/000123.mp4     H.264 + AAC, 32 frames at 8 fps, 128 x 128, 16 kHz mono
    out_dir/manifest.parquet     one row per clip; labels label_shape, label_colour, label_size, label_motion,
                                 label_sound (timbre), label_pitch_hz (float), label_n_objects (int)
    out_dir/README.md            the generation parameters and this mapping
    out_dir/toyworld.json        {"config": ..., "seed": ..., "num_clips": ...}
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from mmv.data.toyworld_narration import (
    ATTRIBUTE_TEMPLATES,
    CAPTION_KINDS,
    COLOUR_WORDS,
    DESCRIBE_TEMPLATES,
    FILLERS,
    MOTION_WORDS,
    OFF_TOPIC,
    SECOND_TEMPLATES,
    SHAPE_WORDS,
    SILENT_SECOND_TEMPLATES,
    SIZE_WORDS,
    SOUND_WORDS,
    _choice,
    clean_description,
    make_captions,
    vocabulary_words,
)
from mmv.data.toyworld_render import COLOUR_RGB, GROW_SCALE, SIZE_RADIUS, UNIT_SHAPES, object_trajectory, render_video
from mmv.data.toyworld_sound import (
    COLOUR_PITCH_HZ,
    CRESCENDO_DB,
    GLIDE_SEMITONES,
    MAX_PARTIAL_HZ,
    PULSE_RATES_HZ,
    SECOND_OBJECT_GAIN,
    SHAPE_TIMBRE,
    SIZE_GAIN,
    motion_envelope,
    synthesize_audio,
)

__all__ = [
    "ATTRIBUTE_TEMPLATES",
    "BACKGROUNDS",
    "CAPTION_KINDS",
    "COLOURS",
    "COLOUR_PITCH_HZ",
    "COLOUR_RGB",
    "COLOUR_WORDS",
    "CRESCENDO_DB",
    "ClipSpec",
    "DESCRIBE_TEMPLATES",
    "FILLERS",
    "GLIDE_SEMITONES",
    "GROW_SCALE",
    "LABEL_COLUMNS",
    "MAX_PARTIAL_HZ",
    "MOTIONS",
    "MOTION_WORDS",
    "NOISES",
    "OFF_TOPIC",
    "ObjectSpec",
    "PULSE_RATES_HZ",
    "SECOND_OBJECT_GAIN",
    "SECOND_TEMPLATES",
    "SHAPES",
    "SHAPE_TIMBRE",
    "SHAPE_WORDS",
    "SILENT_SECOND_TEMPLATES",
    "SIZES",
    "SIZE_GAIN",
    "SIZE_RADIUS",
    "SIZE_WORDS",
    "SOUND_WORDS",
    "ToyWorldConfig",
    "UNIT_SHAPES",
    "assign_splits",
    "balanced_attributes",
    "clip_name",
    "clean_description",
    "clip_spec",
    "generate",
    "make_captions",
    "motion_envelope",
    "object_trajectory",
    "render_video",
    "sample_attributes",
    "synthesize_audio",
    "vocabulary_words",
    "write_clip",
]

# ---------------------------------------------------------------------------------------------------
# The attributes (how each value looks, sounds and is said: the tables of the three modality modules)
# ---------------------------------------------------------------------------------------------------

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star")
COLOURS: tuple[str, ...] = ("red", "yellow", "green", "cyan", "blue", "purple")
SIZES: tuple[str, ...] = ("small", "large")
MOTIONS: tuple[str, ...] = ("static", "right", "left", "up", "down", "grow", "shrink", "bounce")
NOISES: tuple[str, ...] = ("hiss", "hum", "bursts")
BACKGROUNDS: tuple[str, ...] = ("plain", "gradient", "blotches", "tiles")
_BACKGROUND_PROBS = (0.4, 0.25, 0.2, 0.15)

# ---------------------------------------------------------------------------------------------------
# Config and specs
# ---------------------------------------------------------------------------------------------------


@dataclass
class ToyWorldConfig:
    """Parameters of the toy world (written to ``toyworld.json`` next to the clips).

    Attributes:
        clip_seconds: Length of a clip.
        fps: Video frame rate; ``round(clip_seconds * fps)`` frames.
        size: Frame side in pixels (square frames).
        sample_rate: Audio sample rate (mono).
        second_object_prob: Probability that a clip holds a second object (of another colour).
        second_object_silent_prob: Probability that a second object is silent (else it sounds at 0.4x).
        noise_prob: Probability of a distractor sound (hiss, hum or bursts) unrelated to the picture.
        pitch_jitter_semitones: Half-width of the uniform jitter of each object's base pitch.
        no_text_fraction: Probability that a clip has no narration at all (AudioSet-like).
        min_captions: Fewest captions of a narrated clip.
        max_captions: Most captions of a narrated clip.
        wrong_caption_prob: Per caption: a description with the wrong colour or shape.
        off_topic_prob: Per caption: an off-topic sentence.
        max_caption_shift: Largest shift (seconds) of a caption from the moment it describes.
        train_fraction: Share of clips in the train split.
        val_fraction: Share in val; the rest is test.
        crf: H.264 constant rate factor of the written mp4s.
    """

    clip_seconds: float = 4.0
    fps: int = 8
    size: int = 128
    sample_rate: int = 16000
    second_object_prob: float = 0.3
    second_object_silent_prob: float = 0.5
    noise_prob: float = 0.2
    pitch_jitter_semitones: float = 0.4
    no_text_fraction: float = 0.2
    min_captions: int = 3
    max_captions: int = 6
    wrong_caption_prob: float = 0.1
    off_topic_prob: float = 0.15
    max_caption_shift: float = 1.0
    train_fraction: float = 0.8
    val_fraction: float = 0.1
    crf: int = 23

    def __post_init__(self) -> None:
        checks = {
            "clip_seconds": self.clip_seconds > 0,
            "fps": self.fps > 0,
            "size": self.size >= 16,
            "sample_rate": self.sample_rate >= 8000,
            "min_captions": 1 <= self.min_captions <= self.max_captions,
            "off_topic_prob": 0 <= self.off_topic_prob and 0 <= self.wrong_caption_prob,
            "wrong_caption_prob": self.off_topic_prob + self.wrong_caption_prob <= 1,
            "val_fraction": 0 <= self.val_fraction and 0 <= self.train_fraction,
            "train_fraction": self.train_fraction + self.val_fraction <= 1 + 1e-9,
        }
        for name in ("second_object_prob", "second_object_silent_prob", "noise_prob", "no_text_fraction"):
            checks[name] = 0 <= getattr(self, name) <= 1
        for name, ok in checks.items():
            if not ok:
                raise ValueError(f"ToyWorldConfig.{name}: invalid value {getattr(self, name)!r}")

    @property
    def num_frames(self) -> int:
        return int(round(self.clip_seconds * self.fps))

    @property
    def num_samples(self) -> int:
        return int(round(self.clip_seconds * self.sample_rate))


@dataclass
class ObjectSpec:
    """One object: its attributes, its trajectory and its sound.

    Positions and radius are fractions of the frame side, so a spec renders at any ``size``.

    Attributes:
        shape, colour, size, motion: The attribute values (see the tables of the modality modules).
        rgb: Fill colour (the colour's RGB with a small brightness jitter).
        radius: Base radius, fraction of the frame side.
        x0, y0: Centre at t = 0 (fractions; y grows downwards).
        x1, y1: Centre at t = clip_seconds (equal to x0, y0 for static, grow, shrink and bounce).
        angle: Fixed rotation in degrees.
        bounce_period: Seconds between floor impacts (bounce only).
        bounce_phase: Phase in [0, 1) of the bounce: impacts at ``(k - phase) * period``.
        bounce_height: Hop height, fraction of the frame side (the floor is y0).
        pitch_hz: Base pitch after jitter (the centre of an up/down glide).
        gain: Peak amplitude of its sound; 0 for a silent object.
    """

    shape: str
    colour: str
    size: str
    motion: str
    rgb: tuple[int, int, int]
    radius: float
    x0: float
    y0: float
    x1: float
    y1: float
    angle: float
    bounce_period: float
    bounce_phase: float
    bounce_height: float
    pitch_hz: float
    gain: float

    @property
    def timbre(self) -> str:
        return SHAPE_TIMBRE[self.shape]


@dataclass
class ClipSpec:
    """Everything needed to render, synthesise and narrate one clip.

    Attributes:
        objects: The primary object first (its attributes are the clip's labels), then an optional second one
            (drawn behind it).
        background: One of :data:`BACKGROUNDS`.
        bg_rgb: Background base colour.
        bg_rgb2: Second background colour (gradient end, tile colour, blotch amplitude).
        texture_seed: Seed of the background texture.
        noise: Distractor sound: ``"none"`` or one of :data:`NOISES`.
        noise_level: Its peak amplitude.
        noise_seed: Seed of the noise floor and the distractor.
        captions: ``{start, end, text, kind}`` dicts sorted by start (``kind`` in :data:`CAPTION_KINDS`; the
            manifest keeps only start, end and text).
    """

    objects: list[ObjectSpec]
    background: str
    bg_rgb: tuple[int, int, int]
    bg_rgb2: tuple[int, int, int]
    texture_seed: int
    noise: str
    noise_level: float
    noise_seed: int
    captions: list[dict] = field(default_factory=list)

    @property
    def primary(self) -> ObjectSpec:
        return self.objects[0]

    def labels(self) -> dict[str, Any]:
        """The manifest's ``label_*`` values of this clip."""
        obj = self.primary
        return {
            "label_shape": obj.shape,
            "label_colour": obj.colour,
            "label_size": obj.size,
            "label_motion": obj.motion,
            "label_sound": obj.timbre,
            "label_pitch_hz": float(obj.pitch_hz),
            "label_n_objects": len(self.objects),
        }


def _sample_object(
    rng: np.random.Generator,
    cfg: ToyWorldConfig,
    exclude_colour: str | None = None,
    silent: bool = False,
    fixed: Mapping[str, str] | None = None,
) -> ObjectSpec:
    drawn = {  # always drawn, so that fixing an attribute leaves the rest of the random stream as it was
        "shape": _choice(rng, SHAPES),
        "colour": _choice(rng, [c for c in COLOURS if c != exclude_colour]),
        "size": _choice(rng, SIZES),
        "motion": _choice(rng, MOTIONS),
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
    background = _choice(rng, BACKGROUNDS, p=_BACKGROUND_PROBS)
    grey = rng.uniform(45, 200)
    bg_rgb = tuple(int(np.clip(grey + rng.uniform(-12, 12), 0, 255)) for _ in range(3))
    grey2 = np.clip(grey + rng.choice([-1, 1]) * rng.uniform(15, 40), 0, 255)
    bg_rgb2 = tuple(int(np.clip(grey2 + rng.uniform(-12, 12), 0, 255)) for _ in range(3))
    noise = _choice(rng, NOISES) if rng.random() < cfg.noise_prob else "none"
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


# ---------------------------------------------------------------------------------------------------
# Generation
# ---------------------------------------------------------------------------------------------------

LABEL_COLUMNS: tuple[str, ...] = (
    "label_shape",
    "label_colour",
    "label_size",
    "label_motion",
    "label_sound",
    "label_pitch_hz",
    "label_n_objects",
)


def clip_name(index: int) -> str:
    """``000123``: the file stem and the id suffix of clip ``index``."""
    return f"{index:06d}"


def write_clip(spec: ClipSpec, path: str | os.PathLike, cfg: ToyWorldConfig | None = None) -> dict[str, float]:
    """Renders, synthesises and encodes one clip to an mp4 (H.264 + AAC).

    Args:
        spec: The clip.
        path: Destination ``.mp4`` (written atomically by :func:`mmv.data.media.write_video`).
        cfg: The world's parameters.

    Returns:
        Seconds spent: ``{"render": ..., "synth": ..., "encode": ...}``.
    """
    from mmv.data.media import write_video

    cfg = cfg or ToyWorldConfig()
    t0 = time.perf_counter()
    frames = render_video(spec, cfg)
    t1 = time.perf_counter()
    audio = synthesize_audio(spec, cfg)
    t2 = time.perf_counter()
    write_video(path, frames, fps=cfg.fps, audio=audio, sample_rate=cfg.sample_rate, crf=cfg.crf)
    t3 = time.perf_counter()
    return {"render": t1 - t0, "synth": t2 - t1, "encode": t3 - t2}


def _worker_init() -> None:
    cv2.setNumThreads(1)


def _make_clip(job: tuple[int, int, ToyWorldConfig, str]) -> dict[str, Any]:
    """Pool task: spec, mp4 and manifest row (with timings) of one clip."""
    index, seed, cfg, clips_dir = job
    spec = clip_spec(seed, index, cfg)
    name = clip_name(index)
    timings = write_clip(spec, os.path.join(clips_dir, f"{name}.mp4"), cfg)
    row = {
        "clip_id": f"toyworld/{name}",
        "dataset": "toyworld",
        "video_path": f"clips/{name}.mp4",
        "audio_path": None,
        "image_path": None,
        "start": 0.0,
        "end": float(cfg.clip_seconds),
        "captions": [{"start": c["start"], "end": c["end"], "text": c["text"]} for c in spec.captions],
        **spec.labels(),
    }
    return {"row": row, "timings": timings}


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


@contextmanager
def _single_threaded_env() -> Iterator[None]:
    """Worker processes start with one BLAS/OpenMP thread each (they inherit the environment at start)."""
    names = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
    saved = {k: os.environ.get(k) for k in names}
    for k in names:
        os.environ.setdefault(k, "1")
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _mapping_table() -> str:
    lines = ["| colour | RGB | base pitch (Hz) |", "|---|---|---|"]
    lines += [f"| {c} | {COLOUR_RGB[c]} | {COLOUR_PITCH_HZ[c]:.2f} |" for c in COLOURS]
    lines += ["", "| shape | timbre (`label_sound`) |", "|---|---|"]
    lines += [f"| {s} | {SHAPE_TIMBRE[s]} |" for s in SHAPES]
    lines += ["", "| size | radius (fraction of the frame) | loudness (peak) |", "|---|---|---|"]
    lines += [f"| {z} | {SIZE_RADIUS[z]} | {SIZE_GAIN[z]} |" for z in SIZES]
    envelopes = {
        "static": "steady tone",
        "right": f"pulses accelerating {PULSE_RATES_HZ[0]:g} -> {PULSE_RATES_HZ[1]:g} Hz",
        "left": f"pulses slowing {PULSE_RATES_HZ[1]:g} -> {PULSE_RATES_HZ[0]:g} Hz",
        "up": f"pitch glide rising {GLIDE_SEMITONES:g} semitones (centred on the base pitch)",
        "down": f"pitch glide falling {GLIDE_SEMITONES:g} semitones",
        "grow": f"crescendo, +{CRESCENDO_DB:g} dB (radius x{GROW_SCALE[0]} -> x{GROW_SCALE[1]})",
        "shrink": f"decrescendo, -{CRESCENDO_DB:g} dB (radius x{GROW_SCALE[1]} -> x{GROW_SCALE[0]})",
        "bounce": "a struck pulse at each floor impact, in sync with the frames",
    }
    lines += ["", "| motion | sound envelope |", "|---|---|"]
    lines += [f"| {m} | {envelopes[m]} |" for m in MOTIONS]
    return "\n".join(lines)


def _readme(cfg: ToyWorldConfig, seed: int, num_clips: int, df: Any) -> str:
    params = "\n".join(f"| `{k}` | {v} |" for k, v in dataclasses.asdict(cfg).items())
    counts = df["split"].value_counts()
    split_counts = ", ".join(f"{k}: {int(counts.get(k, 0))}" for k in ("train", "val", "test"))
    no_text = int(sum(len(c) == 0 for c in df["captions"]))
    return f"""# Toy world: {num_clips} clips, seed {seed}

Generated by `mmv.data.toyworld.generate` (`python -m training.make_toyworld --clips {num_clips} --seed {seed}`).
Procedural data of this project, licensed like its code (Apache-2.0). The same seed and config regenerate
identical clips (the spec of clip *i* depends only on `(seed, i)`).

- `clips/NNNNNN.mp4`: H.264 + AAC, {cfg.num_frames} frames at {cfg.fps} fps ({cfg.clip_seconds:g} s),
  {cfg.size} x {cfg.size} RGB, {cfg.sample_rate} Hz mono audio.
- `manifest.parquet`: one row per clip (`docs/formats.md`, "Clip manifest"); the labels describe the primary
  object: `label_shape`, `label_colour`, `label_size`, `label_motion`, `label_sound` (timbre),
  `label_pitch_hz` (its base pitch after jitter; the centre of an up/down glide), `label_n_objects`.
- `toyworld.json`: the config and seed.

Splits: {split_counts}. Clips without narration: {no_text}.

**Do not flip these clips.** Narrations say left/right and top/bottom, and the right/left motions have
mirror-image rhythms in the audio, so a horizontal flip contradicts the narration, the audio and
`label_motion`; a vertical flip swaps up/down against the pitch glide.

## Parameters

| parameter | value |
|---|---|
{params}

## How attributes sound

Timbre follows the shape, pitch follows the colour (times a jitter of up to
+-{cfg.pitch_jitter_semitones} semitone), loudness follows the size, and the envelope follows the motion.
A second object (probability {cfg.second_object_prob}) has another colour, is drawn behind the primary,
and is silent with probability {cfg.second_object_silent_prob} (else it sounds at {SECOND_OBJECT_GAIN}x).
A distractor sound (hiss, 50-Hz hum or noise bursts) is added with probability {cfg.noise_prob}.

{_mapping_table()}

## Narration

{cfg.min_captions}-{cfg.max_captions} ASR-like captions per narrated clip (a fraction {cfg.no_text_fraction} of
clips has none), shifted up to {cfg.max_caption_shift} s from what they describe; per caption, off-topic with
probability {cfg.off_topic_prob} and wrong (wrong colour or shape) with probability {cfg.wrong_caption_prob}.
"""


def generate(
    out_dir: str | os.PathLike,
    num_clips: int,
    seed: int,
    cfg: ToyWorldConfig | None = None,
    workers: int | None = None,
    progress: bool = True,
) -> Any:
    """Generates a toy-world dataset: mp4s, ``manifest.parquet``, ``README.md`` and ``toyworld.json``.

    Clips are made in parallel by a pool of ``workers`` single-threaded processes (``spawn``: torch is never
    imported in them); ``workers <= 1`` makes them in this process. The result is identical for any
    ``workers``.

    Args:
        out_dir: Output directory (created; existing clips of the same names are overwritten).
        num_clips: Number of clips.
        seed: World seed.
        cfg: The world's parameters (defaults if None).
        workers: Processes; default ``os.cpu_count()``.
        progress: Show a tqdm bar.

    Returns:
        The manifest as written (pandas DataFrame, paths relative to ``out_dir``), with
        ``attrs["timings"]``: mean seconds per clip of ``render``, ``synth`` and ``encode``, and ``wall``:
        the total seconds.
    """
    import pandas as pd
    from tqdm import tqdm

    from mmv.data.manifest import save_manifest

    cfg = cfg or ToyWorldConfig()
    if num_clips < 1:
        raise ValueError(f"num_clips must be >= 1, got {num_clips}")
    out = Path(out_dir).resolve()
    clips_dir = out / "clips"
    clips_dir.mkdir(parents=True, exist_ok=True)
    workers = max(1, min(int(workers or os.cpu_count() or 1), num_clips))
    jobs = [(i, int(seed), cfg, str(clips_dir)) for i in range(num_clips)]
    start = time.perf_counter()
    bar = tqdm(total=num_clips, desc="toyworld", unit="clip", disable=not progress)
    results: list[dict[str, Any]] = []
    try:
        if workers == 1:
            _worker_init()
            for job in jobs:
                results.append(_make_clip(job))
                bar.update()
        else:
            import multiprocessing as mp

            with _single_threaded_env(), mp.get_context("spawn").Pool(workers, initializer=_worker_init) as pool:
                chunk = max(1, min(8, num_clips // (4 * workers)))
                for result in pool.imap(_make_clip, jobs, chunksize=chunk):
                    results.append(result)
                    bar.update()
    finally:
        bar.close()
    wall = time.perf_counter() - start

    rows = [r["row"] for r in results]
    for row, split in zip(rows, assign_splits(num_clips, seed, cfg)):
        row["split"] = split
        row["fold"] = None
    df = pd.DataFrame(rows)
    for col in ("label_shape", "label_colour", "label_size", "label_motion", "label_sound"):
        df[col] = df[col].astype(object)  # stored as parquet `string`, like the schema's text columns
    df["label_n_objects"] = df["label_n_objects"].astype("int64")
    df["label_pitch_hz"] = df["label_pitch_hz"].astype("float64")
    df.attrs["root"] = str(out)
    save_manifest(df, out / "manifest.parquet")

    meta = {
        "generator": "mmv.data.toyworld",
        "format_version": 1,
        "seed": int(seed),
        "num_clips": int(num_clips),
        "config": dataclasses.asdict(cfg),
        "horizontal_flip_consistent": False,
        "vertical_flip_consistent": False,
        "labels": list(LABEL_COLUMNS),
    }
    (out / "toyworld.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    (out / "README.md").write_text(_readme(cfg, seed, num_clips, df), encoding="utf-8")

    df.attrs["timings"] = {k: float(np.mean([r["timings"][k] for r in results])) for k in ("render", "synth", "encode")}
    df.attrs["timings"]["wall"] = wall
    return df
