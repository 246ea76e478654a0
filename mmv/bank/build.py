"""Building an embedding bank: every clip of a manifest embedded in every space and modality of a model.

:func:`build_bank` runs, in order (each step with a tqdm bar when ``progress``):

1. **Embed** with :func:`mmv.eval.embed_manifest`, the evaluation's own code: eval mode (FAC audio reaches
   S_vat through the video's va->vat head), each embedding averaged over ``num_windows`` linearly spaced windows
   and L2-normalised; text is the clip's *narration*: each of the ``NARRATION_CAPTIONS`` captions nearest each
   window normalised, averaged, normalised again (as ``training.evaluation`` does).
2. **Vectors** per (space, modality) as the model returns them (FAC: S_va video/audio, S_vat video/audio/text;
   shared: the same embedding under both names; disjoint: S_va video/audio, S_vt video/text under ``vat``). A
   clip lacking a modality simply has no vector there: no text vector without narration (AudioSet-style clips,
   20 % of the toy world, or captions of stop words only), no audio vector for a silent clip.
3. **Indexes** (:mod:`mmv.bank.index`): exact up to ``exact_max`` vectors, IVF above with measured recall@10.
4. **Maps** (:mod:`mmv.bank.project`): UMAP per space, fitted jointly on all its modalities, seeded.
5. **Media** (:mod:`mmv.bank.media`): a thumbnail and a preview per clip; unreadable media are counted.
6. **Metadata** (parquet) and **provenance** (JSON): checkpoint hash, model config, manifest hash, every
   parameter, library versions, counts, skips, time.

Steps 3-6 are :func:`mmv.bank.write.write_bank`. The bank is written into a temporary sibling directory and
renamed into place (:func:`mmv.fileio.atomic_dir`):
an existing bank at ``out_dir`` is replaced only when the new one is complete. Clips whose media cannot be read
are skipped and listed in the provenance, never fatal. Rebuilding with the same model, manifest and parameters
on the same machine gives identical files, apart from the provenance's ``created`` time and ``timings``.
"""

from __future__ import annotations

import hashlib
import math
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader

from mmv.bank import media as bank_media
from mmv.bank.index import DEFAULT_EXACT_MAX, DEFAULT_TARGET_RECALL
from mmv.bank.project import DEFAULT_MAX_FIT_POINTS
from mmv.bank.project import umap_params as resolve_umap_params
from mmv.bank.store import MODALITY_ORDER, Bank, sha256_file
from mmv.bank.write import Vectors, write_bank
from mmv.data import media
from mmv.data.collate import collate_clips
from mmv.data.dataset import ClipDataset
from mmv.data.manifest import LABEL_PREFIX, label_columns, load_manifest
from mmv.data.sampling import select_captions
from mmv.embed import embed_sentences
from mmv.eval.retrieval import NARRATION_CAPTIONS, embed_manifest, eval_clips

if TYPE_CHECKING:
    from mmv.models.mmv import MMV

#: Attributes that make a toy-world clip's clean description.
DESCRIPTION_ATTRIBUTES = ("shape", "colour", "motion")
#: What joins a clip's captions into its ``narration``.
NARRATION_SEPARATOR = " / "


class _ProgressLoader(DataLoader):
    """A DataLoader whose iteration drives a tqdm bar over the dataset's items (skipped ones included)."""

    def __init__(self, *args: Any, progress: bool = True, desc: str = "embed", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._progress, self._desc = progress, desc

    def __iter__(self):  # type: ignore[override]
        from tqdm import tqdm

        bar = tqdm(total=len(self.dataset), desc=self._desc, unit="window", disable=not self._progress)
        try:
            for batch in super().__iter__():
                bar.update(len(batch.get("clip_id", [])) + int(batch.get("num_skipped", 0)))
                yield batch
        finally:
            bar.close()


def state_sha256(model: MMV) -> str:
    """A hash of the model's weights and buffers (names, dtypes, shapes, bytes), whatever file they came from."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        t = t.detach().to("cpu").contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def _description(labels: dict[str, Any]) -> str:
    from mmv.toyworld.tasks import clean_description

    values = [labels.get(f"{LABEL_PREFIX}{a}") for a in DESCRIPTION_ATTRIBUTES]
    if any(v is None or not isinstance(v, str) for v in values):
        return ""
    try:
        return clean_description(shape=values[0], colour=values[1], motion=values[2])
    except ValueError:
        return ""


def _clip_captions(dataset: ClipDataset, row: pd.Series, num_windows: int) -> list[str]:
    """The captions a clip's narration vector averages: those nearest each of its windows, in first-use order."""
    captions = row["captions"] if isinstance(row["captions"], list) else []
    if not captions:
        return []
    start = float(row["start"] or 0.0)
    end = row["end"]
    if end is None or (isinstance(end, float) and math.isnan(end)):
        path = row["video_path"] or row["audio_path"]
        info = media.video_info(path) if row["video_path"] else media.audio_info(path)
        end = info.duration
    texts: list[str] = []
    for k in range(num_windows):
        window = dataset.sampler.sample(start, float(end), None, k)
        texts += [t for t in select_captions(captions, window, NARRATION_CAPTIONS) if t not in texts]
    return texts


def _select(df: pd.DataFrame, splits: list[str] | tuple[str, ...] | None) -> pd.DataFrame:
    """The rows of ``splits`` (all when ``None``), re-indexed from 0."""
    if splits:
        unknown = sorted(set(splits) - set(df["split"].unique()))
        if unknown:
            have = sorted(set(df["split"]))
            raise ValueError(f"build_bank: no clip in split(s) {unknown} (the manifest has {have})")
        df = df[df["split"].isin(list(splits))]
    if len(df) == 0:
        raise ValueError("build_bank: the manifest selection is empty")
    return df.reset_index(drop=True)


def _vectors(emb: dict[str, Any], present: dict[str, np.ndarray]) -> Vectors:
    """``{(space, modality): (vectors, rows)}`` from :func:`embed_manifest`'s ``<modality>_<space>`` keys, keeping
    the clips that have the modality (``present[modality]``, bool ``[M]``) and a non-zero embedding."""
    vectors: Vectors = {}
    for key, value in emb.items():
        mod, _, space = key.partition("_")
        if mod not in MODALITY_ORDER or not space or not isinstance(value, torch.Tensor) or value.dim() != 2:
            continue
        x = value.numpy().astype(np.float32)
        keep = present[mod] & (np.linalg.norm(x, axis=1) > 0.5)
        if keep.any():
            vectors[(space, mod)] = (np.ascontiguousarray(x[keep]), np.flatnonzero(keep).astype(np.int64))
    return vectors


def _skipped(df: pd.DataFrame, embedded: np.ndarray, dataset: ClipDataset) -> list[dict[str, str]]:
    """Clips left out because none of their windows could be read, with the first reason recorded."""
    reasons: dict[str, dict[str, Any]] = {}
    for r in dataset.skips.records():
        reasons.setdefault(str(r["clip_id"]), r)
    out = []
    for i in sorted(set(range(len(df))) - set(embedded.tolist())):
        clip_id = str(df["clip_id"].iloc[i])
        why = reasons.get(clip_id, {})
        out.append({"clip_id": clip_id, "path": str(why.get("path", "")), "reason": str(why.get("reason", ""))})
    return out


def build_bank(
    model: MMV,
    manifest_path_or_df: str | os.PathLike | pd.DataFrame,
    out_dir: str | os.PathLike,
    *,
    splits: list[str] | tuple[str, ...] | None = None,
    num_windows: int = 1,
    batch_size: int = 32,
    seed: int = 0,
    umap_params: dict[str, Any] | None = None,
    thumbnails: bool = True,
    previews: bool = True,
    progress: bool = True,
    checkpoint_path: str | os.PathLike | None = None,
    device: str | torch.device = "cpu",
    num_workers: int = 0,
    exact_max: int = DEFAULT_EXACT_MAX,
    target_recall: float = DEFAULT_TARGET_RECALL,
    max_fit_points: int = DEFAULT_MAX_FIT_POINTS,
    thumb_size: int = bank_media.THUMB_SIZE,
    preview_seconds: float = bank_media.PREVIEW_SECONDS,
    media_workers: int = 2,
    cache_dir: str | os.PathLike | None = None,
) -> Bank:
    """Embeds every clip of a manifest and writes the bank directory (module docstring: the steps).

    Args:
        model: an :class:`mmv.models.mmv.MMV` on ``device`` (its ``vocab`` is needed for text).
        manifest_path_or_df: a manifest file, or a table loaded by :func:`mmv.data.manifest.load_manifest`.
        out_dir: the bank directory (replaced atomically when it exists).
        splits: keep only clips of these splits (``None``: all).
        num_windows: windows averaged per clip.
        batch_size: windows per forward pass.
        seed: UMAP's random state, the IVF sample and the recall queries.
        umap_params: overrides of :data:`mmv.bank.project.DEFAULT_UMAP_PARAMS`.
        thumbnails: write a JPEG per clip.
        previews: write (or link) a short MP4 per clip.
        progress: show tqdm bars.
        checkpoint_path: the checkpoint the model was loaded from (hashed into the provenance).
        device: where the model runs.
        num_workers: DataLoader workers for embedding.
        exact_max: largest (space, modality) searched exactly; above it an IVF index.
        target_recall: recall@10 an IVF index must reach when its nprobe is chosen.
        max_fit_points: largest number of vectors UMAP fits per space (the rest are placed).
        thumb_size: thumbnail's longer side, pixels.
        preview_seconds: longest preview.
        media_workers: threads writing thumbnails and previews.
        cache_dir: FLAC cache for container audio (default ``$MMV_CACHE_DIR/audio`` or ``~/.cache/mmv/audio``).

    Returns:
        The written bank, loaded.

    Raises:
        ValueError: an empty selection, unknown splits, bad parameters, or no readable clip at all.
    """
    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    if num_windows < 1 or batch_size < 1 or exact_max < 1:
        raise ValueError("build_bank: num_windows, batch_size and exact_max must be >= 1")
    resolve_umap_params(umap_params)  # fail on a bad parameter before the long embedding
    manifest_path = None
    if isinstance(manifest_path_or_df, (str, os.PathLike)):
        manifest_path = Path(manifest_path_or_df).resolve()
        df_all = load_manifest(manifest_path)
    else:
        df_all = manifest_path_or_df
    df = _select(df_all, splits)

    # 1. Embed.
    cfg = model.config
    mods = set(cfg.modalities)
    dataset = eval_clips(model, df, num_windows=num_windows, cache_dir=cache_dir)
    use_text = dataset.vocab is not None
    notes = [] if use_text or "text" not in mods else ["the model has no vocabulary: text was not embedded"]
    loader = _ProgressLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        collate_fn=collate_clips,
        progress=progress,
    )
    try:
        emb = embed_manifest(model, loader, device, num_windows)
    except ValueError as e:
        raise ValueError(f"build_bank: no clip could be read ({dataset.num_skipped} skipped): {e}") from e
    timings["embed"] = time.perf_counter() - t0
    rows = emb["index"].numpy()
    n = len(rows)
    sub = df.iloc[rows].reset_index(drop=True)

    # 2. Vectors per (space, modality); a clip lacking a modality has no vector there.
    has_audio = emb["has_audio"].numpy() if any(k.startswith("audio_") for k in emb) else np.zeros(n, bool)
    has_text = emb["has_text"].numpy() if use_text else np.array([len(c or []) > 0 for c in sub["captions"]])
    vectors = _vectors(emb, {"video": np.ones(n, bool), "audio": has_audio, "text": has_text})

    # Metadata (write_bank adds the thumbnail and preview columns).
    labels = label_columns(sub)
    records = sub[labels].to_dict("records") if labels else [{} for _ in range(n)]
    captions = [_clip_captions(dataset, r, num_windows) for _, r in sub.iterrows()]
    meta = pd.DataFrame(
        {
            "clip_id": sub["clip_id"].astype(str).to_numpy(),
            "split": sub["split"].astype(str).to_numpy(),
            "dataset": sub["dataset"].astype(str).to_numpy(),
            "video_path": sub["video_path"].to_numpy(object),
            "audio_path": sub["audio_path"].to_numpy(object),
            "start": sub["start"].astype(float).to_numpy(),
            "end": sub["end"].astype(float).to_numpy(),
            "captions": captions,
            "narration": [NARRATION_SEPARATOR.join(c) for c in captions],
            "has_audio": has_audio.astype(bool),
            "has_text": has_text.astype(bool),
            "description": [_description(r) for r in records],
            "num_windows": emb["num_windows"].numpy().astype(np.int64),
        }
    )
    for col in labels:
        meta[col] = sub[col].to_numpy()
    has_vat = any(space == "vat" for space, _ in vectors)
    descriptions = sorted({d for d in meta["description"] if d}) if use_text and has_vat else []
    skipped = _skipped(df, rows, dataset)

    checkpoint = None
    if checkpoint_path is not None:
        ckpt = Path(checkpoint_path).resolve()
        weights = ckpt / "model.safetensors" if ckpt.is_dir() else ckpt
        checkpoint = {"path": str(ckpt), "sha256": sha256_file(weights) if weights.is_file() else None}
    provenance = {
        "timings": timings,
        "checkpoint": checkpoint,
        "model_state_sha256": state_sha256(model),
        "model_config": cfg.to_dict(),
        "manifest": {
            "path": str(manifest_path) if manifest_path else None,
            "sha256": sha256_file(manifest_path) if manifest_path else None,
            "root": df_all.attrs.get("root"),
            "rows": len(df_all),
            "selected": len(df),
        },
        "parameters": {
            "splits": list(splits) if splits else None,
            "num_windows": num_windows,
            "batch_size": batch_size,
            "narration_captions": NARRATION_CAPTIONS,
            "device": str(device),
        },
        "skipped": {
            "count": len(skipped),
            "clips": skipped,
            "partial": int((emb["num_windows"].numpy() < num_windows).sum()),
        },
        "notes": notes,
    }
    return write_bank(
        out_dir,
        meta,
        vectors,
        seed=seed,
        umap_params=umap_params,
        exact_max=exact_max,
        target_recall=target_recall,
        max_fit_points=max_fit_points,
        thumbnails=thumbnails,
        previews=previews,
        thumb_size=thumb_size,
        preview_seconds=preview_seconds,
        media_workers=media_workers,
        cache_dir=cache_dir,
        descriptions=(descriptions, embed_sentences(model, descriptions).numpy()) if descriptions else None,
        provenance=provenance,
        progress=progress,
    )
