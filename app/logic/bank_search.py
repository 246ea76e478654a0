"""Retrieval over an embedding bank: directions, top-k with percentiles, neighbours, queries from bank rows.

Plain functions and one small class over :class:`mmv.bank.Bank` (no Streamlit here, so the tests drive it
directly). Conventions:

* A **direction** is ``(query modality, target modality, space)``. The pairs a bank supports come from
  ``bank.spaces`` (``{"va": ["video", "audio"], "vat": ["video", "audio", "text"]}`` for FAC): two modalities
  can be compared in every space that holds both, and the app uses the **finest** one, the space with the
  fewest modalities (video-audio in S_va, anything with text in S_vat), as the evaluation does.
* Every vector is L2-normalised, so a score is a **cosine** in ``[-1, 1]``.
* The **percentile** of a score is the share of *random* (query, target) pairs of the bank, in the same space
  and modalities, that score strictly lower (``bank.random_pair_scores``; 2000 pairs, seed 0, cached): 99
  means the match is better than 99 % of random pairings, a scale that does not depend on how spread out a
  space is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

#: Modalities in display order.
MODALITIES = ("video", "audio", "text")
#: Random pairs behind each percentile.
RANDOM_PAIRS = 2000
#: The columns of a hit table (:meth:`BankSearch.search`).
HIT_COLUMNS = ("rank", "row", "clip_id", "score", "percentile", "space", "modality", "split", "description",
               "narration")  # fmt: skip


class QueryError(ValueError):
    """A query that cannot be compared with the bank (message for the user)."""


@dataclass(frozen=True)
class Direction:
    """A retrieval direction the bank supports: ``query`` -> ``target`` in ``space``."""

    query: str
    target: str
    space: str

    @property
    def label(self) -> str:
        return f"{self.query} \u2192 {self.target} (S_{self.space})"


def space_for(spaces: dict[str, list[str]], query: str, target: str) -> str | None:
    """The finest space holding both modalities (fewest modalities; ties: the order of ``spaces``), or ``None``."""
    both = [s for s, mods in spaces.items() if query in mods and target in mods]
    return min(both, key=lambda s: len(spaces[s])) if both else None


def directions(spaces: dict[str, list[str]], same_modality: bool = False) -> list[Direction]:
    """Every direction the spaces support, in a stable order (video, audio, text as query, then target)."""
    present = [m for m in MODALITIES if any(m in mods for mods in spaces.values())]
    out = []
    for q in present:
        for t in present:
            if q == t and not same_modality:
                continue
            space = space_for(spaces, q, t)
            if space is not None:
                out.append(Direction(q, t, space))
    return out


def targets_for(spaces: dict[str, list[str]], query: str, same_modality: bool = False) -> list[str]:
    """The target modalities a query modality can search."""
    return [d.target for d in directions(spaces, same_modality) if d.query == query]


def percentiles(random_scores: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Share (in %) of ``random_scores`` strictly below each score: float64 ``[...]`` like ``scores``."""
    ref = np.sort(np.asarray(random_scores, dtype=np.float64).ravel())
    if ref.size == 0:
        return np.full(np.shape(scores), np.nan)
    return 100.0 * np.searchsorted(ref, np.asarray(scores, dtype=np.float64), side="left") / ref.size


def _text(value: Any) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    if isinstance(value, (list, tuple, np.ndarray)):
        parts = [v.get("text", "") if isinstance(v, dict) else str(v) for v in value]
        return " / ".join(p for p in parts if p)
    return str(value)


class BankSearch:
    """Search helpers over one loaded bank, with the per-bank caches (row positions, random-pair scores).

    Args:
        bank: an :class:`mmv.bank.Bank` (or anything with its interface: ``meta``, ``spaces``, ``vectors``,
            ``rows``, ``search``, ``random_pair_scores``).
    """

    def __init__(self, bank: Any) -> None:
        self.bank = bank
        self.meta: pd.DataFrame = bank.meta
        self.spaces: dict[str, list[str]] = {k: list(v) for k, v in bank.spaces.items()}
        self._positions: dict[tuple[str, str], dict[int, int]] = {}
        self._random: dict[tuple[str, str, str], np.ndarray] = {}

    # -- rows and vectors ---------------------------------------------------------------------------

    def positions(self, space: str, modality: str) -> dict[int, int]:
        """``meta row -> index into bank.vectors(space, modality)``."""
        key = (space, modality)
        if key not in self._positions:
            rows = np.asarray(self.bank.rows(space, modality)).tolist()
            self._positions[key] = {int(r): i for i, r in enumerate(rows)}
        return self._positions[key]

    def vector(self, space: str, modality: str, row: int) -> np.ndarray | None:
        """The bank's unit vector of a clip's modality in a space, or ``None`` (e.g. a clip without text)."""
        if modality not in self.spaces.get(space, ()):
            return None
        pos = self.positions(space, modality).get(int(row))
        if pos is None:
            return None
        return np.asarray(self.bank.vectors(space, modality)[pos], dtype=np.float32)

    def row_vectors(self, row: int, modality: str) -> dict[str, np.ndarray]:
        """``{space: vector}`` of one clip's modality in every space that has it (a query from a bank row)."""
        out = {}
        for space in self.spaces:
            v = self.vector(space, modality, row)
            if v is not None:
                out[space] = v
        return out

    def modalities_of(self, row: int) -> list[str]:
        """The modalities a clip has in the bank."""
        return [m for m in MODALITIES if any(self.vector(s, m, row) is not None for s in self.spaces)]

    def row_of(self, clip_id: str) -> int | None:
        hits = np.flatnonzero(self.meta["clip_id"].astype(str).to_numpy() == str(clip_id))
        return int(hits[0]) if len(hits) else None

    # -- scores -------------------------------------------------------------------------------------

    def random_scores(self, space: str, query: str, target: str) -> np.ndarray:
        """Sorted cosines of random ``(query, target)`` pairs of the bank in ``space`` (cached)."""
        key = (space, query, target)
        if key not in self._random:
            scores = self.bank.random_pair_scores(space, query, target, RANDOM_PAIRS, 0)
            self._random[key] = np.sort(np.asarray(scores, dtype=np.float64).ravel())
        return self._random[key]

    def search(
        self,
        query_vectors: dict[str, np.ndarray],
        query: str,
        target: str,
        k: int = 10,
        exclude_row: int | None = None,
    ) -> pd.DataFrame:
        """Top-``k`` bank items of modality ``target`` for a query given in one or more spaces.

        Args:
            query_vectors: ``{space: unit vector [D]}`` of the query (e.g. from
                :func:`app.logic.query_embedding.embed_query` or :meth:`row_vectors`); the space used is
                :func:`space_for` ``(query, target)``.
            query: the query's modality.
            target: the modality searched.
            k: results wanted.
            exclude_row: a bank row left out of the results (the query itself when searching its own modality).

        Returns:
            One row per hit, best first: ``rank`` (1-based), ``row``, ``clip_id``, ``score`` (cosine),
            ``percentile``, ``space``, ``modality`` (= target), and the clip's ``split``, ``description``,
            ``narration`` for display. Empty when the direction is not supported.
        """
        space = space_for(self.spaces, query, target)
        if space is None or space not in query_vectors:
            return pd.DataFrame(columns=HIT_COLUMNS)
        return self.search_in(space, query_vectors[space], query, target, k, exclude_row)

    def search_in(
        self, space: str, vector: np.ndarray, query: str, target: str, k: int = 10, exclude_row: int | None = None
    ) -> pd.DataFrame:
        """Like :meth:`search`, in a given space (the inspector shows every space, not only the finest)."""
        if target not in self.spaces.get(space, ()):
            return pd.DataFrame(columns=HIT_COLUMNS)
        vec = np.asarray(vector, dtype=np.float32).reshape(1, -1)
        width = int(np.shape(self.bank.vectors(space, target))[1])
        if vec.shape[1] != width:
            raise QueryError(
                f"The query's S_{space} embedding has {vec.shape[1]} dimensions but the bank's has {width}: the bank "
                "was built with another model. Choose the checkpoint the bank was built from (see the sidebar)."
            )
        n = len(self.positions(space, target))
        want = min(n, k + (1 if exclude_row is not None else 0))
        if want == 0:
            return pd.DataFrame(columns=HIT_COLUMNS)
        scores, rows = self.bank.search(space, target, vec, want)
        scores, rows = np.asarray(scores)[0], np.asarray(rows)[0]
        keep = [(s, r) for s, r in zip(scores.tolist(), rows.tolist()) if r >= 0 and r != exclude_row][:k]
        if not keep:
            return pd.DataFrame(columns=HIT_COLUMNS)
        sc = np.array([s for s, _ in keep], dtype=np.float64)
        rw = np.array([r for _, r in keep], dtype=np.int64)
        meta = self.meta.iloc[rw]
        out = pd.DataFrame(
            {
                "rank": np.arange(1, len(rw) + 1),
                "row": rw,
                "clip_id": meta["clip_id"].astype(str).to_numpy(),
                "score": sc,
                "percentile": percentiles(self.random_scores(space, query, target), sc),
                "space": space,
                "modality": target,
                "split": meta["split"].astype(str).to_numpy() if "split" in meta else "",
                "description": [_text(v) for v in meta["description"]] if "description" in meta else "",
                "narration": [_text(v) for v in meta["narration"]] if "narration" in meta else "",
            }
        )
        return out[list(HIT_COLUMNS)]

    def search_all(self, query_vectors: dict[str, dict[str, np.ndarray]], k: int = 10) -> dict[Direction, pd.DataFrame]:
        """Results in every direction a multi-modal query supports (``{modality: {space: vector}}``)."""
        out = {}
        for d in directions(self.spaces, same_modality=False):
            if d.query in query_vectors:
                out[d] = self.search(query_vectors[d.query], d.query, d.target, k)
        return out

    def neighbours(self, row: int, modality: str, k: int = 5) -> dict[tuple[str, str], pd.DataFrame]:
        """The nearest bank items of a clip's modality, in every space that has it and for every modality there.

        Returns:
            ``{(space, target modality): hits}`` (see :meth:`search`), the clip itself left out of its own
            modality's list.
        """
        out = {}
        for space, mods in self.spaces.items():
            vec = self.vector(space, modality, row)
            if vec is None:
                continue
            for target in mods:
                hits = self.search_in(space, vec, modality, target, k, exclude_row=row if target == modality else None)
                out[(space, target)] = hits
        return out

    def clip_text(self, row: int) -> dict[str, str]:
        """``description`` and ``narration`` of a clip as plain strings (empty when the bank has none)."""
        rec = self.meta.iloc[int(row)]
        return {
            "description": _text(rec.get("description")),
            "narration": _text(rec.get("narration")) or _text(rec.get("captions")),
        }
