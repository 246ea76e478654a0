"""Zero-shot retrieval: ranks and recall from a similarity matrix, and multi-window clip embeddings.

Protocol (``shared/mmv_spec.md`` sections 7.3 and 8.5-8.7): clips are embedded in eval mode (BatchNorm with
running statistics, and FAC's audio -> S_vat path switched on), each modality's embeddings are *averaged
over ``num_windows`` linearly spaced windows and then L2-normalised*, so a dot product is a cosine
similarity. Text-video and audio-text retrieval use the coarse space S_vat (``vat``), video-audio the fine
space S_va (``va``).

**Ranks.** For query ``q`` with similarities ``s`` over the ``N`` candidates and a non-empty set ``G`` of
correct candidates, the rank of the query is the 1-based position of its *best-ranked* correct candidate::

    rank_q = 1 + #{ i not in G : s_i >= max_{j in G} s_j }

Ties are therefore broken *pessimistically*: a wrong candidate with exactly the score of the best correct one
is ranked ahead of it, so ties never flatter a query (a model that outputs a constant gets rank
``N - |G| + 1``, not 1). The result does not depend on the order of the candidates. Several correct candidates
per query are allowed (attribute-level matching); the other correct ones never push the rank down.
``R@k`` is the fraction of queries with ``rank <= k``; the median rank is ``numpy.median`` of the ranks
(a half-integer for an even number of queries when the two middle ranks differ), as in MIL-NCE's
``metrics.py`` (which ranks the diagonal of the text x video matrix; here the diagonal is the case
``gt = arange(Q)``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

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


# ---------------------------------------------------------------------------------------------------
# Embedding a dataset
# ---------------------------------------------------------------------------------------------------


def _loader(dataset_or_loader: Any, batch_size: int, num_workers: int) -> Iterable[dict[str, Any]]:
    if isinstance(dataset_or_loader, DataLoader):
        return dataset_or_loader
    from mmv.data.dataset import collate_clips

    return DataLoader(
        dataset_or_loader, batch_size=batch_size, shuffle=False, num_workers=num_workers, collate_fn=collate_clips
    )


class _Accumulator:
    """Per-row sums of embeddings (float64) and counts, rows given by the batch's ``index``."""

    def __init__(self) -> None:
        self.parts: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []

    def add(self, rows: torch.Tensor, values: torch.Tensor, weights: torch.Tensor | None = None) -> None:
        w = torch.ones(len(rows), dtype=torch.float64) if weights is None else weights.to(torch.float64).cpu()
        self.parts.append((rows.cpu(), values.detach().to("cpu", torch.float64), w))

    def mean(self, num_rows: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``([num_rows, D] mean, [num_rows] total weight)``; rows with no weight are zero."""
        dim = self.parts[0][1].shape[1]
        total = torch.zeros(num_rows, dim, dtype=torch.float64)
        count = torch.zeros(num_rows, dtype=torch.float64)
        for rows, values, w in self.parts:
            total.index_add_(0, rows, values * w[:, None])
            count.index_add_(0, rows, w)
        return total / count.clamp_min(1e-12)[:, None], count


@torch.no_grad()
def embed_manifest(
    model: nn.Module,
    dataset_or_loader: Any,
    device: str | torch.device = "cpu",
    num_windows: int | None = None,
    *,
    batch_size: int = 32,
    num_workers: int = 0,
) -> dict[str, Any]:
    """Embeds every clip of a dataset in every space its model has, averaging over evaluation windows.

    The model runs in eval mode (restored afterwards): BatchNorm uses its running statistics and FAC audio
    reaches S_vat through the video's va->vat head. For each clip (dataset row), each embedding is averaged
    over the clip's windows and then L2-normalised. Text is the exception in the averaging: each valid caption
    of the clip's bags (``text`` ``[K, L]`` with ``text_mask``, one bag per window) is L2-normalised first, the
    normalised captions are averaged over the bag and the windows, and the mean is normalised again (so a long
    caption with a large raw norm does not outweigh the others). With ``num_captions = 1`` that is one caption
    per window.

    Args:
        model: an :class:`mmv.models.mmv.MMV`.
        dataset_or_loader: a :class:`mmv.data.dataset.ClipDataset` in ``'eval'`` mode (item ``i`` is window
            ``i % num_windows`` of row ``i // num_windows``), or a DataLoader yielding :func:`collate_clips`
            batches of such items (``index`` = row, ``window``).
        device: where the model runs (it must already be there).
        num_windows: windows per clip the data is expected to hold (``None``: the dataset's, or no check for a
            loader). A clip whose windows were skipped (unreadable media) is averaged over the ones read and
            reported in ``num_windows``; a clip with none is left out.
        batch_size: items per batch when a dataset is given.
        num_workers: DataLoader workers when a dataset is given.

    Returns:
        ``index`` (int64 ``[M]``, dataset rows, increasing), ``clip_id`` (list), ``labels`` (``{name: list}``),
        ``num_windows`` (int64 ``[M]``, windows read per clip), ``has_audio`` / ``has_text`` (bool ``[M]``),
        and float32 ``[M, D]`` L2-normalised embeddings: ``video_va``, ``video_vat``, ``audio_va``,
        ``audio_vat`` (FAC: through the video's va->vat head), ``text_vat`` (zero rows where ``has_text`` is
        False), each present when the model and the data have that modality and space.
    """
    dataset = None if isinstance(dataset_or_loader, DataLoader) else dataset_or_loader
    if dataset is not None and num_windows is not None and getattr(dataset, "num_windows", num_windows) != num_windows:
        raise ValueError(f"num_windows={num_windows} but the dataset has {dataset.num_windows} windows per clip")
    if num_windows is None and dataset is not None:
        num_windows = getattr(dataset, "num_windows", None)
    loader = _loader(dataset_or_loader, batch_size, num_workers)
    modalities = set(getattr(model, "modalities", ("video", "audio", "text")))
    acc: dict[str, _Accumulator] = {}
    meta: dict[int, dict[str, Any]] = {}
    windows: dict[int, int] = {}
    was_training = model.training
    model.eval()
    try:
        for batch in loader:
            if len(batch.get("clip_id", [])) == 0:
                continue
            rows = batch["index"].to(torch.int64)
            for b, row in enumerate(rows.tolist()):
                windows[row] = windows.get(row, 0) + 1
                if row not in meta:
                    labels = batch.get("labels", {})
                    meta[row] = {
                        "clip_id": batch["clip_id"][b],
                        "labels": {
                            k: (v[b].item() if isinstance(v, torch.Tensor) else v[b]) for k, v in labels.items()
                        },
                        "has_audio": bool(batch["has_audio"][b]) if "has_audio" in batch else False,
                    }
            if "video" in batch and "video" in modalities:
                out = model.encode_video(batch["video"].to(device))
                for space in ("va", "vat"):
                    if space in out:
                        acc.setdefault(f"video_{space}", _Accumulator()).add(rows, out[space])
            if "audio" in batch and "audio" in modalities:
                out = model.encode_audio(batch["audio"].to(device))
                for space in ("va", "vat"):
                    if space in out:
                        acc.setdefault(f"audio_{space}", _Accumulator()).add(rows, out[space])
            if "text" in batch and "text" in modalities:
                text = batch["text"].to(device)
                if text.dim() == 2:
                    text = text[:, None]
                mask = batch.get("text_mask")
                mask = torch.ones(text.shape[:2], dtype=torch.bool) if mask is None else mask.bool().cpu()
                out = model.encode_text(text)
                if "vat" in out:
                    emb = F.normalize(out["vat"].detach().to("cpu", torch.float64), dim=-1) * mask[..., None]
                    acc.setdefault("text_vat", _Accumulator()).add(rows, emb.sum(dim=1), mask.sum(dim=1))
    finally:
        model.train(was_training)
    if not meta:
        raise ValueError("embed_manifest: the data yielded no clip")
    index = torch.tensor(sorted(meta), dtype=torch.int64)
    num_rows = int(index.max()) + 1
    result: dict[str, Any] = {
        "index": index,
        "clip_id": [meta[r]["clip_id"] for r in index.tolist()],
        "num_windows": torch.tensor([windows[r] for r in index.tolist()], dtype=torch.int64),
        "has_audio": torch.tensor([meta[r]["has_audio"] for r in index.tolist()], dtype=torch.bool),
    }
    names = list(dict.fromkeys(k for r in index.tolist() for k in meta[r]["labels"]))
    result["labels"] = {k: [meta[r]["labels"].get(k) for r in index.tolist()] for k in names}
    for key, a in acc.items():
        mean, count = a.mean(num_rows)
        emb = F.normalize(mean[index], dim=-1).to(torch.float32)  # zero rows stay zero
        result[key] = emb
        if key == "text_vat":
            result["has_text"] = count[index] > 0
    if "has_text" not in result:
        result["has_text"] = torch.zeros(len(index), dtype=torch.bool)
    if num_windows is not None and bool((result["num_windows"] > num_windows).any()):
        raise ValueError(f"embed_manifest: some clip has more than num_windows={num_windows} windows in the data")
    return result
