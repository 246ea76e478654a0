"""Tokenizer, stop words and vocabulary."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mmv.tokenizer import (
    ENGLISH_STOP_WORDS,
    PAD,
    UNK,
    Vocabulary,
    tokenize,
)

# ---------------------------------------------------------------------------------------------------
# Tokenizer
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("Hello, World!", ["hello", "world"]),
        ("  multiple   spaces\tand\nnewlines ", ["multiple", "spaces", "and", "newlines"]),
        ("Don't STOP--now!", ["don't", "stop", "now"]),
        ("it\u2019s the dog\u2019s bone", ["it's", "the", "dog's", "bone"]),
        ("'quoted' dogs' 'tis", ["quoted", "dogs", "tis"]),
        ("well-known e-mail", ["well", "known", "e", "mail"]),
        ("Add 2.5 cups (500ml) of flour.", ["add", "2", "5", "cups", "500ml", "of", "flour"]),
        ("Café CRÈME brûlée", ["café", "crème", "brûlée"]),
        ("Cafe\u0301", ["café"]),  # combining accent, NFKC-composed
        ("\uff26\uff35\uff2c\uff2c width", ["full", "width"]),  # full-width letters
        ("soft\u00adhyphen zero\u200bwidth", ["softhyphen", "zerowidth"]),  # format chars deleted
        ("Straße ΣΟΦΙΑ", ["straße", "σοφια"]),
        ("emoji 🎉 party $100 #tag @user", ["emoji", "party", "100", "tag", "user"]),
        ("日本語 テキスト", ["日本語", "テキスト"]),
        ("under_score a/b", ["under", "score", "a", "b"]),
        ("", []),
        ("?!... --", []),
    ],
)
def test_tokenize_table(text: str, tokens: list[str]) -> None:
    assert tokenize(text) == tokens


def test_stop_words_are_lower_case_function_words() -> None:
    assert 90 <= len(ENGLISH_STOP_WORDS) <= 130
    assert all(w == w.lower() and tokenize(w) == [w] for w in ENGLISH_STOP_WORDS)
    for w in ("the", "a", "and", "of", "is", "you", "to", "don't"):
        assert w in ENGLISH_STOP_WORDS
    for w in ("dog", "cut", "onion", "guitar", "play"):
        assert w not in ENGLISH_STOP_WORDS


# ---------------------------------------------------------------------------------------------------
# Vocabulary
# ---------------------------------------------------------------------------------------------------

CAPTIONS = [
    "Cut the onion, then cut the carrot.",
    "the dog plays with the ball",
    "Play the guitar! Cut the tomato.",
    "zebra apple",
]


def test_vocabulary_build_is_deterministic() -> None:
    vocab = Vocabulary.build(CAPTIONS)
    assert vocab.words[:2] == [PAD, UNK]
    # "the" x6, "cut" x3, then count-1 words alphabetically.
    assert vocab.words[2:5] == ["the", "cut", "apple"]
    assert Vocabulary.build(list(reversed(CAPTIONS))) == vocab
    assert vocab.words[4:] == sorted(vocab.words[4:])

    small = Vocabulary.build(CAPTIONS, min_count=2)
    assert small.words == [PAD, UNK, "the", "cut"]
    capped = Vocabulary.build(CAPTIONS, max_size=4)
    assert capped.words == [PAD, UNK, "the", "cut"] and len(capped) == 4
    no_stop = Vocabulary.build(CAPTIONS, remove_stop_words=True)
    assert "the" not in no_stop and "with" not in no_stop and "cut" in no_stop


def test_vocabulary_basics(tmp_path: Path) -> None:
    vocab = Vocabulary.from_words(["dog", "cat", UNK, "dog", "bird"])
    assert vocab.words == [PAD, UNK, "dog", "cat", "bird"]
    assert len(vocab) == 5 and "cat" in vocab and "cow" not in vocab
    assert vocab.index(PAD) == 0 and vocab.index(UNK) == 1
    assert vocab.index("cat") == 3 and vocab.index("cow") == 1
    with pytest.raises(ValueError, match="must start"):
        Vocabulary(["dog", PAD, UNK])
    with pytest.raises(ValueError, match="duplicate"):
        Vocabulary([PAD, UNK, "dog", "dog"])

    vocab = Vocabulary.from_words(["naïve", "日本", "don't"])
    path = tmp_path / "vocab.txt"
    vocab.save(path)
    assert path.read_text(encoding="utf-8") == "<pad>\n<unk>\nnaïve\n日本\ndon't\n"
    assert Vocabulary.load(path) == vocab
    (tmp_path / "bad.txt").write_text("dog\ncat\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad\.txt"):
        Vocabulary.load(tmp_path / "bad.txt")


def test_encode_removes_stop_words_then_truncates() -> None:
    vocab = Vocabulary.from_words(["cut", "onion", "carrot", "the", "then", "slowly"])
    ids = {w: vocab.index(w) for w in vocab.words}
    text = "Cut the onion, then the CARROT slowly"
    assert vocab.encode(text, 6) == [ids["cut"], ids["onion"], ids["carrot"], ids["slowly"], 0, 0]
    # Truncation happens after stop-word removal: 3 content words survive, not "cut the onion".
    assert vocab.encode(text, 3) == [ids["cut"], ids["onion"], ids["carrot"]]
    assert vocab.encode(text, 3, remove_stop_words=False) == [ids["cut"], ids["the"], ids["onion"]]
    assert vocab.encode("cut the zucchini", 4) == [ids["cut"], 1, 0, 0]
    assert vocab.encode("the a of", 4) == [0, 0, 0, 0]
    assert vocab.decode(vocab.encode(text, 6)) == ["cut", "onion", "carrot", "slowly"]


def test_encode_batch_flat_and_ragged() -> None:
    vocab = Vocabulary.from_words(["cut", "onion", "dog", "runs"])
    flat = vocab.encode_batch(["cut onion", "the dog runs", ""], max_words=4)
    assert flat.dtype == torch.long
    assert flat.tolist() == [[2, 3, 0, 0], [4, 5, 0, 0], [0, 0, 0, 0]]

    bags = vocab.encode_batch([["cut onion"], ["dog", "runs fast", "cut"]], max_words=3)
    assert tuple(bags.shape) == (2, 3, 3)
    assert bags[0].tolist() == [[2, 3, 0], [0, 0, 0], [0, 0, 0]]  # ragged: all-pad rows
    assert bags[1].tolist() == [[4, 0, 0], [5, 1, 0], [2, 0, 0]]
    assert tuple(vocab.encode_batch([["dog"], []], max_words=2, max_sentences=4).shape) == (2, 4, 2)
    assert tuple(vocab.encode_batch([["a", "b", "c"]], max_words=2, max_sentences=2).shape) == (1, 2, 2)
    with pytest.raises(ValueError, match="all strings"):
        vocab.encode_batch(["dog", ["cat"]], max_words=2)
