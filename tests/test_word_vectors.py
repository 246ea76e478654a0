"""Word-vector files: every format round-trips; malformed files name the file and place."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from mmv.tokenizer import (
    PAD,
    UNK,
    Vocabulary,
)
from mmv.word_vectors import load_word_vectors, save_word_vectors

# ---------------------------------------------------------------------------------------------------
# Word-vector files
# ---------------------------------------------------------------------------------------------------

WORDS = ["the", "dog", "naïve", "日本", "don't"]


def _vectors(n: int = len(WORDS), d: int = 4) -> np.ndarray:
    # Values exactly representable in decimal and float32, so text formats round-trip bit-exactly.
    return (np.arange(n * d, dtype=np.float32).reshape(n, d) - 7.0) / 4.0


def _write_bin(path: Path, words: list[str], vecs: np.ndarray, newline: bool = True) -> None:
    with open(path, "wb") as f:
        f.write(f"{len(words)} {vecs.shape[1]}\n".encode())
        for w, v in zip(words, vecs, strict=True):
            f.write(w.encode("utf-8") + b" " + struct.pack(f"<{v.size}f", *v.tolist()))
            if newline:
                f.write(b"\n")


def _write_txt(path: Path, words: list[str], vecs: np.ndarray, header: bool) -> None:
    lines = [f"{len(words)} {vecs.shape[1]}"] if header else []
    lines += [w + " " + " ".join(f"{x:.6f}" for x in v) for w, v in zip(words, vecs, strict=True)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _check_loaded(vocab: Vocabulary, table: np.ndarray, words: list[str], vecs: np.ndarray) -> None:
    assert vocab.words == [PAD, UNK, *words]
    assert table.dtype == np.float32 and table.shape == (len(words) + 2, vecs.shape[1])
    np.testing.assert_array_equal(table[0], 0.0)
    np.testing.assert_allclose(table[1], vecs.mean(axis=0), rtol=1e-6)
    np.testing.assert_array_equal(table[2:], vecs)


@pytest.mark.parametrize("fmt", ["bin", "bin_no_newline", "txt_header", "glove", "vec", "npy"])
def test_word_vector_formats_round_trip(tmp_path: Path, fmt: str) -> None:
    vecs = _vectors()
    if fmt.startswith("bin"):
        path = tmp_path / "vectors.bin"
        _write_bin(path, WORDS, vecs, newline=fmt == "bin")
    elif fmt in ("txt_header", "vec"):
        path = tmp_path / ("vectors.txt" if fmt == "txt_header" else "vectors.vec")
        _write_txt(path, WORDS, vecs, header=True)
    elif fmt == "glove":
        path = tmp_path / "glove.6B.4d.txt"
        _write_txt(path, WORDS, vecs, header=False)
    else:
        path = tmp_path / "vectors.npy"
        np.save(path, vecs)
        (tmp_path / "vectors.vocab.txt").write_text("\n".join(WORDS) + "\n", encoding="utf-8")
    vocab, table = load_word_vectors(path)
    _check_loaded(vocab, table, WORDS, vecs)

    vocab3, table3 = load_word_vectors(path, limit=3)
    assert vocab3.words == [PAD, UNK, *WORDS[:3]]
    np.testing.assert_array_equal(table3[2:], vecs[:3])
    np.testing.assert_allclose(table3[1], vecs[:3].mean(axis=0), rtol=1e-6)


@pytest.mark.parametrize("suffix", [".bin", ".txt", ".npy"])
def test_save_word_vectors_round_trip(tmp_path: Path, suffix: str) -> None:
    rng = np.random.default_rng(0)
    vecs = rng.normal(size=(len(WORDS), 7)).astype(np.float32)
    path = tmp_path / f"out{suffix}"
    save_word_vectors(path, WORDS, vecs)
    vocab, table = load_word_vectors(path)
    _check_loaded(vocab, table, WORDS, vecs)


def test_word_vectors_keep_existing_pad_unk_and_explicit_vocab_path(tmp_path: Path) -> None:
    words = ["dog", UNK, "cat", PAD]
    vecs = _vectors(4, 3)
    np.save(tmp_path / "table.npy", vecs)
    (tmp_path / "words.txt").write_text("\n".join(words) + "\n", encoding="utf-8")
    vocab, table = load_word_vectors(tmp_path / "table.npy", vocab_path=tmp_path / "words.txt")
    assert vocab.words == [PAD, UNK, "dog", "cat"]
    np.testing.assert_array_equal(table, vecs[[3, 1, 0, 2]])


def test_gzipped_word2vec_binary(tmp_path: Path) -> None:
    import gzip

    vecs = _vectors()
    raw = tmp_path / "v.bin"
    _write_bin(raw, WORDS, vecs)
    gz = tmp_path / "v.bin.gz"
    gz.write_bytes(gzip.compress(raw.read_bytes()))
    vocab, table = load_word_vectors(gz)
    _check_loaded(vocab, table, WORDS, vecs)


def test_malformed_word_vector_files(tmp_path: Path) -> None:
    vecs = _vectors()
    # Binary cut in the middle of the third vector.
    full = tmp_path / "full.bin"
    _write_bin(full, WORDS, vecs)
    cut = tmp_path / "cut.bin"
    cut.write_bytes(full.read_bytes()[:-40])
    with pytest.raises(ValueError, match=r"cut\.bin.*byte offset \d+"):
        load_word_vectors(cut)
    bad_header = tmp_path / "header.bin"
    bad_header.write_bytes(b"five 4\n")
    with pytest.raises(ValueError, match=r"header\.bin.*line 1"):
        load_word_vectors(bad_header)
    # Text with a short row and with a non-number.
    short = tmp_path / "short.txt"
    short.write_text("2 3\ndog 1 2 3\ncat 1 2\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"short\.txt.*line 3"):
        load_word_vectors(short)
    nan = tmp_path / "glove_bad.txt"
    nan.write_text("dog 1 2 3\ncat 1 x 3\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"glove_bad\.txt.*line 2"):
        load_word_vectors(nan)
    missing_rows = tmp_path / "few.txt"
    missing_rows.write_text("3 2\ndog 1 2\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"few\.txt.*announces 3"):
        load_word_vectors(missing_rows)
    # .npy whose word list has the wrong length, or is missing.
    np.save(tmp_path / "m.npy", vecs)
    with pytest.raises(ValueError, match=r"m\.npy.*m\.vocab\.txt"):
        load_word_vectors(tmp_path / "m.npy")
    (tmp_path / "m.vocab.txt").write_text("dog\ncat\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"m\.npy.*5 rows"):
        load_word_vectors(tmp_path / "m.npy")
    with pytest.raises(ValueError, match=r"vectors\.csv.*format"):
        load_word_vectors(tmp_path / "vectors.csv")
