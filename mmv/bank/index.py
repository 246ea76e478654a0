"""faiss inner-product search over one (space, modality) of the bank: exact up to a size, IVF above.

Vectors are L2-normalised, so the inner product is the cosine similarity and the top-k by inner product are
the k nearest neighbours.

* **Exact** (``IndexFlatIP``), the default up to ``exact_max`` vectors (1M). Nothing is stored but the float32
  vectors: the index is rebuilt from them when a bank is loaded (a copy of the array, ~0.2 s for 1M x 64).
  From ``SHARD_MIN`` vectors on it is split into one shard per search thread, scanned side by side
  (:class:`Searcher` says why the threads are ours and not faiss's OpenMP ones).
* **Approximate** (``IndexIVFFlat``, inner product) above ``exact_max``: ``nlist = 4 sqrt(N)`` clusters
  (capped so each has at least 39 training points) trained with k-means on a seeded sample of
  ``max(39 nlist, 50,000)`` vectors, and the smallest
  power-of-two ``nprobe`` whose **recall@10** against the exact search reaches ``target_recall`` on a seeded
  sample of the stored vectors used as queries. The measured recall (and the whole nprobe -> recall curve) is
  stored in the bank's provenance; the trained index is stored with ``faiss.write_index`` (faiss's own
  binary format: no pickle) and read back with ``faiss.read_index``.
"""

from __future__ import annotations

import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import faiss
import numpy as np

#: Largest number of vectors searched exactly; above it an IVF index is built.
DEFAULT_EXACT_MAX = 1_000_000
#: Flat indexes with at least this many vectors are split into one shard per thread (see the module docstring).
SHARD_MIN = 100_000
#: The k of the recall that is measured for IVF indexes.
RECALL_K = 10
#: Queries used to measure an IVF index's recall (a seeded sample of the stored vectors).
RECALL_QUERIES = 1000
#: Default recall@10 an IVF index must reach when its nprobe is chosen.
DEFAULT_TARGET_RECALL = 0.95


def normalize(x: np.ndarray) -> np.ndarray:
    """Rows L2-normalised as C-contiguous float32 ``[N, D]`` (a ``[D]`` vector becomes ``[1, D]``; zero rows stay 0)."""
    a = np.asarray(x, dtype=np.float32)
    if a.ndim == 1:
        a = a[None]
    if a.ndim != 2:
        raise ValueError(f"vectors: expected [N, D], got shape {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError("vectors: contain NaN or infinite values")
    norms = np.linalg.norm(a.astype(np.float64), axis=1, keepdims=True)
    return np.ascontiguousarray(a / np.maximum(norms, 1e-12).astype(np.float32), dtype=np.float32)


def exact_search(vectors: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-``k`` by inner product with a temporary flat index: ``([Q, k] scores, [Q, k] positions)``."""
    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    return index.search(np.ascontiguousarray(queries, dtype=np.float32), k)


def ivf_nlist(n: int) -> int:
    """Clusters of an IVF index over ``n`` vectors: ``round(4 sqrt(n))``, at most ``n // 39`` (faiss's minimum
    of 39 training points per centroid), at least 1."""
    return max(1, min(round(4 * math.sqrt(n)), n // 39))


def recall_at_k(approx: np.ndarray, exact: np.ndarray) -> float:
    """Mean over queries of ``|approx_q ∩ exact_q| / |exact_q|`` (positions ``[Q, k]``, -1 = padding)."""
    hits = total = 0
    for a, e in zip(approx, exact):
        e = e[e >= 0]
        hits += len(np.intersect1d(a[a >= 0], e))
        total += len(e)
    return hits / total if total else 1.0


def build_ivf(
    vectors: np.ndarray,
    seed: int = 0,
    nlist: int | None = None,
    target_recall: float = DEFAULT_TARGET_RECALL,
    num_queries: int = RECALL_QUERIES,
) -> tuple[faiss.Index, dict[str, Any]]:
    """Trains an ``IndexIVFFlat`` (inner product) on ``vectors`` and picks its ``nprobe`` by measured recall.

    Args:
        vectors: float32 ``[N, D]``, L2-normalised.
        seed: seeds the training sample, faiss's k-means and the recall queries.
        nlist: clusters (default :func:`ivf_nlist`).
        target_recall: the recall@10 the chosen ``nprobe`` must reach (the largest ``nprobe`` tried is
            ``nlist``, i.e. exhaustive, if none smaller does).
        num_queries: stored vectors used as queries when measuring recall.

    Returns:
        The index (``nprobe`` set) and its description: ``type``, ``nlist``, ``nprobe``, ``recall_at_10``,
        ``recall_queries``, ``recall_curve`` (``{nprobe: recall}``), ``train_points``.
    """
    n, d = vectors.shape
    nlist = int(nlist or ivf_nlist(n))
    rng = np.random.default_rng(seed)
    train_n = min(n, max(39 * nlist, 50_000))  # faiss's minimum of 39 points per centroid, or 50k
    train = vectors[np.sort(rng.choice(n, train_n, replace=False))] if train_n < n else vectors
    quantizer = faiss.IndexFlatIP(d)
    index = faiss.IndexIVFFlat(quantizer, d, nlist, faiss.METRIC_INNER_PRODUCT)
    index.cp.seed = int(seed)
    index.train(np.ascontiguousarray(train, dtype=np.float32))
    for a in range(0, n, 262_144):  # add in chunks: bounded temporaries
        index.add(np.ascontiguousarray(vectors[a : a + 262_144], dtype=np.float32))
    q_idx = np.sort(rng.choice(n, min(n, num_queries), replace=False))
    queries = np.ascontiguousarray(vectors[q_idx], dtype=np.float32)
    k = min(RECALL_K, n)
    _, exact = exact_search(vectors, queries, k)
    curve: dict[str, float] = {}
    nprobe = 1
    while True:
        index.nprobe = nprobe
        _, approx = index.search(queries, k)
        curve[str(nprobe)] = recall_at_k(approx, exact)
        if curve[str(nprobe)] >= target_recall or nprobe >= nlist:
            break
        nprobe = min(2 * nprobe, nlist)
    info = {
        "type": "IndexIVFFlat",
        "nlist": nlist,
        "nprobe": nprobe,
        "recall_at_10": curve[str(nprobe)],
        "target_recall": float(target_recall),
        "recall_queries": len(q_idx),
        "recall_curve": curve,
        "train_points": int(train_n),
    }
    return index, info


_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def search_threads() -> int:
    """Threads searching side by side: ``MMV_SEARCH_THREADS``, else the CPU count."""
    return max(1, int(os.environ.get("MMV_SEARCH_THREADS", 0)) or os.cpu_count() or 1)


def _pool() -> ThreadPoolExecutor:
    """The search threads, each running faiss with one OpenMP thread (see :class:`Searcher`)."""
    global _POOL
    if _POOL is None:
        with _POOL_LOCK:
            if _POOL is None:
                one_thread = faiss.omp_set_num_threads  # called with 1 in each new search thread
                _POOL = ThreadPoolExecutor(search_threads(), "mmv-search", initializer=one_thread, initargs=(1,))
    return _POOL


def _merge(parts: list[tuple[np.ndarray, np.ndarray]], k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best of one or several shards' results (positions already global): by score, ties by position."""
    scores = np.concatenate([s for s, _ in parts], axis=1)
    pos = np.concatenate([p for _, p in parts], axis=1)
    scores = np.where(pos >= 0, scores, -np.inf)
    order = np.lexsort((np.where(pos >= 0, pos, np.iinfo(np.int64).max), -scores), axis=1)[:, :k]
    return np.take_along_axis(scores, order, axis=1), np.take_along_axis(pos, order, axis=1)


class Searcher:
    """Top-k search over the vectors of one (space, modality): returns *positions* into those vectors.

    The work runs on a small pool of threads (:func:`search_threads`), each calling faiss with **one** OpenMP
    thread: an exact index of at least ``SHARD_MIN`` vectors is split into one shard per thread, scanned side
    by side and merged; a smaller one, or an IVF index, gets the queries split between the threads. faiss's own
    OpenMP parallelism is not used because faiss scans for a single query on one thread anyway, and because
    OpenMP threads that spin while waiting make every search several times slower on a small machine whose
    cores other processes also use (measured in ``benchmarks/bank.py``). Built lazily and thread-safe (a
    Streamlit app shares one bank between sessions).

    Args:
        vectors: float32 ``[N, D]`` (a memory map is fine), L2-normalised.
        ivf_path: a ``faiss.write_index`` file to search instead of an exact index.
        nprobe: the IVF index's ``nprobe``.
        shards: exact-index shards (default: :func:`search_threads` from ``SHARD_MIN`` vectors on, else 1).
    """

    def __init__(
        self, vectors: np.ndarray, ivf_path: str | os.PathLike | None = None, nprobe: int = 1, shards: int | None = None
    ) -> None:
        self.vectors = vectors
        self.ivf_path = None if ivf_path is None else Path(ivf_path)
        self.nprobe = int(nprobe)
        self.num_shards = shards
        self._parts: list[tuple[int, Any]] | None = None  # (offset, faiss index)
        self._lock = threading.Lock()

    @property
    def kind(self) -> str:
        return "ivf" if self.ivf_path is not None else "flat"

    def _build(self) -> list[tuple[int, Any]]:
        if self.ivf_path is not None:
            index = faiss.read_index(str(self.ivf_path))
            faiss.extract_index_ivf(index).nprobe = self.nprobe
            return [(0, index)]
        n, d = self.vectors.shape
        shards = self.num_shards or (search_threads() if n >= SHARD_MIN else 1)
        parts = []
        bounds = np.linspace(0, n, max(1, min(shards, n)) + 1).astype(np.int64)
        for a, b in zip(bounds[:-1], bounds[1:]):
            index = faiss.IndexFlatIP(d)
            index.add(np.ascontiguousarray(self.vectors[a:b], dtype=np.float32))
            parts.append((int(a), index))
        return parts

    @property
    def parts(self) -> list[tuple[int, Any]]:
        """``[(offset, faiss index)]``: the shards (one for a small exact index or an IVF index)."""
        if self._parts is None:
            with self._lock:
                if self._parts is None:
                    self._parts = self._build()
        return self._parts

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``queries`` float32 ``[Q, D]`` (normalised) -> ``([Q, k] scores, [Q, k] positions)``, best first.

        Fewer than ``k`` vectors: the missing places hold position -1 and score ``-inf``.
        """
        n = self.vectors.shape[0]
        q = np.ascontiguousarray(queries, dtype=np.float32)
        scores = np.full((len(q), k), -np.inf, dtype=np.float32)
        pos = np.full((len(q), k), -1, dtype=np.int64)
        kk = min(k, n)
        if kk == 0 or len(q) == 0:
            return scores, pos
        parts, pool = self.parts, _pool()
        if len(parts) > 1:

            def one(part: tuple[int, Any]) -> tuple[np.ndarray, np.ndarray]:
                offset, index = part
                s, p = index.search(q, min(kk, index.ntotal))
                return s, np.where(p >= 0, p + offset, -1)

            s, p = _merge(list(pool.map(one, parts)), kk)
        else:
            index = parts[0][1]
            chunks = np.array_split(np.arange(len(q)), max(1, min(search_threads(), len(q) // 16)))
            results = list(pool.map(lambda c: index.search(q[c], kk), chunks))
            # Ties in position order, as across shards, so results do not depend on the number of shards.
            s, p = _merge([(np.concatenate([r[0] for r in results]), np.concatenate([r[1] for r in results]))], kk)
        valid = p >= 0
        scores[:, :kk] = np.where(valid, s, -np.inf)
        pos[:, :kk] = np.where(valid, p, -1)
        return scores, pos
