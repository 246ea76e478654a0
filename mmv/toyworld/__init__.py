"""The toy world: procedurally generated clips whose video, audio and narration are genuinely correlated.

Nothing can be downloaded at run time, so the demo model is trained on this synthetic world
(:mod:`mmv.toyworld.generate` describes it in full). Modules, in import order (each reads only those before it):

====================  ========================================================================
``spec``              attribute values, :class:`ToyWorldConfig`, :class:`ObjectSpec`, :class:`ClipSpec`
``render``            the video of a clip (fill colour, radius, trajectory, background)
``sound``             its audio (timbre, pitch, loudness, envelope, distractors)
``narration``         its captions (synonyms, fillers, wrong and off-topic sentences)
``sample``            the seeded drawing of a clip's spec (:func:`clip_spec`)
``generate``          writing a world: mp4s, manifest, README, ``toyworld.json``
``tasks``             what evaluation asks of a toy world (clean descriptions)
``deflation_report``  the toy world's deflation report and zero-shot prompts (on :mod:`mmv.deflation`)
====================  ========================================================================

No module of :mod:`mmv` outside this package imports it: toy-world jobs pass what they need in.
"""

from __future__ import annotations

from mmv.toyworld.generate import generate, write_clip
from mmv.toyworld.narration import (
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
    clean_description,
    make_captions,
    vocabulary_words,
)
from mmv.toyworld.render import COLOUR_RGB, GROW_SCALE, SIZE_RADIUS, UNIT_SHAPES, object_trajectory, render_video
from mmv.toyworld.sample import assign_splits, balanced_attributes, clip_spec, sample_attributes
from mmv.toyworld.sound import (
    COLOUR_PITCH_HZ,
    CRESCENDO_DB,
    GLIDE_SEMITONES,
    MAX_PARTIAL_HZ,
    PULSE_RATES_HZ,
    SECOND_OBJECT_GAIN,
    SIZE_GAIN,
    motion_envelope,
    synthesize_audio,
)
from mmv.toyworld.spec import (
    BACKGROUNDS,
    COLOURS,
    LABEL_COLUMNS,
    MOTIONS,
    NOISES,
    SHAPE_TIMBRE,
    SHAPES,
    SIZES,
    ClipSpec,
    ObjectSpec,
    ToyWorldConfig,
    clip_name,
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
    "clean_description",
    "clip_name",
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
