"""Ranks, recall at k and median rank of a similarity matrix: the metric arithmetic of every retrieval, once.

**Ranks.** For query ``q`` with similarities ``s`` over the ``N`` candidates and a non-empty set ``G`` of
correct candidates, the rank of the query is the 1-based position of its *best-ranked* correct candidate::

    rank_q = 1 + #{ i not in G : s_i >= max_{j in G} s_j }

Ties are therefore broken *pessimistically*: a wrong candidate with exactly the score of the best correct one
is ranked ahead of it, so ties never flatter a query (a model that outputs a constant gets rank
``N - |G| + 1``, not 1). The result does not depend on the order of the candidates. Several correct candidates
per query are allowed (attribute-level matching, a video listed once per caption); the other correct ones never
push the rank down. ``R@k`` is the fraction of queries with ``rank <= k``; the median rank is ``numpy.median``
of the ranks (a half-integer for an even number of queries when the two middle ranks differ), as in MIL-NCE's
``metrics.py`` (which ranks the diagonal of the text x video matrix; here the diagonal is the case
``gt = arange(Q)``). The *top-1* candidate follows the same tie rule (:func:`top1`), so ``rank == 1`` exactly
when the top-1 candidate is correct.

Which queries and candidates a direction has, and which candidates are correct, is :mod:`mmv.eval.zero_shot`'s.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch

#: Recall cut-offs reported by :func:`retrieval_metrics` (``r1``, ``r5``, ``r10``).
RECALL_AT = (1, 5, 10)

_CHUNK = 1024  # queries ranked at a time (bounds the [chunk, N] temporaries)


def _as_numpy(x: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().to("cpu", torch.float64).numpy()
    return np.asarray(x, dtype=np.float64)


def ground_truth_mask(gt: Any, num_queries: int, num_candidates: int) -> np.ndarray:
    """``gt`` in any accepted form as a bool ``[Q, N]`` matrix (``True`` = correct candidate).

    Accepted forms: an int array / tensor / list ``[Q]`` (one correct candidate per query), a sequence of ``Q``
    iterables of ints (several per query, e.g. sets), or a bool array / tensor ``[Q, N]``.

    Raises:
        ValueError: wrong length or shape, an index outside ``[0, N)``, or a query without any correct candidate.
    """
    if isinstance(gt, torch.Tensor):
        gt = gt.detach().cpu().numpy()
    if isinstance(gt, np.ndarray) and gt.dtype == bool:
        if gt.shape != (num_queries, num_candidates):
            raise ValueError(f"gt: a bool mask must be [Q, N] = {(num_queries, num_candidates)}, got {gt.shape}")
        mask = gt.copy()
    else:
        if isinstance(gt, np.ndarray) and gt.ndim == 1 and np.issubdtype(gt.dtype, np.integer):
            rows: Sequence[Iterable[int]] = [[int(i)] for i in gt]
        else:
            rows = [[int(g)] if isinstance(g, (int, np.integer)) else [int(i) for i in g] for g in gt]
        if len(rows) != num_queries:
            raise ValueError(f"gt: expected {num_queries} entries (one per query), got {len(rows)}")
        mask = np.zeros((num_queries, num_candidates), dtype=bool)
        for q, items in enumerate(rows):
            for i in items:
                if not 0 <= i < num_candidates:
                    raise ValueError(f"gt[{q}]: candidate {i} outside [0, {num_candidates})")
                mask[q, i] = True
    empty = np.flatnonzero(~mask.any(axis=1))
    if len(empty):
        raise ValueError(f"gt: queries without a correct candidate (first: {int(empty[0])}); leave them out")
    return mask


def retrieval_ranks(sim: np.ndarray | torch.Tensor, gt: Any) -> np.ndarray:
    """The rank of every query (module docstring): int64 ``[Q]``, in ``[1, N]``.

    Args:
        sim: similarities ``[Q, N]`` (higher = more similar); must be finite.
        gt: the correct candidates of each query (see :func:`ground_truth_mask`).
    """
    s = _as_numpy(sim)
    if s.ndim != 2:
        raise ValueError(f"sim: expected [Q, N], got shape {s.shape}")
    if not np.isfinite(s).all():
        raise ValueError("sim: contains NaN or infinite values")
    mask = ground_truth_mask(gt, *s.shape)
    ranks = np.empty(s.shape[0], dtype=np.int64)
    for a in range(0, s.shape[0], _CHUNK):
        block, m = s[a : a + _CHUNK], mask[a : a + _CHUNK]
        best = np.where(m, block, -np.inf).max(axis=1, keepdims=True)
        ranks[a : a + _CHUNK] = 1 + ((block >= best) & ~m).sum(axis=1)
    return ranks


def retrieval_metrics(sim: np.ndarray | torch.Tensor, gt: Any) -> dict[str, Any]:
    """Recall at 1/5/10, median and mean rank of a retrieval run.

    Args:
        sim: similarities ``[Q, N]`` between Q queries and N candidates (numpy or torch).
        gt: correct candidates: int ``[Q]`` (one each, e.g. ``arange(Q)`` for a paired matrix), a list of Q
            sets of ints (several each), or a bool ``[Q, N]`` mask. Every query needs at least one.

    Returns:
        ``{"r1", "r5", "r10"}`` (fractions in [0, 1]), ``"medr"`` and ``"meanr"`` (floats), ``"ranks"`` (int64
        ``[Q]``, the 1-based rank of each query's best-ranked correct candidate, ties pessimistic: see the
        module docstring), ``"num_queries"`` and ``"num_candidates"``.

    Example:
        >>> retrieval_metrics(np.eye(3), np.arange(3))["r1"]
        1.0
    """
    ranks = retrieval_ranks(sim, gt)
    out: dict[str, Any] = {f"r{k}": float(np.mean(ranks <= k)) if len(ranks) else float("nan") for k in RECALL_AT}
    out["medr"] = float(np.median(ranks)) if len(ranks) else float("nan")
    out["meanr"] = float(np.mean(ranks)) if len(ranks) else float("nan")
    out["ranks"] = ranks
    out["num_queries"], out["num_candidates"] = int(len(ranks)), int(np.shape(sim)[1])
    return out


def top1(sim: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Int64 ``[Q]``: the candidate each query ranks first, under the ranks' tie rule.

    Among the candidates tied at the top score a wrong one (``mask`` False) is taken first, else the first tied
    one, so ``top1`` is correct exactly when the rank is 1, whatever the order of the candidates.

    Args:
        sim: similarities ``[Q, N]``.
        mask: bool ``[Q, N]``, ``True`` = correct candidate (:func:`ground_truth_mask`).
    """
    tied = sim == sim.max(axis=1, keepdims=True)
    wrong = tied & ~mask
    return np.where(wrong.any(axis=1), wrong.argmax(axis=1), tied.argmax(axis=1))


def rank_candidates(queries: torch.Tensor, candidates: torch.Tensor, gt: np.ndarray) -> dict[str, Any]:
    """Cosine retrieval of ``candidates`` by ``queries``: :func:`retrieval_metrics` plus ``top1``.

    Args:
        queries: L2-normalised embeddings ``[Q, D]``.
        candidates: L2-normalised embeddings ``[N, D]`` in the same space.
        gt: bool ``[Q, N]``, ``True`` = correct candidate; every query needs one.

    Returns:
        :func:`retrieval_metrics`'s dict with ``top1`` (int64 ``[Q]``, positions in ``candidates``, :func:`top1`)
        added. The similarities are float64 dot products, so the ranking does not depend on float32 rounding
        of the sum.
    """
    sim = (queries.double() @ candidates.double().T).numpy()
    metrics = retrieval_metrics(sim, gt)
    metrics["top1"] = top1(sim, gt)
    return metrics
