"""Word vectors from narrations (mmv.narration_vectors): PPMI against a naive count, planted synonyms, training."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from train_helpers import SAMPLE, single_thread, tiny_args

from mmv.checkpoint import load_checkpoint
from mmv.narration_vectors import document_word_ids, narration_word_vectors, ppmi_matrix
from mmv.tokenizer import PAD_ID, UNK_ID, Vocabulary
from training.main import main


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_document_ids_drop_stop_words_unknown_words_and_repeats():
    vocab = Vocabulary.from_words(["ball", "red", "box"])
    ids = document_word_ids([["the red ball", "a RED ball!"], ["zebra"], []], vocab)
    assert [list(x) for x in ids] == [sorted([vocab.index("red"), vocab.index("ball")]), [], []]


def test_ppmi_matches_a_naive_count():
    docs = [["a", "b"], ["a", "b", "c"], ["c", "d"], ["a", "d"]]
    vocab = Vocabulary.from_words("abcd")
    got = ppmi_matrix(document_word_ids([[" ".join(d)] for d in docs], vocab, remove_stop_words=False), len(vocab))
    assert got.shape == (6, 6)
    n_docs = len(docs)
    for x in "abcd":
        for y in "abcd":
            both = sum(x in d and y in d for d in docs)
            nx, ny = sum(x in d for d in docs), sum(y in d for d in docs)
            expected = max(0.0, math.log(both * n_docs / (nx * ny))) if both and x != y else 0.0
            assert got[vocab.index(x), vocab.index(y)] == pytest.approx(expected), (x, y)
    assert not got[[PAD_ID, UNK_ID]].any()


def test_planted_synonyms_are_close_and_topics_apart():
    # Three objects, each named by three synonyms; every narration names its object twice, with two random synonyms,
    # among shared filler words. No word of one object ever shares a narration with another object's words.
    rng = np.random.default_rng(0)
    topics = {
        "circle": ["ball", "disc", "dot"],
        "square": ["box", "block", "cube"],
        "star": ["spike", "pointy", "astral"],
    }
    fillers = ["look", "nice", "really", "well", "okay"]
    documents = []
    for _ in range(300):
        words = topics[str(rng.choice(list(topics)))]
        picked = rng.choice(words, size=2, replace=False)
        documents.append([f"the {picked[0]} is {rng.choice(fillers)}", f"{rng.choice(fillers)} {picked[1]}"])
    vocab = Vocabulary.from_words([w for ws in topics.values() for w in ws] + fillers)
    vectors = narration_word_vectors(documents, vocab, dim=8)
    assert vectors.shape == (len(vocab), 8) and vectors.dtype == np.float32
    v = {w: vectors[vocab.index(w)] for w in vocab.words[2:]}
    for words in topics.values():
        for a in words:
            for b in words:
                if a != b:
                    assert _cos(v[a], v[b]) > 0.8, (a, b)
    for t1, w1 in topics.items():
        for t2, w2 in topics.items():
            if t1 != t2:
                assert max(_cos(v[a], v[b]) for a in w1 for b in w2) < 0.3, (t1, t2)
    seen = [w for w in vocab.words[2:]]
    np.testing.assert_allclose(np.linalg.norm(vectors[[vocab.index(w) for w in seen]], axis=1), math.sqrt(8), rtol=1e-5)
    assert not vectors[PAD_ID].any()
    np.testing.assert_allclose(vectors[UNK_ID], vectors[2:].mean(axis=0), rtol=1e-5, atol=1e-6)


def test_dim_must_fit_the_vocabulary():
    vocab = Vocabulary.from_words(["a", "b"])
    with pytest.raises(ValueError, match="dim"):
        narration_word_vectors([["a b"]], vocab, dim=5)
    with pytest.raises(ValueError, match="dim"):
        narration_word_vectors([["a b"]], vocab, dim=0)


def test_training_starts_from_the_narration_vectors_and_keeps_them_frozen(tmp_path):
    single_thread()
    run = tmp_path / "run"
    args = tiny_args(
        run,
        "--train.steps", "2",
        "--data.narration_word_vectors", "true",
        "--model.overrides.text.freeze_word_vectors", "true",
    )  # fmt: skip
    assert main(args)["step"] == 2
    model = load_checkpoint(run / "model")
    df = pd.read_parquet(SAMPLE)
    captions = ([c["text"] for c in caps] for caps in df[df["split"] == "train"]["captions"])
    expected = narration_word_vectors(captions, model.vocab, model.config.text.word_dim)
    np.testing.assert_array_equal(model.text.embedding.weight.detach().numpy(), expected)
    assert not model.text.embedding.weight.requires_grad
    assert np.abs(expected).sum() > 0
