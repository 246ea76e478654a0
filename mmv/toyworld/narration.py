"""Toy-world narration: ASR-like captions of a clip, noisy, sometimes wrong or off-topic, and misaligned.

Part of :mod:`mmv.toyworld` (which re-exports the public names below; its
:func:`~mmv.toyworld.sample.sample_attributes` calls :func:`make_captions`).

Narration (1.3 of ``shared/mmv_spec.md``: HowTo100M ASR is noisy and misaligned, which is why MIL-NCE takes
K candidates): ``no_text_fraction`` (20 %) of clips have no narration at all, AudioSet-like. The others get
3-6 lower-case, punctuation-free captions ``{start, end, text}`` inside ``[0, clip_seconds]``, sorted by start,
whose times are shifted from the moment they describe by up to ``max_caption_shift`` (1 s) and may overlap.
Each caption is, independently: off-topic with probability ``off_topic_prob`` (15 %, "don't forget to
subscribe", :data:`OFF_TOPIC`), wrong with ``wrong_caption_prob`` (10 %: a description with the wrong colour
or shape), else a true description, attribute, event ("now it's over on the right"), sound or second-object
remark (:data:`CAPTION_KINDS`). Filler words (um, uh, so, okay, now, ...: :data:`FILLERS`) and stutters are
sprinkled in. :func:`vocabulary_words` lists every word a caption can contain.

How the primary object's attributes are said (synonym tables; the labels describe the primary object):

==========  ====================================================================  ====================
attribute   narration (synonyms)                                                  table
==========  ====================================================================  ====================
shape       "ball", "box", "wedge", "star shape", ...                             :data:`SHAPE_WORDS`
colour      "crimson", "golden", "emerald", "turquoise", "cobalt", "violet", ...  :data:`COLOUR_WORDS`
size        "little", "tiny", "big", "huge", ...                                  :data:`SIZE_WORDS`
motion      "rolls to the right", "rises", "falls", "gets bigger", "hops",        :data:`MOTION_WORDS`
            "just sits there", ...
sound       "pure tone", "buzz", "rasp", "chime", ... (of the shape's timbre)     :data:`SOUND_WORDS`
==========  ====================================================================  ====================

Narrations say "left"/"right" and "top"/"bottom", so a flipped clip contradicts its narration. Note that
``up`` and ``down`` are stop words in :mod:`mmv.tokenizer`, so the up/down phrases always carry another word
("rises", "upward", "top", "falls", "sinks", "bottom").
"""

from __future__ import annotations

import numpy as np

from mmv.toyworld.spec import COLOURS, SHAPES, ClipSpec, ToyWorldConfig, choose

COLOUR_WORDS: dict[str, tuple[str, ...]] = {
    "red": ("red", "crimson", "scarlet", "cherry red"),
    "yellow": ("yellow", "golden", "lemon yellow"),
    "green": ("green", "emerald", "lime green"),
    "cyan": ("cyan", "turquoise", "aqua"),
    "blue": ("blue", "cobalt", "navy blue", "deep blue"),
    "purple": ("purple", "violet", "magenta"),
}
SHAPE_WORDS: dict[str, tuple[str, ...]] = {
    "circle": ("circle", "ball", "disc", "dot", "round thing"),
    "square": ("square", "box", "block", "square thing"),
    "triangle": ("triangle", "wedge", "three sided thing", "triangle shape"),
    "star": ("star", "star shape", "pointy star", "starry thing"),
}
SIZE_WORDS: dict[str, tuple[str, ...]] = {"small": ("small", "little", "tiny"), "large": ("big", "large", "huge")}
SOUND_WORDS: dict[str, tuple[str, ...]] = {
    "sine": ("pure tone", "whistle", "soft beep", "flute sound"),
    "square": ("buzz", "buzzy beep", "retro beep", "chiptune sound"),
    "sawtooth": ("rasp", "raspy tone", "brassy buzz", "harsh tone"),
    "bell": ("chime", "bell", "ding", "ringing bell"),
}
#: Per motion: (third-person verb phrases, -ing phrases, event remarks at the start, event remarks at the end).
MOTION_WORDS: dict[str, tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = {
    "static": (
        ("stays still", "just sits there", "doesn't move", "stays put", "rests in place"),
        ("sitting still", "just sitting there", "not moving", "resting"),
        ("it just stays there", "nothing is moving yet"),
        ("still not moving", "it's not going anywhere"),
    ),
    "right": (
        ("moves to the right", "rolls to the right", "slides over to the right", "drifts from left to right"),
        ("moving right", "rolling to the right", "sliding right", "heading right"),
        ("it starts on the left", "it begins over on the left side"),
        ("now it's over on the right", "all the way to the right side"),
    ),
    "left": (
        ("moves to the left", "rolls to the left", "slides over to the left", "drifts from right to left"),
        ("moving left", "rolling to the left", "sliding left", "heading left"),
        ("it starts on the right", "it begins over on the right side"),
        ("now it's over on the left", "all the way to the left side"),
    ),
    "up": (
        ("rises", "floats upward", "climbs to the top", "moves upward", "goes up to the top"),
        ("rising", "floating upward", "climbing", "going up to the top"),
        ("it starts at the bottom", "it begins low near the bottom"),
        ("now it's at the top", "and the tone rises too"),
    ),
    "down": (
        ("falls", "drops to the bottom", "sinks", "moves downward", "comes down to the bottom"),
        ("falling", "dropping", "sinking", "coming down to the bottom"),
        ("it starts at the top", "it begins high near the top"),
        ("now it lands at the bottom", "and the tone drops too"),
    ),
    "grow": (
        ("grows", "gets bigger", "expands", "grows larger", "swells"),
        ("growing", "getting bigger", "expanding", "swelling"),
        ("it starts out tiny", "it begins really small"),
        ("look how big it is now", "it keeps getting louder and bigger"),
    ),
    "shrink": (
        ("shrinks", "gets smaller", "shrinks away", "contracts"),
        ("shrinking", "getting smaller", "shrinking away", "contracting"),
        ("it starts out big", "it begins really large"),
        ("now it's really small", "it keeps getting quieter and smaller"),
    ),
    "bounce": (
        ("bounces", "bounces around", "hops", "jumps and lands"),
        ("bouncing", "hopping", "jumping around", "bouncing along"),
        ("boing there it bounces", "hear it hit the floor"),
        ("and it bounces again", "another bounce"),
    ),
}
FILLERS: tuple[str, ...] = ("um", "uh", "so", "okay", "now", "you know", "like", "alright", "well")
#: Description templates; slots: {c} colour, {s} shape, {z} size, {m} verb phrase, {mi} -ing phrase.
DESCRIBE_TEMPLATES: tuple[str, ...] = (
    "a {c} {s} {m}",
    "so here we have the {c} {s} {mi}",
    "the {c} one {m}",
    "okay so this {z} {c} {s} {m}",
    "and now the {s} {m}",
    "you can see the {c} {s} {mi}",
    "watch the {z} {s} it {m}",
    "here is a {z} {c} {s} that {m}",
    "look at this {c} {s} {mi}",
    "our {c} {s} {m}",
)
#: Templates about one attribute; slots as above plus {snd} (the sound).
ATTRIBUTE_TEMPLATES: dict[str, tuple[str, ...]] = {
    "colour": ("it is {c}", "this one is {c}", "the colour is {c}", "a nice {c} colour"),
    "shape": ("this is a {s}", "that's a {s}", "we have a {s} here"),
    "size": ("it's a {z} one", "pretty {z} actually", "the {s} is {z}"),
    "sound": ("listen to that {snd}", "you can hear the {snd}", "it makes a {snd} sound", "hear that {snd}"),
}
#: Remarks about the second object; slots {c2}, {s2}, {z2}.
SECOND_TEMPLATES: tuple[str, ...] = (
    "there's also a {c2} {s2} in the back",
    "and a {z2} {c2} {s2} too",
    "the other one is a {c2} {s2}",
    "ignore the {c2} {s2} behind it",
)
SILENT_SECOND_TEMPLATES: tuple[str, ...] = ("the {c2} {s2} is quiet", "the {c2} one makes no sound")
OFF_TOPIC: tuple[str, ...] = (
    "don't forget to subscribe",
    "let me adjust the camera",
    "hi everyone welcome back to the channel",
    "hold on my phone is ringing",
    "okay let me just zoom in a bit",
    "make sure to hit the like button",
    "i'll put a link in the description",
    "sorry about the noise",
    "we'll come back to that later",
    "let me grab a coffee",
    "is this thing on",
    "thanks for watching",
)
CAPTION_KINDS: tuple[str, ...] = ("describe", "attribute", "event", "second", "wrong", "off_topic")


def vocabulary_words() -> list[str]:
    """Every word a toy-world caption can contain, sorted (tokens as :func:`mmv.tokenizer.tokenize` splits them).

    Slots and braces are removed from the templates; all synonym tables, fillers and off-topic sentences are
    included, so a vocabulary built from this list has no ``<unk>`` on toy-world narrations.
    """
    texts: list[str] = [*FILLERS, *OFF_TOPIC]
    for table in (COLOUR_WORDS, SHAPE_WORDS, SIZE_WORDS, SOUND_WORDS):
        for words in table.values():
            texts.extend(words)
    for groups in MOTION_WORDS.values():
        for words in groups:
            texts.extend(words)
    templates = [*DESCRIBE_TEMPLATES, *SECOND_TEMPLATES, *SILENT_SECOND_TEMPLATES]
    for group in ATTRIBUTE_TEMPLATES.values():
        templates.extend(group)
    for template in templates:
        texts.append(" ".join(w for w in template.split() if not w.startswith("{")))
    return sorted({w for text in texts for w in text.split()})


def clean_description(shape: str, colour: str, motion: str) -> str:
    """A noise-free description of a primary object, as a query for attribute-level retrieval.

    The first description template (``"a {c} {s} {m}"``) filled with each value's *first* synonym: the plain
    colour and shape names and the first verb phrase of the motion, e.g. ``clean_description("circle", "red",
    "right") == "a red circle moves to the right"``. No filler, no stutter, no size (the template has none),
    so the same attributes always give the same sentence.
    """
    for name, table, value in (
        ("shape", SHAPE_WORDS, shape),
        ("colour", COLOUR_WORDS, colour),
        ("motion", MOTION_WORDS, motion),
    ):
        if value not in table:
            raise ValueError(f"clean_description: unknown {name} {value!r} (choose from {tuple(table)})")
    return DESCRIBE_TEMPLATES[0].format(
        c=COLOUR_WORDS[colour][0], s=SHAPE_WORDS[shape][0], m=MOTION_WORDS[motion][0][0]
    )


def _asr_noise(text: str, rng: np.random.Generator) -> str:
    """Fillers in front or in the middle, and the odd stutter, as in spoken narration."""
    words = text.split()
    if rng.random() < 0.2 and len(words) > 2:
        i = int(rng.integers(1, len(words)))
        words.insert(i, choose(rng, FILLERS))
    if rng.random() < 0.1:
        i = int(rng.integers(len(words)))
        words.insert(i, words[i])
    if rng.random() < 0.4 and words[0] not in FILLERS:
        words.insert(0, choose(rng, FILLERS))
    return " ".join(words)


def _describe(rng: np.random.Generator, shape: str, colour: str, size: str, motion: str, need: str = "") -> str:
    """A description; ``need`` (e.g. ``"{c}"``) restricts :data:`DESCRIBE_TEMPLATES` to those with that slot."""
    verbs, ings, _, _ = MOTION_WORDS[motion]
    return choose(rng, [t for t in DESCRIBE_TEMPLATES if need in t]).format(
        c=choose(rng, COLOUR_WORDS[colour]),
        s=choose(rng, SHAPE_WORDS[shape]),
        z=choose(rng, SIZE_WORDS[size]),
        m=choose(rng, verbs),
        mi=choose(rng, ings),
    )


def make_captions(spec: ClipSpec, rng: np.random.Generator, cfg: ToyWorldConfig | None = None) -> list[dict]:
    """ASR-like narrations of a clip: noisy, sometimes wrong or off-topic, and misaligned in time.

    With probability ``no_text_fraction`` the clip gets none. Otherwise ``min_captions..max_captions``
    captions, each anchored at the moment it describes (an event at the start or end, a description anywhere)
    then shifted by up to ``max_caption_shift`` seconds and clipped into ``[0, clip_seconds]``; its duration
    grows with its word count (about 0.3 s a word).

    Args:
        spec: The clip (its objects).
        rng: Random generator.
        cfg: The world's parameters.

    Returns:
        ``{"start": float, "end": float, "text": str, "kind": str}`` dicts sorted by (start, end); times are
        rounded to 10 ms.
    """

    cfg = cfg or ToyWorldConfig()
    if rng.random() < cfg.no_text_fraction:
        return []
    obj, total = spec.primary, cfg.clip_seconds
    second = spec.objects[1] if len(spec.objects) > 1 else None
    n = int(rng.integers(cfg.min_captions, cfg.max_captions + 1))
    captions = []
    for _ in range(n):
        u = rng.random()
        anchor = float(rng.uniform(0.1, 0.9)) * total
        if u < cfg.off_topic_prob:
            kind, text = "off_topic", choose(rng, OFF_TOPIC)
        elif u < cfg.off_topic_prob + cfg.wrong_caption_prob:
            kind = "wrong"
            if rng.random() < 0.5:
                colour = choose(rng, [c for c in COLOURS if c != obj.colour])
                text = _describe(rng, obj.shape, colour, obj.size, obj.motion, need="{c}")
            else:
                shape = choose(rng, [s for s in SHAPES if s != obj.shape])
                text = _describe(rng, shape, obj.colour, obj.size, obj.motion, need="{s}")
        else:
            kind = choose(rng, ("describe", "attribute", "event", "second"), p=(0.45, 0.25, 0.2, 0.1))
            if kind == "second" and second is None:
                kind = "describe"
            if kind == "describe":
                text = _describe(rng, obj.shape, obj.colour, obj.size, obj.motion)
            elif kind == "attribute":
                which = choose(rng, tuple(ATTRIBUTE_TEMPLATES))
                text = choose(rng, ATTRIBUTE_TEMPLATES[which]).format(
                    c=choose(rng, COLOUR_WORDS[obj.colour]),
                    s=choose(rng, SHAPE_WORDS[obj.shape]),
                    z=choose(rng, SIZE_WORDS[obj.size]),
                    snd=choose(rng, SOUND_WORDS[obj.timbre]),
                )
            elif kind == "event":
                at_end = bool(rng.random() < 0.5)
                text = choose(rng, MOTION_WORDS[obj.motion][3 if at_end else 2])
                anchor = (0.9 if at_end else 0.1) * total
            else:
                assert second is not None
                templates = SILENT_SECOND_TEMPLATES if second.gain == 0 and rng.random() < 0.5 else SECOND_TEMPLATES
                text = choose(rng, templates).format(
                    c2=choose(rng, COLOUR_WORDS[second.colour]),
                    s2=choose(rng, SHAPE_WORDS[second.shape]),
                    z2=choose(rng, SIZE_WORDS[second.size]),
                )
        if kind != "off_topic":
            text = _asr_noise(text, rng)
        duration = min(total, float(np.clip(0.3 * len(text.split()) + rng.uniform(0.0, 0.4), 0.6, 2.5)))
        start = anchor - duration / 2 + float(rng.uniform(-cfg.max_caption_shift, cfg.max_caption_shift))
        start = round(float(np.clip(start, 0.0, total - duration)), 2)
        end = round(min(start + duration, total), 2)
        captions.append({"start": start, "end": end, "text": text, "kind": kind})
    captions.sort(key=lambda c: (c["start"], c["end"]))
    return captions
