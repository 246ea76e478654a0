"""Word-vector files -> a :class:`~mmv.tokenizer.Vocabulary` and a ``[V, D]`` float32 table, parsed without gensim.

Formats (``docs/formats.md``): word2vec binary (``.bin``), word2vec or GloVe text (``.txt`` / ``.vec``;
GloVe has no header line) and ``.npy`` with a ``<stem>.vocab.txt`` word list. A trailing ``.gz`` on any
of the first three is decompressed on the fly. The table gets a zero row for ``<pad>`` (id 0) and, for
``<unk>`` (id 1), the mean of the loaded vectors. Malformed files raise ``ValueError`` naming the file
and the line or byte offset.
"""

from __future__ import annotations

import gzip
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

import numpy as np

from mmv.tokenizer import PAD, UNK, Vocabulary, read_word_list


def _format_of(path: Path) -> tuple[str, bool]:
    """``('bin' | 'txt' | 'npy', gzipped)`` from the file name."""
    suffixes = [s.lower() for s in path.suffixes]
    gz = bool(suffixes) and suffixes[-1] == ".gz"
    if gz:
        suffixes = suffixes[:-1]
    last = suffixes[-1] if suffixes else ""
    if last == ".bin":
        return "bin", gz
    if last in (".txt", ".vec"):
        return "txt", gz
    if last == ".npy" and not gz:
        return "npy", gz
    raise ValueError(f"{path}: unknown word-vector format (expected .bin, .txt, .vec, .npy, or .bin/.txt/.vec.gz)")


def _open_binary(path: Path, gz: bool) -> BinaryIO:
    return gzip.open(path, "rb") if gz else open(path, "rb")


def _vocab_path_for(path: Path) -> Path:
    return path.with_name(path.name[: -len(".npy")] + ".vocab.txt")


def load_word_vectors(
    path: str | Path,
    limit: int | None = None,
    vocab_path: str | Path | None = None,
) -> tuple[Vocabulary, np.ndarray]:
    """Loads pretrained word vectors as a vocabulary and a matching float32 table.

    Formats, chosen by the file name:

    * ``.bin``: word2vec binary: an ASCII header line ``V D``, then for each word its UTF-8 bytes, a space
      and D little-endian float32 values, optionally followed by a newline.
    * ``.txt`` / ``.vec``: word2vec text (first line ``"V D"``) or GloVe (no header; D is read off the
      first line): ``word v1 ... vD`` per line. The word is everything before the last D fields, so
      words containing spaces survive.
    * ``.npy``: a ``[V, D]`` array and a word list (one word per line, UTF-8) at ``vocab_path``, by
      default ``<stem>.vocab.txt`` beside it (``vectors.npy`` -> ``vectors.vocab.txt``).

    The returned vocabulary is ``<pad>``, ``<unk>``, then the file's words in file order. A file's own
    ``<pad>``/``<unk>`` rows are moved to ids 0/1; otherwise ``<pad>`` gets a zero vector and ``<unk>``
    the mean of the loaded vectors. A word repeated in the file keeps its first vector.

    Args:
        path: the vector file.
        limit: keep only the first ``limit`` words of the file (files are ordered by frequency); the
            table then has at most ``limit + 2`` rows.
        vocab_path: word list of a ``.npy`` file (ignored for the other formats).

    Returns:
        ``(vocabulary, vectors)``, vectors a float32 ``[len(vocabulary), D]`` array.

    Raises:
        ValueError: unknown extension, or a malformed file (the message names the file and the line or
            byte offset).
    """
    path = Path(path)
    if limit is not None and limit < 1:
        raise ValueError(f"limit: must be >= 1, got {limit}")
    fmt, gz = _format_of(path)
    if fmt == "bin":
        with _open_binary(path, gz) as f:
            words, vectors = _read_word2vec_binary(f, path, limit)
    elif fmt == "txt":
        with _open_binary(path, gz) as f:
            words, vectors = _read_text_vectors(f, path, limit)
    else:
        words, vectors = _read_npy_vectors(path, Path(vocab_path) if vocab_path else _vocab_path_for(path), limit)
    return _finalise(words, vectors, path)


def _finalise(words: list[str], vectors: np.ndarray, path: Path) -> tuple[Vocabulary, np.ndarray]:
    if not words:
        raise ValueError(f"{path}: no word vectors")
    first: dict[str, int] = {}
    for i, w in enumerate(words):
        first.setdefault(w, i)
    dim = vectors.shape[1]
    special: list[np.ndarray] = []
    for token in (PAD, UNK):
        if token in first:
            special.append(vectors[first[token]])
        elif token == PAD:
            special.append(np.zeros(dim, dtype=np.float32))
        else:
            special.append(vectors.mean(axis=0, dtype=np.float64).astype(np.float32))
    keep = [i for w, i in first.items() if w not in (PAD, UNK)]
    keep.sort()
    table = np.concatenate([np.stack(special), vectors[keep]], axis=0).astype(np.float32, copy=False)
    vocab = Vocabulary([PAD, UNK, *(words[i] for i in keep)])
    return vocab, np.ascontiguousarray(table)


class _ByteReader:
    """Buffered reads over a binary stream that report absolute byte offsets for error messages."""

    def __init__(self, f: BinaryIO, chunk: int = 1 << 20) -> None:
        self.f = f
        self.chunk = chunk
        self.buf = bytearray()
        self.pos = 0  # position in buf
        self.offset = 0  # absolute offset of buf[0]

    def _fill(self) -> bool:
        data = self.f.read(self.chunk)
        if not data:
            return False
        if self.pos:
            del self.buf[: self.pos]
            self.offset += self.pos
            self.pos = 0
        self.buf += data
        return True

    @property
    def tell(self) -> int:
        return self.offset + self.pos

    def read_until(self, delim: bytes, max_len: int) -> bytes | None:
        """Bytes up to (not including) ``delim``, consuming it; ``None`` at a clean EOF."""
        start = self.pos
        while True:
            idx = self.buf.find(delim, start)
            if idx >= 0:
                out = bytes(self.buf[self.pos : idx])
                self.pos = idx + len(delim)
                return out
            if len(self.buf) - self.pos > max_len:
                raise EOFError(f"no {delim!r} within {max_len} bytes")
            start = len(self.buf)
            rel = start - self.pos
            if not self._fill():
                if len(self.buf) == self.pos:
                    return None
                raise EOFError("end of file inside a record")
            start = self.pos + rel

    def read_exact(self, n: int) -> bytes:
        while len(self.buf) - self.pos < n:
            if not self._fill():
                raise EOFError("end of file inside a record")
        out = bytes(self.buf[self.pos : self.pos + n])
        self.pos += n
        return out

    def skip_whitespace(self) -> None:
        while True:
            while self.pos < len(self.buf) and self.buf[self.pos] in b" \r\n":
                self.pos += 1
            if self.pos < len(self.buf) or not self._fill():
                return


def _parse_header(line: str, path: Path, where: str) -> tuple[int, int]:
    parts = line.split()
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        raise ValueError(f"{path}: {where}: expected a header 'num_words dim', got {line[:80]!r}")
    v, d = int(parts[0]), int(parts[1])
    if v < 1 or d < 1:
        raise ValueError(f"{path}: {where}: header must have positive counts, got {line!r}")
    return v, d


def _read_word2vec_binary(f: BinaryIO, path: Path, limit: int | None) -> tuple[list[str], np.ndarray]:
    reader = _ByteReader(f)
    try:
        header = reader.read_until(b"\n", 100)
    except EOFError:
        header = None
    if header is None:
        raise ValueError(f"{path}: line 1: missing word2vec header 'num_words dim'")
    try:
        header_text = header.decode("ascii")
    except UnicodeDecodeError:
        raise ValueError(f"{path}: line 1: word2vec header is not ASCII") from None
    num_words, dim = _parse_header(header_text, path, "line 1")
    n = num_words if limit is None else min(num_words, limit)
    words: list[str] = []
    vectors = np.empty((n, dim), dtype=np.float32)
    nbytes = 4 * dim
    for i in range(n):
        reader.skip_whitespace()
        start = reader.tell
        try:
            raw = reader.read_until(b" ", 10_000)
            if raw is None:
                raise EOFError("end of file")
            vec = reader.read_exact(nbytes)
        except EOFError as err:
            raise ValueError(
                f"{path}: byte offset {start}: word {i + 1} of {num_words}: {err} "
                f"(a record is 'word' + space + {dim} float32)"
            ) from None
        try:
            word = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError(f"{path}: byte offset {start}: word {i + 1} is not valid UTF-8: {raw[:40]!r}") from None
        if not word:
            raise ValueError(f"{path}: byte offset {start}: word {i + 1} is empty")
        words.append(word)
        vectors[i] = np.frombuffer(vec, dtype="<f4")
    return words, vectors


def _read_text_vectors(f: BinaryIO, path: Path, limit: int | None) -> tuple[list[str], np.ndarray]:
    words: list[str] = []
    rows: list[np.ndarray] = []
    expected: int | None = None
    dim: int | None = None
    lineno = 0
    for raw_line in f:
        lineno += 1
        try:
            line = raw_line.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError as err:
            raise ValueError(f"{path}: line {lineno}: not valid UTF-8 at column {err.start}") from None
        if lineno == 1:
            parts = line.split()
            if len(parts) == 2 and all(p.isdigit() for p in parts):
                expected, dim = _parse_header(line, path, "line 1")
                continue
        if not line.strip():
            continue
        if limit is not None and len(words) >= limit:
            break
        if dim is None:  # GloVe: no header, the first line tells D
            dim = len(line.rstrip(" ").split(" ")) - 1
            if dim < 1:
                raise ValueError(f"{path}: line {lineno}: expected 'word v1 ... vD', got {line[:80]!r}")
        parts = line.rstrip(" ").rsplit(" ", dim)
        if len(parts) != dim + 1 or not parts[0]:
            raise ValueError(f"{path}: line {lineno}: expected a word and {dim} values, got {len(parts) - 1} fields")
        try:
            row = np.array(parts[1:], dtype=np.float32)
        except ValueError:
            raise ValueError(f"{path}: line {lineno}: non-numeric value in {line[:80]!r}") from None
        words.append(parts[0])
        rows.append(row)
    if not rows:
        raise ValueError(f"{path}: line {lineno}: no word vectors in the file")
    if expected is not None and len(words) < (expected if limit is None else min(expected, limit)):
        raise ValueError(f"{path}: line {lineno}: header announces {expected} words, the file has {len(words)}")
    return words, np.stack(rows)


def _read_npy_vectors(path: Path, vocab_path: Path, limit: int | None) -> tuple[list[str], np.ndarray]:
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError) as err:
        raise ValueError(f"{path}: not a readable .npy array ({err})") from None
    if array.ndim != 2 or not np.issubdtype(array.dtype, np.floating):
        raise ValueError(f"{path}: expected a 2-D float array [V, D], got {array.dtype} {array.shape}")
    if not vocab_path.exists():
        raise ValueError(f"{path}: its word list {vocab_path} does not exist (pass vocab_path=...)")
    words = read_word_list(vocab_path)
    if len(words) != array.shape[0]:
        raise ValueError(f"{path}: {array.shape[0]} rows but {vocab_path} lists {len(words)} words")
    n = len(words) if limit is None else min(len(words), limit)
    return words[:n], np.array(array[:n], dtype=np.float32)


def save_word_vectors(path: str | Path, words: Sequence[str] | Vocabulary, vectors: np.ndarray) -> None:
    """Writes ``words`` and ``vectors`` (``[V, D]``) in the format :func:`load_word_vectors` reads.

    ``.bin``: word2vec binary; ``.txt`` / ``.vec``: word2vec text with a header; ``.npy``: the array plus
    ``<stem>.vocab.txt``. (Gzip is not written.)
    """
    path = Path(path)
    words = list(words)
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim != 2 or vectors.shape[0] != len(words):
        raise ValueError(f"vectors: expected [{len(words)}, D], got {vectors.shape}")
    for i, w in enumerate(words):
        if not w or any(c in w for c in "\n\r") or w != w.strip():
            raise ValueError(f"words[{i}]: {w!r} cannot be stored (empty, line break or edge whitespace)")
    fmt, gz = _format_of(path)
    if gz:
        raise ValueError(f"{path}: writing gzip is not supported")
    v, d = vectors.shape
    if fmt == "bin":
        with open(path, "wb") as f:
            f.write(f"{v} {d}\n".encode("ascii"))
            for w, row in zip(words, vectors, strict=True):
                f.write(w.encode("utf-8") + b" " + row.astype("<f4").tobytes() + b"\n")
    elif fmt == "txt":
        with open(path, "w", encoding="utf-8", newline="\n") as f:
            f.write(f"{v} {d}\n")
            for w, row in zip(words, vectors, strict=True):
                f.write(w + " " + " ".join(repr(float(x)) for x in row) + "\n")
    else:
        np.save(path, vectors)
        _vocab_path_for(path).write_text("".join(w + "\n" for w in words), encoding="utf-8")
