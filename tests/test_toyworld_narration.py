"""Toy-world narration: caption times and counts, no-text, wrong and off-topic rates, truthful captions, vocabulary."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import mmv.toyworld as tw
from mmv.toyworld import narration as narr

CFG = tw.ToyWorldConfig()


def words(phrases) -> set[str]:
    return {w for p in phrases for w in p.split()}


def test_caption_times_and_counts() -> None:
    specs = [tw.clip_spec(3, i, CFG) for i in range(300)]
    for spec in specs:
        caps = spec.captions
        assert len(caps) == 0 or CFG.min_captions <= len(caps) <= CFG.max_captions
        for c in caps:
            assert 0.0 <= c["start"] <= c["end"] <= CFG.clip_seconds
            assert c["end"] - c["start"] >= 0.5
            assert c["text"] == c["text"].strip().lower() and c["text"]
            assert c["kind"] in narr.CAPTION_KINDS
        assert [(c["start"], c["end"]) for c in caps] == sorted((c["start"], c["end"]) for c in caps)


@pytest.mark.parametrize("fraction", [0.0, 0.2, 0.6])
def test_no_text_fraction_is_respected(fraction: float) -> None:
    cfg = dataclasses.replace(CFG, no_text_fraction=fraction)
    empty = np.mean([len(tw.clip_spec(11, i, cfg).captions) == 0 for i in range(400)])
    assert empty == pytest.approx(fraction, abs=0.06)  # 3 standard deviations of a binomial(400, 0.2) share


def test_wrong_and_off_topic_rates() -> None:
    cfg = dataclasses.replace(CFG, no_text_fraction=0.0)
    kinds, wrong_ok = [], []
    for i in range(400):
        spec = tw.clip_spec(5, i, cfg)
        obj = spec.primary
        for c in spec.captions:
            kinds.append(c["kind"])
            if c["kind"] == "wrong":  # says a word of another colour or shape that no true synonym has
                truth = words(narr.COLOUR_WORDS[obj.colour]) | words(narr.SHAPE_WORDS[obj.shape])
                others = [w for col in tw.COLOURS if col != obj.colour for w in narr.COLOUR_WORDS[col]]
                others += [w for s in tw.SHAPES if s != obj.shape for w in narr.SHAPE_WORDS[s]]
                wrong_ok.append(bool((words(others) - truth) & set(c["text"].split())))
            if c["kind"] == "off_topic":
                assert c["text"] in narr.OFF_TOPIC
    kinds = np.array(kinds)
    assert len(kinds) > 1500
    assert np.mean(kinds == "wrong") == pytest.approx(cfg.wrong_caption_prob, abs=0.025)
    assert np.mean(kinds == "off_topic") == pytest.approx(cfg.off_topic_prob, abs=0.03)
    assert all(wrong_ok)
    zero = dataclasses.replace(cfg, wrong_caption_prob=0.0, off_topic_prob=0.0)
    assert {c["kind"] for i in range(100) for c in tw.clip_spec(5, i, zero).captions} <= {
        "describe",
        "attribute",
        "event",
        "second",
    }


def test_true_captions_name_the_truth() -> None:
    cfg = dataclasses.replace(CFG, no_text_fraction=0.0)
    for i in range(200):
        spec = tw.clip_spec(9, i, cfg)
        obj = spec.primary
        truth = [*narr.COLOUR_WORDS[obj.colour], *narr.SHAPE_WORDS[obj.shape], *narr.MOTION_WORDS[obj.motion][0]]
        truth += narr.MOTION_WORDS[obj.motion][1]
        for c in spec.captions:
            tokens = set(c["text"].split())  # fillers may be inserted inside a phrase: compare word sets
            if c["kind"] == "describe":
                assert any(words([w]) <= tokens for w in truth), c["text"]
            if c["kind"] == "event":
                events = [*narr.MOTION_WORDS[obj.motion][2], *narr.MOTION_WORDS[obj.motion][3]]
                assert any(words([e]) <= tokens for e in events), c["text"]


def test_vocabulary_covers_every_caption() -> None:
    from mmv.tokenizer import tokenize

    vocab = set(narr.vocabulary_words())
    assert {"red", "crimson", "circle", "ball", "right", "subscribe", "um"} <= vocab
    for i in range(300):
        for c in tw.clip_spec(2, i, CFG).captions:
            tokens = tokenize(c["text"])
            assert tokens == c["text"].split()  # no punctuation: the tokenizer splits as the generator joins
            assert set(tokens) <= vocab, c["text"]
