"""Word vectors learnt from the training narrations alone: PPMI of co-occurrence within a clip, eigenvectors.

The paper's text tower starts from word2vec vectors trained on a large text corpus (GoogleNews) and keeps them
frozen (``shared/mmv_spec.md`` section 1.3). Nothing can be downloaded here and the toy world's words are not
a web corpus anyway, so a model trained on narrated clips without a vector file gets its vectors from the
only text it has: the narrations of its training split. This module does that with the count-based
equivalent of word2vec (Levy & Goldberg 2014: skip-gram with negative sampling implicitly factorises a
shifted PMI matrix):

1. A *document* is one clip's narration: the set of words of all its captions (stop words dropped, as the text
   tower drops them). A clip's captions name the same object in several ways ("ball", "disc", "round thing"),
   so synonyms co-occur within documents while two shapes' words never do.
2. ``C[i, j]`` counts the documents holding both words ``i`` and ``j`` (``i != j``), ``n[i]`` those holding
   ``i``; ``PMI = log(C * N / (n_i n_j))`` over ``N`` documents, and PPMI keeps its positive part.
3. The eigenvectors of PPMI with the ``dim`` largest positive eigenvalues, scaled by the square roots of those
   eigenvalues, are the vectors; each row is rescaled to norm ``sqrt(dim)``, the norm of the ``N(0, 1)`` rows
   the tower is otherwise initialised with, so the learning rates tuned for that start still fit.

Only text is read: no labels, no video and no audio. Why it matters, measured on the toy world
(``docs/results.md``, "Demo model"): with randomly initialised word vectors the text tower learns the words
the video network already separates (colour first) and drives the rest to zero, so shape words never reach
the video; vectors in which "ball" is near "disc" and far from "box" give the video network a target in
which shape is present from the first step.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from mmv.tokenizer import ENGLISH_STOP_WORDS, PAD_ID, UNK_ID, Vocabulary, tokenize


def document_word_ids(
    documents: Iterable[Iterable[str]], vocab: Vocabulary, remove_stop_words: bool = True
) -> list[np.ndarray]:
    """Per document (an iterable of caption strings), the sorted distinct vocabulary ids of its words.

    Unknown words and (optionally) stop words are dropped; a document may end up empty.
    """
    out = []
    for captions in documents:
        ids = set()
        for caption in captions:
            for token in tokenize(caption):
                if remove_stop_words and token in ENGLISH_STOP_WORDS:
                    continue
                if token in vocab:
                    ids.add(vocab.index(token))
        ids.discard(PAD_ID)
        ids.discard(UNK_ID)
        out.append(np.array(sorted(ids), dtype=np.int64))
    return out


def ppmi_matrix(doc_ids: list[np.ndarray], vocab_size: int) -> np.ndarray:
    """``[V, V]`` positive PMI of two words appearing in the same document (zero diagonal, zero for unseen)."""
    counts = np.zeros((vocab_size, vocab_size), dtype=np.float64)
    occurs = np.zeros(vocab_size, dtype=np.float64)
    for ids in doc_ids:
        if ids.size == 0:
            continue
        occurs[ids] += 1.0
        counts[np.ix_(ids, ids)] += 1.0
    np.fill_diagonal(counts, 0.0)
    num_docs = float(sum(1 for ids in doc_ids if ids.size))
    denom = np.outer(occurs, occurs)
    with np.errstate(divide="ignore", invalid="ignore"):
        pmi = np.log(counts * num_docs / denom)
    return np.where(np.isfinite(pmi) & (pmi > 0.0), pmi, 0.0)


def narration_word_vectors(
    documents: Iterable[Iterable[str]], vocab: Vocabulary, dim: int, remove_stop_words: bool = True
) -> np.ndarray:
    """Word vectors ``[len(vocab), dim]`` (float32) from the co-occurrence of words within documents.

    Args:
        documents: one iterable of caption strings per clip (its narration).
        vocab: the text tower's vocabulary (``<pad>`` id 0, ``<unk>`` id 1).
        dim: width of a vector (the tower's ``word_dim``).
        remove_stop_words: drop stop words before counting (as the text tower does when encoding).

    Returns:
        Row ``i`` is the vector of ``vocab.words[i]``: norm ``sqrt(dim)`` for every word seen with another word,
        zeros for ``<pad>`` and for words that never co-occur, the mean of the other rows for ``<unk>``.

    Raises:
        ValueError: ``dim`` is not positive or is larger than the vocabulary.
    """
    size = len(vocab)
    if dim < 1 or dim > size:
        raise ValueError(f"narration_word_vectors: dim must be in [1, {size}] (the vocabulary size), got {dim}")
    ppmi = ppmi_matrix(document_word_ids(documents, vocab, remove_stop_words), size)
    # PPMI is symmetric but not positive semi-definite: its zero diagonal gives each group of synonyms negative
    # eigenvalues whose eigenvectors tell the synonyms apart. Keep the largest *positive* eigenvalues only (an SVD
    # would rank those negative ones by their magnitude and mix them in).
    eigenvalues, eigenvectors = np.linalg.eigh(ppmi)
    order = np.argsort(eigenvalues)[::-1][:dim]
    vectors = eigenvectors[:, order] * np.sqrt(np.clip(eigenvalues[order], 0.0, None))
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    seen = norms[:, 0] > 1e-8
    vectors[seen] *= np.sqrt(dim) / norms[seen]
    vectors[~seen] = 0.0
    vectors[PAD_ID] = 0.0
    others = [i for i in range(size) if i not in (PAD_ID, UNK_ID) and seen[i]]
    vectors[UNK_ID] = vectors[others].mean(axis=0) if others else 0.0
    return vectors.astype(np.float32)
