"""Text input: tokenizer, stop words and vocabulary (word-vector files: :mod:`mmv.word_vectors`).

The original fed ASR narrations through DMVR's ``WordTokenizer`` (strip punctuation, lower-case, split on
whitespace, unknown words -> ``<unk>``, pad with ``<pad>``), dropped English stop words and kept at most
16 words per sentence, looked up in a 2^16 x 300 GoogleNews word2vec table (``shared/mmv_spec.md``
section 1.3). This module does the same with our own, documented choices where the sources are silent:

* ``<pad>`` is always id 0 and ``<unk>`` id 1.
* :func:`tokenize` lower-cases, treats every Unicode punctuation or symbol character as a word
  boundary, and keeps an apostrophe *between two letters or digits* inside its word ("don't",
  "o'clock", "it's" stay one token; word2vec vocabularies carry such forms). Other apostrophes and
  quotes are boundaries ("'hello'" -> "hello", "dogs'" -> "dogs"). Hyphens split ("well-known" ->
  "well", "known") rather than being deleted as in DMVR ("wellknown" would almost always be unknown).
* Stop words are removed *before* truncating to ``max_words`` (so 16 content words are kept).
"""

from __future__ import annotations

import unicodedata
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import torch

PAD, UNK = "<pad>", "<unk>"
PAD_ID, UNK_ID = 0, 1

# Our own list of common English function words: articles and determiners, personal and possessive
# pronouns, prepositions, conjunctions, auxiliary and modal verbs, a few frequent adverbs, the most
# common contractions (the tokenizer keeps "don't" whole) and the ASR fillers "uh"/"um". Negations
# ("not", "no", "don't") are included, as in most classic lists.
ENGLISH_STOP_WORDS: frozenset[str] = frozenset(
    """
    a an the this that these those
    i me my we us our you your he him his she her it its they them their
    what which who
    am is are was were be been being have has had do does did
    will would should can could may might must
    and but or if then so than because as while
    of at by for with about between into through before after
    to from up down in out on off over under
    here there when where why how all any both each more most other some such
    no not only too very just also now
    i'm you're it's we're they're that's there's let's don't doesn't didn't isn't can't
    uh um
    """.split()
)

_APOSTROPHES = frozenset("'\u2019\u2018\u02bc")


def _is_word_char(ch: str) -> bool:
    """Letters, digits and combining marks are word characters; everything else separates words."""
    cat = unicodedata.category(ch)
    return cat[0] in "LNM"


def tokenize(text: str) -> list[str]:
    """Splits a caption into lower-case word tokens.

    Steps: NFKC normalisation (full-width letters, ligatures), ``str.lower()``, format characters
    (category Cf: soft hyphen, zero-width space) deleted, then every character that is not a letter, digit
    or combining mark is a word boundary, except an apostrophe (', U+2019, U+2018, U+02BC) that has a
    word character on both sides: it is kept, as ``'``, inside the word.

    Examples:
        ``"Don't STOP--now!"`` -> ``["don't", "stop", "now"]``;
        ``"Café: 3.5 kg"`` -> ``["café", "3", "5", "kg"]``.

    Args:
        text: any Unicode string.

    Returns:
        The tokens, in order; empty for a string without word characters.
    """
    text = unicodedata.normalize("NFKC", text).lower()
    chars = [ch for ch in text if unicodedata.category(ch) != "Cf"]
    out: list[str] = []
    n = len(chars)
    for i, ch in enumerate(chars):
        if _is_word_char(ch):
            out.append(ch)
        elif ch in _APOSTROPHES and 0 < i < n - 1 and _is_word_char(chars[i - 1]) and _is_word_char(chars[i + 1]):
            out.append("'")
        else:
            out.append(" ")
    return "".join(out).split()


def remove_stop_words(tokens: Iterable[str]) -> list[str]:
    """Drops the tokens in :data:`ENGLISH_STOP_WORDS`."""
    return [t for t in tokens if t not in ENGLISH_STOP_WORDS]


class Vocabulary:
    """An ordered word list with ``<pad>`` at id 0 and ``<unk>`` at id 1.

    Args:
        words: every entry, ids in order; must start with ``<pad>``, ``<unk>`` and have no duplicates
            (use :meth:`from_words` to have them added).
    """

    def __init__(self, words: Sequence[str]) -> None:
        words = list(words)
        if len(words) < 2 or words[PAD_ID] != PAD or words[UNK_ID] != UNK:
            raise ValueError(f"Vocabulary: must start with {PAD!r}, {UNK!r}, got {words[:2]!r}")
        self.words: list[str] = words
        self._ids: dict[str, int] = {}
        for i, w in enumerate(words):
            if not isinstance(w, str) or not w:
                raise ValueError(f"Vocabulary: entry {i} must be a non-empty string, got {w!r}")
            if w in self._ids:
                raise ValueError(f"Vocabulary: duplicate word {w!r} at ids {self._ids[w]} and {i}")
            self._ids[w] = i

    @classmethod
    def from_words(cls, words: Iterable[str]) -> Vocabulary:
        """A vocabulary of ``<pad>``, ``<unk>`` and then ``words`` in order.

        ``words``' own ``<pad>``/``<unk>`` entries and repeats are dropped.
        """
        seen = {PAD, UNK}
        ordered = [PAD, UNK]
        for w in words:
            if w not in seen:
                seen.add(w)
                ordered.append(w)
        return cls(ordered)

    @classmethod
    def build(
        cls,
        captions: Iterable[str],
        min_count: int = 1,
        max_size: int | None = None,
        remove_stop_words: bool = False,
    ) -> Vocabulary:
        """Builds a vocabulary from raw captions (tokenized with :func:`tokenize`).

        Words are ordered by decreasing count, ties alphabetically, so the result does not depend on the
        order of the captions.

        Args:
            captions: raw caption strings.
            min_count: words seen fewer times are left out.
            max_size: total size *including* ``<pad>`` and ``<unk>`` (like ``TextConfig.vocab_size``);
                ``None`` keeps every word.
            remove_stop_words: leave stop words out of the vocabulary (they are removed when encoding
                anyway, unless encoding is asked to keep them).

        Returns:
            The vocabulary.
        """
        if min_count < 1:
            raise ValueError(f"min_count: must be >= 1, got {min_count}")
        if max_size is not None and max_size < 2:
            raise ValueError(f"max_size: must be >= 2 (<pad> and <unk>), got {max_size}")
        counts: Counter[str] = Counter()
        for caption in captions:
            tokens = tokenize(caption)
            counts.update(t for t in tokens if not (remove_stop_words and t in ENGLISH_STOP_WORDS))
        counts.pop(PAD, None)
        counts.pop(UNK, None)
        ranked = sorted((w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w))
        if max_size is not None:
            ranked = ranked[: max_size - 2]
        return cls([PAD, UNK, *ranked])

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: object) -> bool:
        return word in self._ids

    def __iter__(self) -> Iterator[str]:
        return iter(self.words)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and self.words == other.words

    def __repr__(self) -> str:
        return f"Vocabulary({len(self)} words: {self.words[:6]!r}{'...' if len(self) > 6 else ''})"

    def index(self, word: str) -> int:
        """Id of ``word``; ``<unk>``'s id (1) for a word not in the vocabulary."""
        return self._ids.get(word, UNK_ID)

    def decode(self, ids: Iterable[int], skip_pad: bool = True) -> list[str]:
        """Words of ``ids`` (``<pad>`` left out unless ``skip_pad`` is False)."""
        return [self.words[int(i)] for i in ids if not (skip_pad and int(i) == PAD_ID)]

    def encode(self, text: str, max_words: int, remove_stop_words: bool = True) -> list[int]:
        """Tokenizes one caption into exactly ``max_words`` ids.

        Stop words are removed first, then the tokens are truncated to ``max_words``, looked up (unknown
        -> 1) and padded with 0 at the end.

        Args:
            text: the raw caption.
            max_words: L, the output length.
            remove_stop_words: drop :data:`ENGLISH_STOP_WORDS` before truncating (the paper does).

        Returns:
            ``max_words`` ids.
        """
        if max_words < 1:
            raise ValueError(f"max_words: must be >= 1, got {max_words}")
        if not isinstance(text, str):
            raise TypeError(f"text: expected a str, got {type(text).__name__}")
        tokens = tokenize(text)
        if remove_stop_words:
            tokens = [t for t in tokens if t not in ENGLISH_STOP_WORDS]
        ids = [self.index(t) for t in tokens[:max_words]]
        return ids + [PAD_ID] * (max_words - len(ids))

    def encode_batch(
        self,
        texts: Sequence[str] | Sequence[Sequence[str]],
        max_words: int,
        remove_stop_words: bool = True,
        max_sentences: int | None = None,
    ) -> torch.Tensor:
        """Encodes a batch of captions, or a batch of caption *bags* (MIL-NCE's K sentences per clip).

        Args:
            texts: ``B`` strings, or ``B`` lists of strings (ragged).
            max_words: L.
            remove_stop_words: see :meth:`encode`.
            max_sentences: for bags, K; bags are truncated or padded to it. ``None``: K is the longest
                bag (at least 1). Padding sentences are all-``<pad>`` rows (the text tower maps them to
                zero vectors).

        Returns:
            LongTensor ``[B, L]`` for strings, ``[B, K, L]`` for bags (``[0, L]`` for an empty batch).
        """
        if len(texts) == 0:
            return torch.zeros((0, max_words), dtype=torch.long)
        if all(isinstance(t, str) for t in texts):
            rows = [self.encode(t, max_words, remove_stop_words) for t in texts]
            return torch.tensor(rows, dtype=torch.long)
        if any(isinstance(t, str) or not isinstance(t, Sequence) for t in texts):
            raise ValueError("texts: must be all strings ([B, L]) or all lists of strings ([B, K, L])")
        k = max_sentences if max_sentences is not None else max(1, max(len(bag) for bag in texts))
        if k < 1:
            raise ValueError(f"max_sentences: must be >= 1, got {k}")
        out = torch.zeros((len(texts), k, max_words), dtype=torch.long)
        for b, bag in enumerate(texts):
            for s, text in enumerate(list(bag)[:k]):
                out[b, s] = torch.tensor(self.encode(text, max_words, remove_stop_words), dtype=torch.long)
        return out

    def save(self, path: str | Path) -> None:
        """Writes the words, one per line, UTF-8 (``<pad>`` and ``<unk>`` first)."""
        for i, w in enumerate(self.words):
            if "\n" in w or "\r" in w:
                raise ValueError(f"Vocabulary.save: word {i} ({w!r}) contains a line break")
        Path(path).write_text("".join(w + "\n" for w in self.words), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> Vocabulary:
        """Reads a file written by :meth:`save`; it must start with ``<pad>`` and ``<unk>``."""
        words = read_word_list(Path(path))
        try:
            return cls(words)
        except ValueError as err:
            raise ValueError(f"{path}: {err}") from None


def read_word_list(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not UTF-8 at byte {err.start}") from None
    words = text.split("\n")
    if words and words[-1] == "":
        words.pop()
    words = [w[:-1] if w.endswith("\r") else w for w in words]
    for i, w in enumerate(words):
        if not w:
            raise ValueError(f"{path}: line {i + 1} is empty")
    return words


# ---------------------------------------------------------------------------------------------------
# Word-vector files
# ---------------------------------------------------------------------------------------------------
