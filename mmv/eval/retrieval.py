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

**Directions.** :func:`zero_shot_retrieval` ranks every direction an embedded dataset supports
(:data:`DIRECTIONS`: t2v, v2t, v2a, a2v, a2t, t2a, i2t), a clip's correct candidates being the rows with the
same media (:func:`media_groups`); :func:`ranks_table` exports the rank of every query.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from mmv.embed import eval_mode

if TYPE_CHECKING:
    from mmv.models.mmv import MMV

#: Recall cut-offs reported by :func:`retrieval_metrics` (``r1``, ``r5``, ``r10``).
RECALL_AT = (1, 5, 10)
#: Captions per window in a clip's narration bag, for evaluation and the bank alike (every toy-world clip has at
#: most 6).
NARRATION_CAPTIONS = 8

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
    from mmv.data.collate import collate_clips

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


#: Every embedding :func:`embed_manifest` can return, named ``<modality>_<output>`` after the ``encode_*`` dicts of
#: :class:`mmv.models.mmv.MMV`. The spaces (``va``, ``vat``, ``at``) are averaged over windows and L2-normalised;
#: the representations (``repr``: the backbone output before any head, the linear-probe feature) are averaged
#: and left as they are.
EMBEDDING_KEYS = (
    "video_repr",
    "video_va",
    "video_vat",
    "audio_repr",
    "audio_va",
    "audio_vat",
    "audio_at",
    "text_vat",
    "text_at",
    "image_repr",
    "image_va",
    "image_vat",
)
_SPACES = ("va", "vat", "at")


def encode_images(model: MMV, images: torch.Tensor, mode: str = "auto") -> dict[str, torch.Tensor]:
    """``model.encode_image(images, mode=mode)`` on ``[B, H, W, 3]`` images (uint8, or float in [0, 1]).

    ``mode`` is :meth:`mmv.models.mmv.MMV.encode_image`'s: ``'auto'`` (the recalibrated deflated tower when one
    is attached, else naive deflation), ``'calibrated'``, ``'naive'``, or ``'inflated'`` (the image repeated as
    a static video through the video network, the reference deflation is measured against).

    Raises:
        ValueError: the model has no ``encode_image``: images need the deflated video network
            (``shared/mmv_spec.md`` section 6), which this model was not given.
    """
    return model.encode_image(images, mode=mode)


def eval_clips(
    model: MMV,
    manifest: pd.DataFrame,
    *,
    vocab: Any = None,
    num_windows: int = 1,
    num_captions: int = NARRATION_CAPTIONS,
    video: bool = True,
    cache_dir: Any = None,
) -> Any:
    """The evaluation's :class:`~mmv.data.dataset.ClipDataset` of a manifest for a model (``'eval'`` mode).

    Every modality the model has is read (video only when ``video``); text only when the model has a text tower
    and a vocabulary (``vocab``, else ``model.vocab``): then each window carries its ``num_captions`` nearest
    captions (the narration bag). The training loop's evaluation, :func:`evaluate_zero_shot` and the embedding
    bank all embed clips through this one dataset, so their vectors agree. ``dataset.vocab is None`` says that
    text is not read.
    """
    from mmv.data.dataset import ClipDataset

    cfg = model.config
    mods = set(cfg.modalities)
    vocab = vocab if vocab is not None else model.vocab
    text = "text" in mods and vocab is not None
    return ClipDataset(
        manifest,
        video_cfg=cfg.video if "video" in mods and video else None,
        audio_cfg=cfg.audio if "audio" in mods else None,
        vocab=vocab if text else None,
        text_cfg=cfg.text if text else None,
        num_captions=num_captions,
        mode="eval",
        num_windows=num_windows,
        cache_dir=cache_dir,
    )


@torch.no_grad()
def embed_manifest(
    model: MMV,
    dataset_or_loader: Any,
    device: str | torch.device = "cpu",
    num_windows: int | None = None,
    *,
    batch_size: int = 32,
    num_workers: int = 0,
    outputs: Collection[str] | None = None,
    image_mode: str = "auto",
    progress: bool = False,
) -> dict[str, Any]:
    """Embeds every clip of a dataset in every space its model has, averaging over evaluation windows.

    The model runs in eval mode (restored afterwards): BatchNorm uses its running statistics and FAC audio
    reaches S_vat through the video's va->vat head. For each clip (dataset row), each embedding is averaged
    over the clip's windows and then L2-normalised. Text is the exception in the averaging: each valid caption
    of the clip's bags (``text`` ``[K, L]`` with ``text_mask``, one bag per window) is L2-normalised first, the
    normalised captions are averaged over the bag and the windows, and the mean is normalised again (so a long
    caption with a large raw norm does not outweigh the others). With ``num_captions = 1`` that is one caption
    per window. Items holding ``image`` (``[H, W, 3]``) go through ``model.encode_image`` (:func:`encode_images`).

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
        outputs: the keys of :data:`EMBEDDING_KEYS` to compute (towers no key needs are not run); ``None``:
            every space embedding (``*_va``, ``*_vat``, ``*_at``) the model and the data have, no ``*_repr``.
        image_mode: how images are embedded (:func:`encode_images`).
        progress: show a tqdm bar over the batches.

    Returns:
        ``index`` (int64 ``[M]``, dataset rows, increasing), ``clip_id`` (list), ``labels`` (``{name: list}``),
        ``num_windows`` (int64 ``[M]``, windows read per clip), ``has_audio`` / ``has_text`` (bool ``[M]``),
        and float32 ``[M, D]`` embeddings named as in :data:`EMBEDDING_KEYS`, each present when asked for and
        the model and the data have that modality and space: L2-normalised ``video_va``, ``video_vat``,
        ``audio_va``, ``audio_vat`` (FAC: through the video's va->vat head), ``audio_at`` (disjoint graph with
        ``use_audio_text``), ``text_vat`` / ``text_at`` (zero rows where ``has_text`` is False), ``image_*``
        (then also ``has_image``); unnormalised ``*_repr``.
    """
    wanted = None if outputs is None else set(outputs)
    if wanted is not None and wanted - set(EMBEDDING_KEYS):
        raise ValueError(f"outputs: unknown {sorted(wanted - set(EMBEDDING_KEYS))}; choose from {EMBEDDING_KEYS}")

    def want(key: str) -> bool:
        return key.split("_", 1)[1] in _SPACES if wanted is None else key in wanted

    def needs(modality: str) -> bool:
        return any(want(k) for k in EMBEDDING_KEYS if k.startswith(modality + "_"))

    dataset = None if isinstance(dataset_or_loader, DataLoader) else dataset_or_loader
    if dataset is not None and num_windows is not None and getattr(dataset, "num_windows", num_windows) != num_windows:
        raise ValueError(f"num_windows={num_windows} but the dataset has {dataset.num_windows} windows per clip")
    if num_windows is None and dataset is not None:
        num_windows = getattr(dataset, "num_windows", None)
    loader = _loader(dataset_or_loader, batch_size, num_workers)
    if progress:
        from tqdm import tqdm

        loader = tqdm(loader, desc="embedding", unit="batch", dynamic_ncols=True)
    modalities = set(model.modalities)
    acc: dict[str, _Accumulator] = {}
    meta: dict[int, dict[str, Any]] = {}
    windows: dict[int, int] = {}

    def add(modality: str, out: dict[str, torch.Tensor], rows: torch.Tensor) -> None:
        for name in ("repr", *_SPACES):
            if name in out and want(f"{modality}_{name}"):
                acc.setdefault(f"{modality}_{name}", _Accumulator()).add(rows, out[name])

    with eval_mode(model):
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
            if "video" in batch and "video" in modalities and needs("video"):
                add("video", model.encode_video(batch["video"].to(device)), rows)
            if "audio" in batch and "audio" in modalities and needs("audio"):
                add("audio", model.encode_audio(batch["audio"].to(device)), rows)
            if "image" in batch and "video" in modalities and needs("image"):
                add("image", encode_images(model, batch["image"].to(device), image_mode), rows)
            if "text" in batch and "text" in modalities and needs("text"):
                text = batch["text"].to(device)
                if text.dim() == 2:
                    text = text[:, None]
                mask = batch.get("text_mask")
                mask = torch.ones(text.shape[:2], dtype=torch.bool) if mask is None else mask.bool().cpu()
                out = model.encode_text(text)
                for space in ("vat", "at"):
                    if space in out and want(f"text_{space}"):
                        emb = F.normalize(out[space].detach().to("cpu", torch.float64), dim=-1) * mask[..., None]
                        acc.setdefault(f"text_{space}", _Accumulator()).add(rows, emb.sum(dim=1), mask.sum(dim=1))
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
        if key.endswith("_repr"):
            result[key] = mean[index].to(torch.float32)
        else:
            result[key] = F.normalize(mean[index], dim=-1).to(torch.float32)  # zero rows stay zero
        if key.startswith("text_"):
            result["has_text"] = count[index] > 0
        if key.startswith("image_"):
            result["has_image"] = count[index] > 0
    if "has_text" not in result:
        result["has_text"] = torch.zeros(len(index), dtype=torch.bool)
    if num_windows is not None and bool((result["num_windows"] > num_windows).any()):
        raise ValueError(f"embed_manifest: some clip has more than num_windows={num_windows} windows in the data")
    return result


# ---------------------------------------------------------------------------------------------------
# Every retrieval direction of an embedded dataset
# ---------------------------------------------------------------------------------------------------

#: ``direction -> (query modality, candidate modality, spaces in order of preference)``. Audio-text uses the
#: disjoint graph's S_at when the model has it, else S_vat (FAC's eval path, or the shared space).
DIRECTIONS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "t2v": ("text", "video", ("vat",)),
    "v2t": ("video", "text", ("vat",)),
    "v2a": ("video", "audio", ("va",)),
    "a2v": ("audio", "video", ("va",)),
    "a2t": ("audio", "text", ("at", "vat")),
    "t2a": ("text", "audio", ("at", "vat")),
    "i2t": ("image", "text", ("vat",)),
}


def media_groups(manifest: pd.DataFrame) -> np.ndarray:
    """Int64 ``[rows]``: rows with the same media (paths and window) share a group id, in order of appearance.

    MSR-VTT's full test set, for example, lists each video once per caption: those rows are one video, so a
    caption's correct candidates are every row of its video, and the video is one candidate, not twenty.
    """
    cols = [c for c in ("video_path", "audio_path", "image_path", "start", "end") if c in manifest.columns]
    keys = manifest[cols].astype(object).where(manifest[cols].notna(), None)
    ids: dict[tuple, int] = {}
    return np.array([ids.setdefault(tuple(k), len(ids)) for k in keys.itertuples(index=False)], dtype=np.int64)


def _present(emb: dict[str, Any], modality: str, rows: int) -> np.ndarray:
    flag = {"text": "has_text", "audio": "has_audio", "image": "has_image"}.get(modality)
    if flag is None or flag not in emb:
        return np.ones(rows, dtype=bool)
    return np.asarray(emb[flag], dtype=bool)


def _first_per_group(rows: np.ndarray, groups: np.ndarray) -> np.ndarray:
    _, first = np.unique(groups[rows], return_index=True)
    return rows[np.sort(first)]


def zero_shot_retrieval(
    emb: dict[str, Any], groups: np.ndarray | None = None, directions: Sequence[str] | None = None
) -> dict[str, dict[str, Any]]:
    """Ranks and recall of every retrieval direction the embeddings allow (:data:`DIRECTIONS`).

    Queries and candidates: a text item is a row with ``has_text`` (each caption row counts, so duplicates of a
    video each query it); a video, audio or image item is the first row of each media group that has the
    modality (``has_audio`` / ``has_image``), so a video listed once per caption is one candidate. A candidate
    is correct when it is in the query's group. Queries without any correct candidate (a clip without text, as
    a video query for v2t) are left out. Similarity is the dot product of the L2-normalised embeddings.

    Args:
        emb: :func:`embed_manifest`'s result.
        groups: int ``[M]`` media group of each embedded row (:func:`media_groups` of the manifest rows
            ``emb["index"]``); ``None``: every row its own group.
        directions: the directions to compute (default every one of :data:`DIRECTIONS`); one the embeddings do
            not support is skipped.

    Returns:
        ``direction -> metrics``: :func:`retrieval_metrics`'s keys, plus ``space`` (``"vat"``, ...),
        ``query_rows`` / ``candidate_rows`` (int64, positions in ``emb``'s rows) and ``top1`` (int64 ``[Q]``,
        the row ranked first under the same pessimistic tie rule, so ``rank == 1`` exactly when ``top1`` is
        correct). Directions without queries or candidates are absent.
    """
    num = len(emb["index"])
    groups = np.arange(num, dtype=np.int64) if groups is None else np.asarray(groups, dtype=np.int64)
    if groups.shape != (num,):
        raise ValueError(f"groups: expected one group per embedded row ({num}), got shape {groups.shape}")
    everything = np.arange(num)
    out: dict[str, dict[str, Any]] = {}
    for name in directions or DIRECTIONS:
        if name not in DIRECTIONS:
            raise ValueError(f"unknown direction {name!r}; choose from {', '.join(DIRECTIONS)}")
        q_mod, c_mod, spaces = DIRECTIONS[name]
        space = next((s for s in spaces if f"{q_mod}_{s}" in emb and f"{c_mod}_{s}" in emb), None)
        if space is None:
            continue
        picked = []
        for mod in (q_mod, c_mod):
            rows = everything[_present(emb, mod, num)]
            picked.append(rows if mod == "text" else _first_per_group(rows, groups))
        q_rows, c_rows = picked
        gt = groups[q_rows][:, None] == groups[c_rows][None, :]
        keep = gt.any(axis=1)
        q_rows, gt = q_rows[keep], gt[keep]
        if len(q_rows) == 0 or len(c_rows) == 0:
            continue
        queries = torch.as_tensor(emb[f"{q_mod}_{space}"])[q_rows].double()
        candidates = torch.as_tensor(emb[f"{c_mod}_{space}"])[c_rows].double()
        sim = (queries @ candidates.T).numpy()
        metrics = retrieval_metrics(sim, gt)
        tied = sim == sim.max(axis=1, keepdims=True)
        wrong = tied & ~gt
        top = np.where(wrong.any(axis=1), wrong.argmax(axis=1), tied.argmax(axis=1))
        metrics.update(space=space, query_rows=q_rows, candidate_rows=c_rows, top1=c_rows[top])
        out[name] = metrics
    return out


def ranks_table(results: dict[str, dict[str, Any]], clip_ids: Sequence[str]) -> pd.DataFrame:
    """One row per query of every direction: ``direction``, ``space``, ``query`` (the clip id), ``rank``,
    ``num_candidates``, ``top1`` (the clip id ranked first) and ``top1_correct``; for a CSV export."""
    frames = []
    for name, m in results.items():
        ranks = np.asarray(m["ranks"])
        frames.append(
            pd.DataFrame(
                {
                    "direction": name,
                    "space": m["space"],
                    "query": [clip_ids[i] for i in m["query_rows"]],
                    "rank": ranks,
                    "num_candidates": m["num_candidates"],
                    "top1": [clip_ids[i] for i in m["top1"]],
                    "top1_correct": ranks == 1,
                }
            )
        )
    columns = ["direction", "space", "query", "rank", "num_candidates", "top1", "top1_correct"]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)


def format_results(results: dict[str, dict[str, Any]]) -> str:
    """The metrics as a plain-text table, one line per direction (R@k in percent, as papers print them)."""
    head = f"{'direction':<9} {'space':<5} {'queries':>7} {'cands':>6} {'R@1':>6} {'R@5':>6} {'R@10':>6} {'MedR':>7}"
    lines = [head]
    for name, m in results.items():
        lines.append(
            f"{name:<9} {m['space']:<5} {m['num_queries']:>7} {m['num_candidates']:>6} {100 * m['r1']:>6.1f} "
            f"{100 * m['r5']:>6.1f} {100 * m['r10']:>6.1f} {m['medr']:>7.1f}"
        )
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------
# Zero-shot retrieval on a manifest
# ---------------------------------------------------------------------------------------------------

#: Where i2t's images come from (:func:`evaluate_zero_shot`).
IMAGE_OPTIONS = ("auto", "files", "frames", "none")


def _attach(emb: dict[str, Any], other: dict[str, Any], prefix: str) -> None:
    """Copies ``other``'s ``<prefix>*`` embeddings into ``emb``'s rows (matched by ``index``; zero rows and
    ``has_<prefix>`` False where ``other`` has none)."""
    pos = {int(r): i for i, r in enumerate(emb["index"].tolist())}
    mine = [pos.get(int(r), -1) for r in other["index"].tolist()]
    hit = torch.tensor([m >= 0 for m in mine], dtype=torch.bool)
    target = torch.tensor([m for m in mine if m >= 0], dtype=torch.int64)
    for key, value in other.items():
        if key.startswith(f"{prefix}_") and isinstance(value, torch.Tensor) and value.dim() == 2:
            full = torch.zeros(len(pos), value.shape[1], dtype=value.dtype)
            full[target] = value[hit]
            emb[key] = full
    present = torch.zeros(len(pos), dtype=torch.bool)
    present[target] = True
    emb[f"has_{prefix}"] = present


def evaluate_zero_shot(
    model: MMV,
    manifest: pd.DataFrame | Any,
    *,
    vocab: Any = None,
    split: str | None = "test",
    num_windows: int = 4,
    num_captions: int = NARRATION_CAPTIONS,
    images: str = "auto",
    image_mode: str = "auto",
    max_clips: int | None = None,
    device: str | torch.device = "cpu",
    batch_size: int = 16,
    num_workers: int = 0,
    progress: bool = False,
) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """Zero-shot retrieval in every direction a model supports on a manifest's split.

    Every clip is embedded in eval mode with its embeddings averaged over ``num_windows`` linearly spaced
    windows (4 in VATT's account of MMV's protocol, spec section 7.3) and L2-normalised
    (:func:`embed_manifest`), then ranked by :func:`zero_shot_retrieval` with rows of the same media as one
    item (:func:`media_groups`). A clip's text is the bag of its ``num_captions`` captions nearest each window.

    Args:
        model: an :class:`mmv.models.mmv.MMV` on ``device``.
        manifest: a manifest path or a loaded table (paths resolved).
        vocab: the text :class:`~mmv.tokenizer.Vocabulary` (default ``model.vocab``); without one, no text direction.
        split: the manifest split (``None``: every row).
        num_windows: windows averaged per clip.
        num_captions: captions per window in a clip's text bag.
        images: i2t's images: ``'files'`` (the rows' ``image_path``), ``'frames'`` (the middle frame of every
            window of the video, averaged like the windows), ``'none'``, or ``'auto'``: files when any row has
            one, else frames when the model has ``encode_image``, else none.
        image_mode: :meth:`mmv.models.mmv.MMV.encode_image`'s mode.
        max_clips: only the first rows of the split (quick checks).
        device, batch_size, num_workers, progress: how to run.

    Returns:
        ``(results, emb)``: :func:`zero_shot_retrieval`'s dict and :func:`embed_manifest`'s (with
        ``groups`` added, and the ``image_*`` keys when images were embedded).
    """
    from mmv.data.dataset import ClipDataset
    from mmv.data.manifest import load_manifest
    from mmv.eval.datasets import FramesAsImages, ImageDataset

    if images not in IMAGE_OPTIONS:
        raise ValueError(f"images must be one of {IMAGE_OPTIONS}, got {images!r}")
    df = manifest if isinstance(manifest, pd.DataFrame) else load_manifest(manifest)
    if split is not None:
        if "split" not in df.columns or not (df["split"] == split).any():
            raise ValueError(f"evaluate_zero_shot: no clip in split {split!r}")
        df = df[df["split"] == split]
    df = (df.iloc[: int(max_clips)] if max_clips is not None else df).reset_index(drop=True)
    cfg = model.config
    mods = set(cfg.modalities)
    has_video = "video_path" in df.columns and df["video_path"].notna().any()
    if images == "auto":
        has_files = "image_path" in df.columns and df["image_path"].notna().any()
        can = "video" in mods
        images = "files" if has_files and can else ("frames" if has_video and can else "none")
    if not has_video and not (df["audio_path"].notna().any() if "audio_path" in df.columns else False):
        raise ValueError("evaluate_zero_shot: the clips have neither video nor audio files")
    clips = eval_clips(model, df, vocab=vocab, num_windows=num_windows, num_captions=num_captions, video=has_video)
    run = {"device": device, "batch_size": batch_size, "num_workers": num_workers, "progress": progress}
    emb = embed_manifest(model, clips, num_windows=num_windows, **run)
    if images != "none":
        if images == "files":
            source: Any = ImageDataset(df, cfg.video.frame_size)
        else:
            source = FramesAsImages(ClipDataset(df, video_cfg=cfg.video, mode="eval", num_windows=num_windows))
        keys = {"image_va", "image_vat"}
        _attach(emb, embed_manifest(model, source, outputs=keys, image_mode=image_mode, **run), "image")
    emb["groups"] = media_groups(df)[emb["index"].numpy()]
    return zero_shot_retrieval(emb, emb["groups"]), emb
