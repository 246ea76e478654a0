"""Zero-shot retrieval on a manifest: the one direction table, clip-level retrieval, and pluggable tasks.

:func:`evaluate_zero_shot` embeds a split's clips once (:func:`mmv.embed.embed_manifest`: eval mode, each
modality averaged over ``num_windows`` linearly spaced windows and L2-normalised, so a dot product is a cosine
similarity) and hands the embeddings to its *tasks*. A task names retrieval directions and says, for each, who
queries, who is a candidate and which candidates are correct; the ranking itself is
:func:`mmv.eval.ranking.rank_candidates` for every task (ties pessimistic). The default task is clip-level
retrieval (:func:`clip_retrieval`); a dataset-specific one (the toy world's attribute level,
:class:`mmv.toyworld.tasks.AttributeRetrieval`) is passed in by the code that knows the dataset, so this module
never imports a dataset.

**Directions** (:data:`DIRECTIONS`, the one table every task reads): ``t2v``, ``v2t`` and ``i2t`` in S_vat,
``v2a`` and ``a2v`` in the fine space S_va, ``a2t`` and ``t2a`` in the disjoint graph's S_at when the model has
it, else S_vat (FAC's eval path, or the shared space). A direction is computed when the embeddings have both
sides in one of its spaces.

**Clip level** (:func:`zero_shot_retrieval`): a text item is a row with ``has_text`` (each caption row counts); a
video, audio or image item is the first row of each *media group* that has the modality (:func:`media_groups`:
rows with the same media and window, e.g. an MSR-VTT video listed once per caption, are one item); a candidate
is correct when it is in the query's group. Queries without any correct candidate are left out.

Results are ``direction -> metrics`` dicts (:func:`mmv.eval.ranking.retrieval_metrics`' keys plus ``space``,
``query_rows``, ``candidate_rows``, ``top1``); :func:`flat_metrics` turns them into the ``<direction>_<metric>``
floats the training log, ``metrics.json`` and ``paper.json`` hold, :func:`ranks_table` into one row per query.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import pandas as pd
import torch

from mmv.embed import NARRATION_CAPTIONS, embed_manifest, eval_clips
from mmv.eval.ranking import rank_candidates

if TYPE_CHECKING:
    from mmv.models.mmv import MMV
    from mmv.tokenizer import Vocabulary

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
#: Where i2t's images come from (:func:`evaluate_zero_shot`).
IMAGE_OPTIONS = ("auto", "files", "frames", "none")
#: The metrics :func:`flat_metrics` keeps of each direction.
FLAT_METRICS = ("r1", "r5", "r10", "medr")


class RetrievalTask(Protocol):
    """One set of retrieval directions over a split's embeddings (:func:`evaluate_zero_shot`'s ``tasks``).

    Called with the model, :func:`~mmv.embed.embed_manifest`'s dict of the split (with ``groups``, and the
    ``image_*`` keys when images were embedded) and the vocabulary text was read with (``None``: no text).
    Returns ``direction -> metrics`` (names unique across tasks; the metrics as :func:`zero_shot_retrieval`'s).
    A task may add counts of what it built to ``emb["counts"]`` (``{name: int}``; :func:`flat_metrics`).
    """

    def __call__(self, model: MMV, emb: dict[str, Any], vocab: Vocabulary | None) -> dict[str, dict[str, Any]]: ...


def direction_space(name: str, keys: Collection[str]) -> str | None:
    """The first space of ``DIRECTIONS[name]`` in which ``keys`` has both sides (``<modality>_<space>``), or None."""
    query, candidate, spaces = DIRECTIONS[name]
    return next((s for s in spaces if f"{query}_{s}" in keys and f"{candidate}_{s}" in keys), None)


def has_modality(emb: dict[str, Any], modality: str) -> np.ndarray:
    """Bool ``[M]``: which embedded rows have ``modality`` (``has_text`` / ``has_audio`` / ``has_image``; video:
    every row)."""
    rows = len(emb["index"])
    flag = {"text": "has_text", "audio": "has_audio", "image": "has_image"}.get(modality)
    if flag is None or flag not in emb:
        return np.ones(rows, dtype=bool)
    return np.asarray(emb[flag], dtype=bool)


def media_groups(manifest: pd.DataFrame) -> np.ndarray:
    """Int64 ``[rows]``: rows with the same media (paths and window) share a group id, in order of appearance.

    MSR-VTT's full test set, for example, lists each video once per caption: those rows are one video, so a
    caption's correct candidates are every row of its video, and the video is one candidate, not twenty.
    """
    cols = [c for c in ("video_path", "audio_path", "image_path", "start", "end") if c in manifest.columns]
    keys = manifest[cols].astype(object).where(manifest[cols].notna(), None)
    ids: dict[tuple, int] = {}
    return np.array([ids.setdefault(tuple(k), len(ids)) for k in keys.itertuples(index=False)], dtype=np.int64)


def _items(emb: dict[str, Any], modality: str, groups: np.ndarray) -> np.ndarray:
    """Rows that are items of ``modality``: every text row, else the first row of each group with the modality."""
    rows = np.flatnonzero(has_modality(emb, modality))
    if modality == "text":
        return rows
    _, first = np.unique(groups[rows], return_index=True)
    return rows[np.sort(first)]


def zero_shot_retrieval(
    emb: dict[str, Any], groups: np.ndarray | None = None, directions: Sequence[str] | None = None
) -> dict[str, dict[str, Any]]:
    """Clip-level ranks and recall of every direction the embeddings allow (module docstring).

    Args:
        emb: :func:`~mmv.embed.embed_manifest`'s result (``M`` rows).
        groups: int ``[M]`` media group of each embedded row (:func:`media_groups` of the manifest rows
            ``emb["index"]``); ``None``: every row its own group.
        directions: the directions to compute (default every one of :data:`DIRECTIONS`); one the embeddings do
            not support is skipped.

    Returns:
        ``direction -> metrics``: :func:`~mmv.eval.ranking.retrieval_metrics`'s keys, plus ``space`` (``"vat"``,
        ...), ``query_rows`` / ``candidate_rows`` (int64, positions in ``emb``'s rows) and ``top1`` (int64
        ``[Q]``, the row ranked first under the same pessimistic tie rule, so ``rank == 1`` exactly when ``top1``
        is correct). Directions without queries or candidates are absent.
    """
    num = len(emb["index"])
    groups = np.arange(num, dtype=np.int64) if groups is None else np.asarray(groups, dtype=np.int64)
    if groups.shape != (num,):
        raise ValueError(f"groups: expected one group per embedded row ({num}), got shape {groups.shape}")
    out: dict[str, dict[str, Any]] = {}
    for name in directions or DIRECTIONS:
        if name not in DIRECTIONS:
            raise ValueError(f"unknown direction {name!r}; choose from {', '.join(DIRECTIONS)}")
        q_mod, c_mod, _ = DIRECTIONS[name]
        space = direction_space(name, emb)
        if space is None:
            continue
        q_rows, c_rows = _items(emb, q_mod, groups), _items(emb, c_mod, groups)
        gt = groups[q_rows][:, None] == groups[c_rows][None, :]
        keep = gt.any(axis=1)
        q_rows, gt = q_rows[keep], gt[keep]
        if len(q_rows) == 0 or len(c_rows) == 0:
            continue
        queries = torch.as_tensor(emb[f"{q_mod}_{space}"])[q_rows]
        metrics = rank_candidates(queries, torch.as_tensor(emb[f"{c_mod}_{space}"])[c_rows], gt)
        metrics.update(space=space, query_rows=q_rows, candidate_rows=c_rows, top1=c_rows[metrics["top1"]])
        out[name] = metrics
    return out


def clip_retrieval(model: MMV, emb: dict[str, Any], vocab: Vocabulary | None) -> dict[str, dict[str, Any]]:
    """The default :class:`RetrievalTask`: :func:`zero_shot_retrieval` over ``emb["groups"]``, every direction."""
    return zero_shot_retrieval(emb, emb.get("groups"))


def ranks_table(results: dict[str, dict[str, Any]], clip_ids: Sequence[str]) -> pd.DataFrame:
    """One row per query of every direction: ``direction``, ``space``, ``query`` (the clip id), ``rank``,
    ``num_candidates``, ``top1`` (the clip id ranked first, or the candidate's name when a task's candidates are
    not clips: ``candidate_names``) and ``top1_correct``; for a CSV export."""
    frames = []
    for name, m in results.items():
        ranks = np.asarray(m["ranks"])
        names = m.get("candidate_names", clip_ids)
        frames.append(
            pd.DataFrame(
                {
                    "direction": name,
                    "space": m["space"],
                    "query": [clip_ids[i] for i in m["query_rows"]],
                    "rank": ranks,
                    "num_candidates": m["num_candidates"],
                    "top1": [names[i] for i in m["top1"]],
                    "top1_correct": ranks == 1,
                }
            )
        )
    columns = ["direction", "space", "query", "rank", "num_candidates", "top1", "top1_correct"]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)


def format_results(results: dict[str, dict[str, Any]]) -> str:
    """The metrics as a plain-text table, one line per direction (R@k in percent, as papers print them), with a
    ``top1 <name>`` column (a fraction) for every ``top1_<name>`` a task reported."""
    extra = list(dict.fromkeys(k[5:] for m in results.values() for k in m if k.startswith("top1_")))
    head = f"{'direction':<9} {'space':<5} {'queries':>7} {'cands':>6} {'R@1':>6} {'R@5':>6} {'R@10':>6} {'MedR':>7}"
    lines = [head + "".join(f" {'top1 ' + a:>12}" for a in extra)]
    for name, m in results.items():
        tops = [f" {m[f'top1_{a}']:>12.3f}" if f"top1_{a}" in m else f" {'':>12}" for a in extra]
        lines.append(
            f"{name:<9} {m['space']:<5} {m['num_queries']:>7} {m['num_candidates']:>6} {100 * m['r1']:>6.1f} "
            f"{100 * m['r5']:>6.1f} {100 * m['r10']:>6.1f} {m['medr']:>7.1f}" + "".join(tops).rstrip()
        )
    return "\n".join(lines)


def flat_metrics(results: dict[str, dict[str, Any]], emb: dict[str, Any]) -> dict[str, float]:
    """The flat floats of an evaluation, as the training log (``eval/<key>``), ``metrics.json`` and ``paper.json``
    hold them: ``num_clips``, ``num_narrated`` (rows with text), the tasks' counts (``emb["counts"]``), then
    ``<direction>_<metric>`` for :data:`FLAT_METRICS` and ``<direction>_top1_<name>`` for every direction."""
    out = {"num_clips": float(len(emb["index"])), "num_narrated": float(np.asarray(emb["has_text"]).sum())}
    out.update({k: float(v) for k, v in emb.get("counts", {}).items()})
    for name, m in results.items():
        out.update({f"{name}_{k}": float(m[k]) for k in FLAT_METRICS})
        out.update({f"{name}_{k}": float(v) for k, v in m.items() if k.startswith("top1_")})
    return out


# ---------------------------------------------------------------------------------------------------
# evaluate_zero_shot
# ---------------------------------------------------------------------------------------------------


def _split_rows(manifest: pd.DataFrame | Any, split: str | None, max_clips: int | None) -> pd.DataFrame:
    from mmv.data.manifest import load_manifest

    df = manifest if isinstance(manifest, pd.DataFrame) else load_manifest(manifest)
    if split is not None:
        if "split" not in df.columns or not (df["split"] == split).any():
            raise ValueError(f"evaluate_zero_shot: no clip in split {split!r}")
        df = df[df["split"] == split]
    return (df.iloc[: int(max_clips)] if max_clips is not None else df).reset_index(drop=True)


def _any(df: pd.DataFrame, column: str) -> bool:
    return column in df.columns and bool(df[column].notna().any())


def _image_source(model: MMV, df: pd.DataFrame, images: str, num_windows: int) -> Any:
    """The dataset of i2t's images (``images`` already resolved), or None for ``'none'``."""
    from mmv.data.dataset import ClipDataset
    from mmv.eval.datasets import FramesAsImages, ImageDataset

    if images == "files":
        return ImageDataset(df, model.config.video.frame_size)
    if images == "frames":
        return FramesAsImages(ClipDataset(df, video_cfg=model.config.video, mode="eval", num_windows=num_windows))
    return None


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


def _run_tasks(
    tasks: Sequence[RetrievalTask], model: MMV, emb: dict[str, Any], vocab: Vocabulary | None
) -> dict[str, dict[str, Any]]:
    """Every task's directions, in order; a direction name reported twice is an error."""
    results: dict[str, dict[str, Any]] = {}
    for task in tasks:
        for name, metrics in task(model, emb, vocab).items():
            if name in results:
                raise ValueError(f"evaluate_zero_shot: two tasks report direction {name!r}")
            results[name] = metrics
    return results


def evaluate_zero_shot(
    model: MMV,
    manifest: pd.DataFrame | Any,
    *,
    vocab: Vocabulary | None = None,
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
    tasks: Sequence[RetrievalTask] = (clip_retrieval,),
) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """Zero-shot retrieval of a manifest's split: every clip embedded once, then every task's directions.

    Args:
        model: the model, on ``device``.
        manifest: a manifest path or a loaded table (paths resolved).
        vocab: the text :class:`~mmv.tokenizer.Vocabulary` (default ``model.vocab``); without one, no text.
        split: the manifest split (``None``: every row).
        num_windows: windows averaged per clip (4 in VATT's account of MMV's protocol, spec section 7.3).
        num_captions: captions per window in a clip's text bag (the ones nearest the window).
        images: i2t's images: ``'files'`` (the rows' ``image_path``), ``'frames'`` (the middle frame of every
            window of the video, averaged like the windows), ``'none'``, or ``'auto'``: files when any row has
            one, else frames when the model has a video network, else none.
        image_mode: :meth:`mmv.models.mmv.MMV.encode_image`'s mode.
        max_clips: only the first rows of the split (quick checks).
        device, batch_size, num_workers, progress: how to run.
        tasks: the :class:`RetrievalTask` s to run (default clip level only).

    Returns:
        ``(results, emb)``: every task's ``direction -> metrics`` in order, and
        :func:`~mmv.embed.embed_manifest`'s dict with ``groups`` (:func:`media_groups`), the ``image_*`` keys
        when images were embedded, and what the tasks added (``counts``).
    """
    if images not in IMAGE_OPTIONS:
        raise ValueError(f"images must be one of {IMAGE_OPTIONS}, got {images!r}")
    df = _split_rows(manifest, split, max_clips)
    has_video, can = _any(df, "video_path"), "video" in model.config.modalities
    if images == "auto":
        images = "files" if _any(df, "image_path") and can else ("frames" if has_video and can else "none")
    if not has_video and not _any(df, "audio_path"):
        raise ValueError("evaluate_zero_shot: the clips have neither video nor audio files")
    clips = eval_clips(model, df, vocab=vocab, num_windows=num_windows, num_captions=num_captions, video=has_video)
    run = {"device": device, "batch_size": batch_size, "num_workers": num_workers, "progress": progress}
    emb = embed_manifest(model, clips, num_windows=num_windows, **run)
    source = _image_source(model, df, images, num_windows)
    if source is not None:
        keys = {"image_va", "image_vat"}
        _attach(emb, embed_manifest(model, source, outputs=keys, image_mode=image_mode, **run), "image")
    emb["groups"] = media_groups(df)[emb["index"].numpy()]
    return _run_tasks(tasks, model, emb, clips.vocab), emb
