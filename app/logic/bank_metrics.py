"""Retrieval metrics of a bank on a set of its clips: R@k and median rank per direction, ranks, hubs, alignment.

Plain functions over :class:`~app.logic.bank_search.BankSearch` (the Metrics page, ``app/views/metrics.py``, lays
them out). The ranking is the evaluation's own (:mod:`mmv.eval.ranking`):
:func:`~mmv.eval.ranking.retrieval_metrics` on the cosine matrix of a direction's queries against its candidates,
ties broken pessimistically, a clip's correct candidates being the clips with the same media
(:func:`~mmv.eval.zero_shot.media_groups`), the directions and their spaces those of
:data:`~mmv.eval.zero_shot.DIRECTIONS`. So on the test split of a bank built with the evaluation's windows, the
numbers are ``training.evaluate``'s (``tests/test_app_metrics.py`` checks it).

Scope: the **test split** (``meta["split"] == "test"``) or **any list of bank rows** (the Spaces page's
selection). Queries and candidates are both restricted to the scope, as the evaluation restricts both to its
split: R@k on 20 selected clips is retrieval among those 20. A scope above :data:`MAX_SCOPE_ROWS` clips is a
seeded sample of it (the similarity matrices are ``[Q, N]``).

Hubs: an item that sits in many queries' top-k lists. For each direction the *k-occurrence* of a candidate is
the number of queries whose top ``k`` hold it; its mean over candidates is ``Q k / N`` whatever the model, so
the z-score ``(count - mean) / std`` says how unusual each is; a **hub** is a candidate with at least
:data:`HUB_FACTOR` times the mean (Radovanovic et al., 2010, who also measure a space's hubness by the skewness
of the counts, reported here too).

Alignment: per clip, the cosine of its own pair (video and audio in S_va, video and text in S_vat) against a
baseline of shuffled pairs: each clip's video with the partner of another clip of the scope (a random
derangement, seed fixed), so the baseline has the same clips and the same spread as the aligned pairs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from app.logic.bank_search import percentiles
from mmv.eval.ranking import RECALL_AT, retrieval_metrics
from mmv.eval.zero_shot import DIRECTIONS, media_groups

#: Most clips a scope is ranked on (the similarity matrices are ``[Q, N]`` float64); above, a seeded sample.
MAX_SCOPE_ROWS = 2000
#: The k of the hub lists.
HUB_K = 10
#: A candidate in at least this many times the mean number of top-k lists is a hub.
HUB_FACTOR = 2.0
#: Which pair of a clip is aligned in each space.
PAIRS = {"va": ("video", "audio"), "vat": ("video", "text")}
#: Columns of :attr:`Evaluation.table`.
METRIC_COLUMNS = ("direction", "label", "space", "queries", "candidates", "r1", "r5", "r10", "medr", "meanr")
#: The metrics compared by :func:`deltas`.
COMPARED = ("r1", "r5", "r10", "medr", "meanr")


@dataclass
class Scope:
    """The clips metrics are computed on.

    Attributes:
        rows: int64 ``[M]`` bank rows, increasing.
        name: ``"test"`` or ``"selection"`` (or anything the caller names it).
        requested: clips asked for (more than ``len(rows)`` when sampled or when rows were out of range).
        note: why fewer than requested, or ``""``.
    """

    rows: np.ndarray
    name: str
    requested: int
    note: str = ""


def scope_rows(meta: pd.DataFrame, scope: str = "test", selection: Any = None, seed: int = 0) -> Scope:
    """The rows of a scope: the ``test`` split, or ``selection`` (bank rows; out-of-range ones dropped).

    More than :data:`MAX_SCOPE_ROWS` clips: a sample of that many (``seed``), and ``note`` says so.
    """
    n = len(meta)
    if scope == "test":
        split = meta["split"].astype(str).to_numpy() if "split" in meta.columns else np.array([""] * n)
        rows = np.flatnonzero(split == "test")
    else:
        given = np.asarray(list(selection or []), dtype=np.int64).ravel()
        rows = np.unique(given[(given >= 0) & (given < n)])
    requested, note = len(rows), ""
    if len(rows) > MAX_SCOPE_ROWS:
        rows = np.sort(np.random.default_rng(seed).choice(rows, MAX_SCOPE_ROWS, replace=False))
        note = f"a random sample of {MAX_SCOPE_ROWS:,} of the {requested:,} clips (seed {seed})"
    return Scope(rows.astype(np.int64), scope, requested, note)


def bank_directions(spaces: dict[str, list[str]]) -> list[tuple[str, str, str, str]]:
    """``(name, query, target, space)`` of every :data:`~mmv.eval.zero_shot.DIRECTIONS` entry the bank supports
    (the first space of the entry's preference holding both modalities; i2t needs images, which banks lack)."""
    out = []
    for name, (q, t, prefs) in DIRECTIONS.items():
        space = next((s for s in prefs if q in spaces.get(s, ()) and t in spaces.get(s, ())), None)
        if space is not None:
            out.append((name, q, t, space))
    return out


def _present(search: Any, space: str, modality: str, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The scope rows having a ``modality`` vector in ``space`` and those vectors (float64 ``[M, D]``)."""
    pos = search.positions(space, modality)
    keep = np.array([int(r) in pos for r in rows], dtype=bool)
    kept = rows[keep]
    idx = np.array([pos[int(r)] for r in kept], dtype=np.int64)  # only these rows are read from the memory map
    vecs = np.asarray(search.bank.vectors(space, modality)[idx], dtype=np.float64)
    return kept, vecs.reshape(len(kept), -1)


def clip_groups(meta: pd.DataFrame) -> np.ndarray:
    """int64 ``[len(meta)]``: rows with the same media share a group (:func:`~mmv.eval.zero_shot.media_groups`);
    a row without any media path is a group of its own (a synthetic bank's clips are all distinct)."""
    if len(meta) == 0:
        return np.zeros(0, dtype=np.int64)
    groups = media_groups(meta).copy()
    paths = [c for c in ("video_path", "audio_path", "image_path") if c in meta.columns]
    bare = ~meta[paths].notna().any(axis=1).to_numpy() if paths else np.ones(len(meta), dtype=bool)
    groups[bare] = groups.max() + 1 + np.arange(int(bare.sum()))
    return groups


@dataclass
class DirectionResult:
    """One direction on a scope.

    Attributes:
        name, query, target, space: the direction (``"t2v"``, ``"text"``, ``"video"``, ``"vat"``).
        metrics: :func:`~mmv.eval.ranking.retrieval_metrics`'s dict (``r1``, ``r5``, ``r10``, ``medr``,
            ``meanr``, ``ranks`` int64 ``[Q]``, ``num_queries``, ``num_candidates``).
        query_rows: int64 ``[Q]`` bank rows of the queries (order of ``ranks``).
        candidate_rows: int64 ``[N]`` bank rows of the candidates.
        top: int64 ``[Q, min(HUB_K, N)]`` bank rows of each query's nearest candidates, best first.
    """

    name: str
    query: str
    target: str
    space: str
    metrics: dict[str, Any]
    query_rows: np.ndarray
    candidate_rows: np.ndarray
    top: np.ndarray

    @property
    def label(self) -> str:
        return f"{self.query} \u2192 {self.target}"


def rank_direction(
    search: Any, rows: np.ndarray, name: str, query: str, target: str, space: str, k: int = HUB_K
) -> DirectionResult | None:
    """Ranks one direction on the scope ``rows`` (``None`` when it has no query or no candidate there).

    Queries: scope clips with a ``query`` vector; candidates: one clip per media group with a ``target`` vector
    (the first); a query without a correct candidate in the scope is left out, as the evaluation does.
    """
    groups = clip_groups(search.meta.iloc[rows])
    group_of = dict(zip(rows.tolist(), groups.tolist()))
    q_rows, q_vecs = _present(search, space, query, rows)
    c_rows, c_vecs = _present(search, space, target, rows)
    if len(c_rows):
        _, first = np.unique([group_of[int(r)] for r in c_rows], return_index=True)
        first = np.sort(first)
        c_rows, c_vecs = c_rows[first], c_vecs[first]
    q_groups = np.array([group_of[int(r)] for r in q_rows], dtype=np.int64)
    c_groups = np.array([group_of[int(r)] for r in c_rows], dtype=np.int64)
    gt = q_groups[:, None] == c_groups[None, :]
    keep = gt.any(axis=1) if len(c_rows) else np.zeros(len(q_rows), bool)
    q_rows, q_vecs, gt = q_rows[keep], q_vecs[keep], gt[keep]
    if len(q_rows) == 0 or len(c_rows) == 0:
        return None
    sim = q_vecs @ c_vecs.T
    metrics = retrieval_metrics(sim, gt)
    kk = min(int(k), len(c_rows))
    top = c_rows[np.argsort(-sim, axis=1, kind="stable")[:, :kk]]
    return DirectionResult(name, query, target, space, metrics, q_rows, c_rows, top)


@dataclass
class Evaluation:
    """Every direction of a bank on one scope (:func:`evaluate`)."""

    results: dict[str, DirectionResult] = field(default_factory=dict)
    clip_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=object))
    k: int = HUB_K

    @property
    def table(self) -> pd.DataFrame:
        """One row per direction: :data:`METRIC_COLUMNS` (recalls as fractions in [0, 1])."""
        recs = []
        for r in self.results.values():
            m = r.metrics
            recs.append(
                {
                    "direction": r.name,
                    "label": r.label,
                    "space": r.space,
                    "queries": m["num_queries"],
                    "candidates": m["num_candidates"],
                    **{f"r{k}": m[f"r{k}"] for k in RECALL_AT},
                    "medr": m["medr"],
                    "meanr": m["meanr"],
                }
            )
        return pd.DataFrame(recs, columns=list(METRIC_COLUMNS))

    @property
    def ranks(self) -> pd.DataFrame:
        """The rank of every query's ground-truth pair: ``direction``, ``label``, ``row``, ``clip_id``, ``rank``,
        ``candidates`` (for the histogram and the export)."""
        frames = [
            pd.DataFrame(
                {
                    "direction": r.name,
                    "label": r.label,
                    "row": r.query_rows,
                    "clip_id": self.clip_ids[r.query_rows],
                    "rank": r.metrics["ranks"],
                    "candidates": r.metrics["num_candidates"],
                }
            )
            for r in self.results.values()
        ]
        cols = ["direction", "label", "row", "clip_id", "rank", "candidates"]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=cols)


def evaluate(search: Any, rows: Any, k: int = HUB_K) -> Evaluation:
    """Every direction the bank supports (:func:`bank_directions`) ranked on the clips ``rows``."""
    rows = np.unique(np.asarray(rows, dtype=np.int64).ravel())
    out = Evaluation(clip_ids=search.meta["clip_id"].astype(str).to_numpy(dtype=object), k=int(k))
    for name, q, t, space in bank_directions(search.spaces):
        res = rank_direction(search, rows, name, q, t, space, k)
        if res is not None:
            out.results[name] = res
    return out


# ---------------------------------------------------------------------------------------------------
# Hubs
# ---------------------------------------------------------------------------------------------------


def k_occurrence(result: DirectionResult) -> pd.DataFrame:
    """Per candidate of a direction: ``row``, ``count`` (queries whose top-k hold it), ``share`` (of the
    queries), ``z`` (z-score of the count among the candidates; 0 when all counts are equal)."""
    counts = pd.Series(result.top.ravel()).value_counts()
    count = np.array([int(counts.get(int(r), 0)) for r in result.candidate_rows], dtype=np.int64)
    std = float(count.std())
    z = (count - count.mean()) / std if std > 0 else np.zeros(len(count))
    n_q = max(1, len(result.query_rows))
    return pd.DataFrame({"row": result.candidate_rows, "count": count, "share": count / n_q, "z": z})


def hubs(evaluation: Evaluation, factor: float = HUB_FACTOR, top: int = 10) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(summary, hubs)``.

    ``summary``: per direction ``direction``, ``label``, ``k``, ``expected`` (mean k-occurrence, ``Q k / N``),
    ``max_count``, ``skewness`` of the k-occurrences, ``hubs`` (candidates with ``count >= factor * expected``).
    ``hubs``: the ``top`` hubs by count per direction: ``direction``, ``label``, ``row``, ``clip_id``, ``count``,
    ``share``, ``z``.
    """
    summary, found = [], []
    for r in evaluation.results.values():
        occ = k_occurrence(r)
        c = occ["count"].to_numpy(dtype=np.float64)
        skew = float(((c - c.mean()) ** 3).mean() / c.std() ** 3) if c.std() > 0 else 0.0
        is_hub = (occ["count"] >= factor * c.mean()) & (occ["count"] > c.mean()) if len(c) else occ["z"] > 0
        summary.append(
            {
                "direction": r.name,
                "label": r.label,
                "k": r.top.shape[1],
                "expected": float(c.mean()),
                "max_count": int(c.max()) if len(c) else 0,
                "skewness": skew,
                "hubs": int(is_hub.sum()),
            }
        )
        h = occ[is_hub].sort_values(["count", "row"], ascending=[False, True]).head(top)
        found.append(h.assign(direction=r.name, label=r.label, clip_id=evaluation.clip_ids[h["row"].to_numpy()]))
    cols = ["direction", "label", "row", "clip_id", "count", "share", "z"]
    table = pd.concat(found, ignore_index=True)[cols] if found else pd.DataFrame(columns=cols)
    scols = ["direction", "label", "k", "expected", "max_count", "skewness", "hubs"]
    return pd.DataFrame(summary, columns=scols), table


# ---------------------------------------------------------------------------------------------------
# Pair alignment
# ---------------------------------------------------------------------------------------------------


def derangement(n: int, seed: int = 0) -> np.ndarray:
    """A random permutation of ``range(n)`` with no fixed point (``n >= 2``; the identity for ``n < 2``): a
    random cycle through all items, so clip ``i`` is paired with another clip's partner."""
    if n < 2:
        return np.arange(n)
    order = np.random.default_rng(seed).permutation(n)
    out = np.empty(n, dtype=np.int64)
    out[order] = np.roll(order, -1)
    return out


def alignment(search: Any, rows: Any, seed: int = 0) -> pd.DataFrame:
    """Per clip of the scope and space of :data:`PAIRS`: the cosine of its own pair against a shuffled pair.

    Returns:
        One row per (space, clip with both modalities): ``space``, ``pair`` (``"video\u00b7audio"``), ``row``,
        ``clip_id``, ``cosine`` (its own pair), ``shuffled`` (its video with the partner of the clip
        :func:`derangement` gives it), ``percentile`` (share, in %, of the space's shuffled cosines below its own).
    """
    rows = np.unique(np.asarray(rows, dtype=np.int64).ravel())
    ids = search.meta["clip_id"].astype(str).to_numpy()
    frames = []
    for space, (a, b) in PAIRS.items():
        if a not in search.spaces.get(space, ()) or b not in search.spaces.get(space, ()):
            continue
        ra, va = _present(search, space, a, rows)
        rb, _ = _present(search, space, b, rows)
        both = np.intersect1d(ra, rb)
        if len(both) == 0:
            continue
        va = va[np.searchsorted(ra, both)]
        vb = _present(search, space, b, both)[1]
        own = np.einsum("nd,nd->n", va, vb)
        shuffled = np.einsum("nd,nd->n", va, vb[derangement(len(both), seed)]) if len(both) > 1 else np.full(1, np.nan)
        frames.append(
            pd.DataFrame(
                {
                    "space": space,
                    "pair": f"{a}\u00b7{b}",
                    "row": both,
                    "clip_id": ids[both],
                    "cosine": own,
                    "shuffled": shuffled,
                    "percentile": percentiles(shuffled[np.isfinite(shuffled)], own),
                }
            )
        )
    cols = ["space", "pair", "row", "clip_id", "cosine", "shuffled", "percentile"]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=cols)


def alignment_summary(aligned: pd.DataFrame) -> pd.DataFrame:
    """Per space: ``clips``, mean ``cosine`` and ``shuffled``, their difference ``gap``, and ``auc``: the chance
    that a clip's own pair beats a random shuffled pair (mean percentile / 100; 0.5 = no better than chance)."""
    recs = []
    for (space, pair), g in aligned.groupby(["space", "pair"], sort=False):
        recs.append(
            {
                "space": space,
                "pair": pair,
                "clips": len(g),
                "cosine": float(g["cosine"].mean()),
                "shuffled": float(g["shuffled"].mean()),
                "gap": float(g["cosine"].mean() - g["shuffled"].mean()),
                "auc": float(g["percentile"].mean() / 100),
            }
        )
    return pd.DataFrame(recs, columns=["space", "pair", "clips", "cosine", "shuffled", "gap", "auc"])


def worst_aligned(aligned: pd.DataFrame, n: int = 8) -> pd.DataFrame:
    """The ``n`` clips with the lowest own-pair cosine in each space (worst first)."""
    if aligned.empty:
        return aligned
    return aligned.sort_values(["space", "cosine", "row"]).groupby("space", sort=False).head(n).reset_index(drop=True)


# ---------------------------------------------------------------------------------------------------
# Two banks
# ---------------------------------------------------------------------------------------------------


def matched_rows(meta_a: pd.DataFrame, rows_a: Any, meta_b: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """The clips of ``rows_a`` (rows of bank A) that bank B also has, by ``clip_id``: ``(rows in A, rows in B)``."""
    rows_a = np.unique(np.asarray(rows_a, dtype=np.int64).ravel())
    in_b = {cid: i for i, cid in enumerate(meta_b["clip_id"].astype(str))}
    ids = meta_a["clip_id"].astype(str).to_numpy()[rows_a]
    keep = np.array([cid in in_b for cid in ids], dtype=bool)
    return rows_a[keep], np.array([in_b[cid] for cid in ids[keep]], dtype=np.int64)


def deltas(table_a: pd.DataFrame, table_b: pd.DataFrame) -> pd.DataFrame:
    """Per direction both tables have: each metric of :data:`COMPARED` in A, in B, and ``B - A``.

    Columns: ``direction``, ``label``, ``space``, ``queries``, then ``<metric>_a``, ``<metric>_b``,
    ``<metric>_delta``. Recalls stay fractions (a delta of 0.05 is five points); for ranks lower is better.
    """
    both = table_a.merge(table_b, on=["direction", "label"], suffixes=("_a", "_b"))
    out = both[["direction", "label"]].copy()
    out["space"] = both["space_a"]
    out["queries"] = both["queries_a"]
    for m in COMPARED:
        out[f"{m}_a"], out[f"{m}_b"] = both[f"{m}_a"], both[f"{m}_b"]
        out[f"{m}_delta"] = both[f"{m}_b"] - both[f"{m}_a"]
    return out


def compare_banks(search_a: Any, search_b: Any, rows_a: Any, k: int = HUB_K) -> tuple[pd.DataFrame, int]:
    """Metric deltas of bank B against bank A on the same clips (by id): ``(deltas, clips compared)``.

    Both banks are evaluated on the clips of ``rows_a`` that B also has, so a clip missing from B does not
    count for A either.
    """
    ra, rb = matched_rows(search_a.meta, rows_a, search_b.meta)
    return deltas(evaluate(search_a, ra, k).table, evaluate(search_b, rb, k).table), len(ra)
