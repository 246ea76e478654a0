"""The toy world's attribute values, its :class:`ToyWorldConfig` and the specs of a clip.

Every other module of :mod:`mmv.toyworld` reads these and none of them is read here, so the package's imports
run one way: ``spec`` <- ``render`` / ``sound`` / ``narration`` <- ``sample`` <- ``generate``, and ``tasks``
(what evaluation asks of a toy world) on the side.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# ---------------------------------------------------------------------------------------------------
# The attributes (how each value looks, sounds and is said: the tables of the three modality modules)
# ---------------------------------------------------------------------------------------------------

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star")
COLOURS: tuple[str, ...] = ("red", "yellow", "green", "cyan", "blue", "purple")
SIZES: tuple[str, ...] = ("small", "large")
MOTIONS: tuple[str, ...] = ("static", "right", "left", "up", "down", "grow", "shrink", "bounce")
NOISES: tuple[str, ...] = ("hiss", "hum", "bursts")
BACKGROUNDS: tuple[str, ...] = ("plain", "gradient", "blotches", "tiles")
BACKGROUND_PROBS = (0.4, 0.25, 0.2, 0.15)
# How each shape sounds (``label_sound``); the sound module's table says how each timbre is made.
SHAPE_TIMBRE: dict[str, str] = {"circle": "sine", "square": "square", "triangle": "sawtooth", "star": "bell"}

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


def choose(rng: np.random.Generator, options: Sequence[Any], p: Sequence[float] | None = None) -> Any:
    """One of ``options`` (with probabilities ``p``), drawn from ``rng``: every attribute, word and sentence draw."""
    return options[int(rng.choice(len(options), p=p))]
