"""Building an embedding bank: every clip of a manifest embedded in every space and modality of a model.

:func:`build_bank` runs, in order (each step with a tqdm bar when ``options.progress``):

1. **Embed** with :func:`mmv.eval.embed_manifest`, the evaluation's own code: eval mode (FAC audio reaches
   S_vat through the video's va->vat head), each embedding averaged over ``num_windows`` linearly spaced windows
   and L2-normalised; text is the clip's *narration*: each of the ``NARRATION_CAPTIONS`` captions nearest each
   window normalised, averaged, normalised again (as the zero-shot evaluation does).
2. **Vectors** per (space, modality) as the model returns them (FAC: S_va video/audio, S_vat video/audio/text;
   shared: the same embedding under both names; disjoint: S_va video/audio, S_vt video/text under ``vat``). A
   clip lacking a modality simply has no vector there: no text vector without narration (AudioSet-style clips,
   20 % of the toy world, or captions of stop words only), no audio vector for a silent clip.
3. **Indexes** (:mod:`mmv.bank.index`): exact up to ``exact_max`` vectors, IVF above with measured recall@10.
4. **Maps** (:mod:`mmv.bank.project`): UMAP per space, fitted jointly on all its modalities, seeded.
5. **Media** (:mod:`mmv.bank.previews`): a thumbnail and a preview per clip; unreadable media are counted.
6. **Metadata** (parquet) and **provenance** (JSON): checkpoint hash, model config, manifest hash, every
   recorded option (:class:`mmv.bank.options.BankOptions`), library versions, counts, skips, time.

Steps 3-6 are :func:`mmv.bank.write.write_bank`. The bank is written into a temporary sibling directory and
renamed into place (:func:`mmv.fileio.atomic_dir`):
an existing bank at ``out_dir`` is replaced only when the new one is complete. Clips whose media cannot be read
are skipped and listed in the provenance, never fatal. Rebuilding with the same model, manifest and parameters
on the same machine gives identical files, apart from the provenance's ``created`` time and ``timings``.

**Descriptions.** A clip may also have a clean *description*, a sentence saying what it shows (the toy world's
``"a red circle moves to the right"``), which is not a modality: it is a ``meta`` column, and the distinct
sentences' S_vat text vectors are stored once for zero-shot labelling without the model. What a clip's
description is depends on the dataset, so the caller passes it as a :data:`Describe` hook
(``training.build_bank`` passes the toy world's); without one, no clip has a description.
"""

from __future__ import annotations

import hashlib
import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader

from mmv.bank.options import DEFAULT_OPTIONS, BankOptions
from mmv.bank.store import MODALITY_ORDER, Bank, sha256_file
from mmv.bank.write import Vectors, write_bank
from mmv.data import media
from mmv.data.collate import collate_clips
from mmv.data.dataset import ClipDataset
from mmv.data.manifest import label_columns, load_manifest
from mmv.data.sampling import select_captions
from mmv.embed import NARRATION_CAPTIONS, embed_manifest, embed_sentences, eval_clips

if TYPE_CHECKING:
    from mmv.models.mmv import MMV

#: A clip's manifest row (column -> value, ``label_*`` columns included) -> its clean description, or ``None``
#: (or ``""``) when it has none.
Describe = Callable[[Mapping[str, Any]], str | None]
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


@dataclass
class _Embedded:
    """Step 1's result: the selected clips that could be read, embedded.

    Attributes:
        dataset: the clips as read (its sampler gives each clip's windows; its skips say why a clip is missing).
        emb: :func:`embed_manifest`'s output: ``<modality>_<space>`` float ``[N, D]``, ``index`` int ``[N]`` (rows
            of the selection), ``num_windows`` int ``[N]`` (windows read), ``has_audio`` / ``has_text`` bool ``[N]``.
        clips: the ``N`` embedded clips' manifest rows, re-indexed from 0 (row ``i`` is the bank's row ``i``).
        has_audio: bool ``[N]``, the clip has an audio vector.
        has_text: bool ``[N]``, the clip has a text vector (without a vocabulary: the manifest has captions).
        use_text: the model's text was embedded (it has a vocabulary).
        skipped: the selected clips none of whose windows could be read (:func:`_skipped`).
        notes: what the provenance says about the build (text not embedded).
    """

    dataset: ClipDataset
    emb: dict[str, Any]
    clips: pd.DataFrame
    has_audio: np.ndarray
    has_text: np.ndarray
    use_text: bool
    skipped: list[dict[str, str]]
    notes: list[str]


def _embed(model: MMV, df: pd.DataFrame, options: BankOptions) -> _Embedded:
    """Step 1: every clip of ``df`` embedded by ``model`` (module docstring), over ``options.num_windows`` windows.

    Raises:
        ValueError: no clip of ``df`` could be read.
    """
    dataset = eval_clips(model, df, num_windows=options.num_windows, cache_dir=options.cache_dir)
    use_text = dataset.vocab is not None
    no_vocab = not use_text and "text" in set(model.config.modalities)
    loader = _ProgressLoader(
        dataset,
        batch_size=options.batch_size,
        shuffle=False,
        num_workers=options.num_workers,
        collate_fn=collate_clips,
        progress=options.progress,
    )
    try:
        emb = embed_manifest(model, loader, options.device, options.num_windows)
    except ValueError as e:
        raise ValueError(f"build_bank: no clip could be read ({dataset.num_skipped} skipped): {e}") from e
    rows = emb["index"].numpy()
    n = len(rows)
    clips = df.iloc[rows].reset_index(drop=True)
    has_audio = emb["has_audio"].numpy() if any(k.startswith("audio_") for k in emb) else np.zeros(n, bool)
    has_text = emb["has_text"].numpy() if use_text else np.array([len(c or []) > 0 for c in clips["captions"]])
    return _Embedded(
        dataset=dataset,
        emb=emb,
        clips=clips,
        has_audio=has_audio,
        has_text=has_text,
        use_text=use_text,
        skipped=_skipped(df, rows, dataset),
        notes=["the model has no vocabulary: text was not embedded"] if no_vocab else [],
    )


def _meta(e: _Embedded, describe: Describe | None, num_windows: int) -> pd.DataFrame:
    """The bank's ``meta`` table, one row per embedded clip (``write_bank`` adds ``thumbnail`` and ``preview``):
    the manifest's columns the app shows, the narration's captions, what has a vector, the description and every
    ``label_*`` column (``docs/formats.md``, "Embedding bank")."""
    sub = e.clips
    captions = [_clip_captions(e.dataset, r, num_windows) for _, r in sub.iterrows()]
    if describe is None:
        descriptions = [""] * len(sub)
    else:
        descriptions = [describe(r) or "" for r in sub.to_dict("records")]
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
            "has_audio": e.has_audio.astype(bool),
            "has_text": e.has_text.astype(bool),
            "description": descriptions,
            "num_windows": e.emb["num_windows"].numpy().astype(np.int64),
        }
    )
    for col in label_columns(sub):
        meta[col] = sub[col].to_numpy()
    return meta


def _descriptions(
    model: MMV, meta: pd.DataFrame, vectors: Vectors, use_text: bool
) -> tuple[list[str], np.ndarray] | None:
    """The distinct non-empty descriptions, sorted, and their S_vat text vectors float32 ``[U, D_vat]``; ``None``
    when there are none, or no S_vat text (no vocabulary, or a graph without ``vat``) to embed them in."""
    has_vat = any(space == "vat" for space, _ in vectors)
    sentences = sorted({d for d in meta["description"] if d}) if use_text and has_vat else []
    return (sentences, embed_sentences(model, sentences).numpy()) if sentences else None


def _load(manifest: str | os.PathLike | pd.DataFrame) -> tuple[pd.DataFrame, Path | None]:
    """The manifest table and its resolved path (``None`` for a table passed in)."""
    if isinstance(manifest, (str, os.PathLike)):
        path = Path(manifest).resolve()
        return load_manifest(path), path
    return manifest, None


def _checkpoint(checkpoint_path: str | os.PathLike | None) -> dict[str, Any] | None:
    """``{path, sha256}`` of the checkpoint's weights file (``sha256`` ``None`` when it is not a file), or ``None``."""
    if checkpoint_path is None:
        return None
    ckpt = Path(checkpoint_path).resolve()
    weights = ckpt / "model.safetensors" if ckpt.is_dir() else ckpt
    return {"path": str(ckpt), "sha256": sha256_file(weights) if weights.is_file() else None}


def _provenance(model: MMV, options: BankOptions, e: _Embedded, manifest: dict[str, Any]) -> dict[str, Any]:
    """The provenance entries only the builder knows (``write_bank`` adds its own and the common ones)."""
    partial = int((e.emb["num_windows"].numpy() < options.num_windows).sum())
    return {
        "checkpoint": _checkpoint(options.checkpoint_path),
        "model_state_sha256": state_sha256(model),
        "model_config": model.config.to_dict(),
        "manifest": manifest,
        "parameters": {**options.recorded("embed"), "narration_captions": NARRATION_CAPTIONS},
        "skipped": {"count": len(e.skipped), "clips": e.skipped, "partial": partial},
        "notes": e.notes,
    }


def build_bank(
    model: MMV,
    manifest: str | os.PathLike | pd.DataFrame,
    out_dir: str | os.PathLike,
    options: BankOptions = DEFAULT_OPTIONS,
    describe: Describe | None = None,
) -> Bank:
    """Embeds every clip of a manifest and writes the bank directory (module docstring: the steps).

    Args:
        model: the model, on ``options.device`` (its ``vocab`` is needed for text).
        manifest: a manifest file, or a table loaded by :func:`mmv.data.manifest.load_manifest` (then the
            provenance records no manifest path or hash).
        out_dir: the bank directory (replaced atomically when it exists).
        options: what to embed and write, and how (:class:`mmv.bank.options.BankOptions`).
        describe: a clip's manifest row -> its clean description (module docstring, "Descriptions"), or ``None``
            for none.

    Returns:
        The written bank, loaded.

    Raises:
        ValueError: an empty selection, unknown splits, or no readable clip at all.
    """
    t0 = time.perf_counter()
    df_all, manifest_path = _load(manifest)
    df = _select(df_all, options.splits)
    e = _embed(model, df, options)
    embed_seconds = time.perf_counter() - t0
    n = len(e.clips)
    vectors = _vectors(e.emb, {"video": np.ones(n, bool), "audio": e.has_audio, "text": e.has_text})
    meta = _meta(e, describe, options.num_windows)
    record = {
        "path": str(manifest_path) if manifest_path else None,
        "sha256": sha256_file(manifest_path) if manifest_path else None,
        "root": df_all.attrs.get("root"),
        "rows": len(df_all),
        "selected": len(df),
    }
    provenance = {"timings": {"embed": embed_seconds}, **_provenance(model, options, e, record)}
    descriptions = _descriptions(model, meta, vectors, e.use_text)
    return write_bank(out_dir, meta, vectors, options, descriptions=descriptions, provenance=provenance)
