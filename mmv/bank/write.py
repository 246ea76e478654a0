"""Writing a bank directory from vectors and metadata: indexes, maps, media, parquet and provenance.

:func:`write_bank` is the second half of :func:`mmv.bank.build_bank` (which embeds a manifest with a model and
then calls it) and is usable on its own, e.g. for synthetic banks in tests and benchmarks. It writes, in order:
the vectors and their row ids, the faiss indexes (:mod:`mmv.bank.index`: exact up to ``exact_max`` vectors, IVF
with measured recall above), the UMAP maps (:mod:`mmv.bank.project`), the thumbnails and previews
(:mod:`mmv.bank.previews`; a clip whose media cannot be read gets none and is listed), ``meta.parquet`` and
``provenance.json`` (with the options these files depend on: :meth:`mmv.bank.options.BankOptions.recorded`).
Everything goes into a temporary sibling directory renamed into place at the end (:func:`mmv.fileio.atomic_dir`),
so an existing bank is replaced only by a complete one.
"""

from __future__ import annotations

import json
import os
import platform
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mmv.bank import previews
from mmv.bank.index import build_ivf
from mmv.bank.options import NO_MEDIA, BankOptions
from mmv.bank.project import fit_maps
from mmv.bank.project import umap_params as resolve_umap_params
from mmv.bank.store import (
    DESCRIPTIONS_FILE,
    FORMAT,
    FORMAT_VERSION,
    META_FILE,
    MODALITY_ORDER,
    PROVENANCE_FILE,
    Bank,
    coords_file,
    index_file,
    rows_file,
    vectors_file,
)
from mmv.data import media
from mmv.fileio import atomic_dir

#: ``(space, modality) -> (vectors float32 [N_m, D] L2-normalised, meta rows int64 [N_m])``.
Vectors = dict[tuple[str, str], tuple[np.ndarray, np.ndarray]]
#: Columns :func:`write_bank` fills when the metadata lacks them (the ``Bank.meta`` contract).
META_DEFAULTS: dict[str, Any] = {
    "split": "",
    "video_path": None,
    "audio_path": None,
    "start": 0.0,
    "end": float("nan"),
    "narration": "",
    "has_audio": False,
    "has_text": False,
    "description": "",
}


def library_versions() -> dict[str, str]:
    """Versions of Python and of every library a bank's contents depend on."""
    from importlib.metadata import PackageNotFoundError, version

    import faiss
    import torch

    from mmv import __version__

    out = {"mmv": __version__, "python": platform.python_version(), "torch": torch.__version__}
    out |= {"numpy": np.__version__, "pandas": pd.__version__, "faiss": faiss.__version__}
    for dist in ("umap-learn", "pyarrow", "av", "opencv-python-headless", "numba", "pynndescent"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            out[dist] = "not installed"
    return out


def _save(directory: Path, name: str, array: np.ndarray) -> None:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, array, allow_pickle=False)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


#: A clip's media: ``(thumbnail path, preview path, how the preview was made or None, [{clip_id, kind, reason}])``.
ClipMedia = tuple[str, str, str | None, list[dict[str, str]]]


def _clip_media(r: dict[str, Any], i: int, directory: Path, options: BankOptions) -> ClipMedia:
    """Writes meta row ``i``'s (``r``) thumbnail and preview (those ``options`` asks for) under ``directory``;
    media that cannot be read or written are reported, not raised."""
    if not isinstance(r["video_path"], str) or not r["video_path"]:
        return "", "", None, []  # audio-only clips: the app plays their audio file
    audio = r["audio_path"] if isinstance(r["audio_path"], str) and r["audio_path"] else None
    errors: list[dict[str, str]] = []
    thumb = prev = ""
    how = None
    try:
        region = previews.clip_region(r["video_path"], float(r["start"] or 0.0), r["end"])
    except (media.MediaError, ValueError) as err:
        return "", "", None, [{"clip_id": str(r["clip_id"]), "kind": "media", "reason": str(err)}]
    if options.thumbnails:
        try:
            previews.write_thumbnail(r["video_path"], region, directory / f"thumbs/{i:06d}.jpg", options.thumb_size)
            thumb = f"thumbs/{i:06d}.jpg"
        except (media.MediaError, ValueError) as err:
            errors.append({"clip_id": str(r["clip_id"]), "kind": "thumbnail", "reason": str(err)})
    if options.previews:
        out = directory / f"previews/{i:06d}.mp4"
        try:
            how = previews.write_preview(
                r["video_path"], audio, region, out, options.preview_seconds, options.cache_dir
            )
            prev = f"previews/{i:06d}.mp4"
        except (media.MediaError, ValueError) as err:
            errors.append({"clip_id": str(r["clip_id"]), "kind": "preview", "reason": str(err)})
    return thumb, prev, how, errors


def write_media(
    meta: pd.DataFrame, directory: Path, options: BankOptions = NO_MEDIA
) -> tuple[list[str], list[str], dict[str, Any]]:
    """Writes ``thumbs/<row>.jpg`` and ``previews/<row>.mp4`` under ``directory`` for every clip with a video, as
    ``options`` asks (``thumbnails``, ``previews``, their sizes, ``media_workers`` threads, ``progress``).

    Returns:
        Each row's thumbnail and preview path relative to ``directory`` (``""`` when none), and the counts:
        ``thumbnails``, ``previews`` (``{"linked" | "copied" | "encoded": n}``), ``skipped`` (``[{clip_id, kind,
        reason}]`` for media that could not be read or written).
    """
    from tqdm import tqdm

    n = len(meta)
    thumbs, prevs = [""] * n, [""] * n
    made: dict[str, int] = {}
    skipped: list[dict[str, str]] = []
    if not (options.thumbnails or options.previews) or n == 0:
        return thumbs, prevs, {"thumbnails": 0, "previews": made, "skipped": skipped}
    (directory / "thumbs").mkdir(exist_ok=True)
    (directory / "previews").mkdir(exist_ok=True)
    rows = meta[["clip_id", "video_path", "audio_path", "start", "end"]].to_dict("records")

    def one(i: int) -> ClipMedia:
        return _clip_media(rows[i], i, directory, options)

    with ThreadPoolExecutor(max_workers=max(1, options.media_workers)) as pool:  # decoders, encoders release the GIL
        results = tqdm(pool.map(one, range(n)), total=n, desc="media", unit="clip", disable=not options.progress)
        for i, (thumb, prev, how, errors) in enumerate(results):
            thumbs[i], prevs[i] = thumb, prev
            if how:
                made[how] = made.get(how, 0) + 1
            skipped += errors
    return thumbs, prevs, {"thumbnails": sum(bool(t) for t in thumbs), "previews": made, "skipped": skipped}


def _complete_meta(meta: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``meta`` re-indexed from 0, with the contract columns it lacks (:data:`META_DEFAULTS`, empty
    ``captions`` lists).

    Raises:
        ValueError: no ``clip_id`` column, or a repeated clip id.
    """
    meta = meta.reset_index(drop=True).copy()
    if "clip_id" not in meta.columns or meta["clip_id"].duplicated().any():
        raise ValueError("write_bank: meta needs a unique 'clip_id' column")
    for col, default in META_DEFAULTS.items():
        if col not in meta.columns:
            meta[col] = [default] * len(meta)
    if "captions" not in meta.columns:
        meta["captions"] = [[] for _ in range(len(meta))]
    return meta


def _check_vectors(vectors: Vectors, num_clips: int) -> dict[str, int]:
    """Each space's width ``D``, after checking ``vectors`` against ``num_clips`` meta rows.

    Raises:
        ValueError: an unknown modality, vectors not float32 ``[N, D]`` with ``[N]`` rows, rows repeated or out of
            ``[0, num_clips)``, or two widths in one space.
    """
    dims: dict[str, int] = {}
    for (space, mod), (x, r) in vectors.items():
        if mod not in MODALITY_ORDER:
            raise ValueError(f"write_bank: unknown modality {mod!r} (known: {MODALITY_ORDER})")
        if x.ndim != 2 or x.dtype != np.float32 or r.shape != (len(x),):
            raise ValueError(f"write_bank: {space}/{mod}: need float32 [N, D] vectors and [N] rows")
        if len(r) and (r.min() < 0 or r.max() >= num_clips or len(np.unique(r)) != len(r)):
            raise ValueError(f"write_bank: {space}/{mod}: rows must be distinct meta rows in [0, {num_clips})")
        if dims.setdefault(space, x.shape[1]) != x.shape[1]:
            raise ValueError(f"write_bank: space {space!r} mixes widths {dims[space]} and {x.shape[1]}")
    return dims


def _spaces(vectors: Vectors) -> dict[str, list[str]]:
    """``{space: [modality, ...]}`` of the non-empty arrays: ``va`` and ``vat`` first, then by name; modalities in
    :data:`MODALITY_ORDER`."""
    names = sorted({s for s, m in vectors if len(vectors[(s, m)][0])}, key=lambda s: (s not in ("va", "vat"), s))
    return {s: [m for m in MODALITY_ORDER if (s, m) in vectors and len(vectors[(s, m)][0])] for s in names}


def _layout(vectors: Vectors, spaces: dict[str, list[str]], dims: dict[str, int], num_clips: int) -> dict[str, Any]:
    """The provenance's ``spaces``, ``dims`` (``{space: D}``) and ``counts`` (clips, vectors per
    ``"<space>/<modality>"``)."""
    return {
        "spaces": spaces,
        "dims": {s: dims[s] for s in spaces},
        "counts": {
            "clips": num_clips,
            "vectors": {f"{s}/{m}": len(vectors[(s, m)][0]) for s in spaces for m in spaces[s]},
        },
    }


def _write_indexes(
    tmp: Path, vectors: Vectors, spaces: dict[str, list[str]], options: BankOptions
) -> dict[str, dict[str, Any]]:
    """Saves each (space, modality)'s vectors and rows, and its IVF index above ``options.exact_max`` vectors.

    Returns:
        ``{"<space>/<modality>": info}``: ``type``, ``count``, ``dim``, ``exact``, and the IVF's measured
        ``nlist``, ``nprobe``, ``recall_at_10``... (:func:`mmv.bank.index.build_ivf`).
    """
    indexes: dict[str, dict[str, Any]] = {}
    for space, mods in spaces.items():
        for mod in mods:
            x, r = vectors[(space, mod)]
            _save(tmp, vectors_file(space, mod), np.ascontiguousarray(x))
            _save(tmp, rows_file(space, mod), r.astype(np.int64))
            info: dict[str, Any] = {"type": "IndexFlatIP", "count": len(x), "dim": int(x.shape[1]), "exact": True}
            if len(x) > options.exact_max:
                import faiss

                index, ivf = build_ivf(x, seed=options.seed, target_recall=options.target_recall)
                (tmp / "index").mkdir(exist_ok=True)
                faiss.write_index(index, str(tmp / index_file(space, mod)))
                info |= ivf | {"exact": False}
            indexes[f"{space}/{mod}"] = info
    return indexes


def _write_maps(tmp: Path, vectors: Vectors, spaces: dict[str, list[str]], options: BankOptions) -> dict[str, Any]:
    """Fits each space's 2-D map jointly on all its modalities and writes ``coords/<space>.parquet``.

    Returns:
        ``{space: map info}`` (:func:`mmv.bank.project.fit_maps`: method, params, seed, fit and placed points).
    """
    maps: dict[str, Any] = {}
    (tmp / "coords").mkdir(exist_ok=True)
    stacks = {space: np.concatenate([vectors[(space, m)][0] for m in mods]) for space, mods in spaces.items()}
    params = resolve_umap_params(options.umap_params)
    fitted = fit_maps(stacks, seed=options.seed, params=params, max_fit_points=options.max_fit_points)  # a thread/space
    for space, mods in spaces.items():
        xy, maps[space] = fitted[space]
        coords = pd.DataFrame(
            {
                "row": np.concatenate([vectors[(space, m)][1] for m in mods]).astype(np.int64),
                "modality": np.concatenate([[m] * len(vectors[(space, m)][1]) for m in mods]),
                "x": xy[:, 0],
                "y": xy[:, 1],
            }
        )
        coords.to_parquet(tmp / coords_file(space), index=False)
    return maps


def _provenance(
    extra: dict[str, Any] | None,
    options: BankOptions,
    timings: dict[str, float],
    written: dict[str, Any],
    descriptions: tuple[list[str], np.ndarray] | None,
    media_counts: dict[str, Any],
) -> dict[str, Any]:
    """``provenance.json``'s content (``docs/formats.md``): the builder's entries (``extra``: checkpoint,
    model_config, manifest, its parameters, skipped, notes, any other key kept as is) merged with this writer's
    (``written``: spaces, dims, counts, indexes, maps) and ``options``' recorded ``"write"`` fields.
    ``build_seconds`` is left for the caller to fill in last."""
    extra = dict(extra or {})
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "build_seconds": None,
        "timings": {**extra.pop("timings", {}), **timings},
        "checkpoint": extra.pop("checkpoint", None),
        "model_config": extra.pop("model_config", {}),
        "manifest": extra.pop("manifest", {}),
        "parameters": {**extra.pop("parameters", {}), **options.recorded("write")},
        "versions": library_versions(),
        **written,
        "descriptions": list(descriptions[0]) if descriptions is not None else [],
        "skipped": extra.pop("skipped", {"count": 0, "clips": [], "partial": 0}),
        "media": media_counts,
        "notes": extra.pop("notes", []),
        **extra,
    }


def write_bank(
    out_dir: str | os.PathLike,
    meta: pd.DataFrame,
    vectors: Vectors,
    options: BankOptions = NO_MEDIA,
    *,
    descriptions: tuple[list[str], np.ndarray] | None = None,
    provenance: dict[str, Any] | None = None,
) -> Bank:
    """Writes a bank directory (module docstring) and returns it loaded.

    Args:
        out_dir: the bank directory (replaced atomically when it exists).
        meta: one row per clip (row ``i`` = id ``i``); needs ``clip_id``; missing contract columns get
            :data:`META_DEFAULTS`, missing ``captions`` empty lists; ``thumbnail`` and ``preview`` are written here.
        vectors: ``{(space, modality): (vectors [N_m, D], rows [N_m])}``, L2-normalised float32; modalities
            among ``video``, ``audio``, ``text``; every modality of a space has the same ``D``.
        options: the writing options (:class:`mmv.bank.options.BankOptions`: seed, UMAP, indexes, media, workers,
            progress); the embedding ones are not read. The default, :data:`mmv.bank.options.NO_MEDIA`, writes
            no thumbnails or previews.
        descriptions: distinct sentences and their S_vat vectors ``[U, D]`` (see :func:`mmv.bank.build_bank`), or
            ``None``.
        provenance: the builder's provenance entries (timings, checkpoint, model_config, manifest, parameters,
            skipped, notes...), merged into this writer's.

    Raises:
        ValueError: a malformed vectors dict (shapes, rows out of range, unknown modality, mixed widths).
    """
    t0 = time.perf_counter()
    meta = _complete_meta(meta)
    dims = _check_vectors(vectors, len(meta))
    spaces = _spaces(vectors)
    timings: dict[str, float] = {}
    with atomic_dir(Path(out_dir)) as tmp:
        t = time.perf_counter()
        indexes = _write_indexes(tmp, vectors, spaces, options)
        if descriptions is not None and len(descriptions[0]):
            _save(tmp, DESCRIPTIONS_FILE, np.ascontiguousarray(descriptions[1], dtype=np.float32))
        timings["index"] = time.perf_counter() - t
        t = time.perf_counter()
        maps = _write_maps(tmp, vectors, spaces, options)
        timings["maps"] = time.perf_counter() - t
        t = time.perf_counter()
        meta["thumbnail"], meta["preview"], media_counts = write_media(meta, tmp, options)
        timings["media"] = time.perf_counter() - t
        meta.to_parquet(tmp / META_FILE, index=False)
        written = {**_layout(vectors, spaces, dims, len(meta)), "indexes": indexes, "maps": maps}
        prov = _provenance(provenance, options, timings, written, descriptions, media_counts)
        elapsed = time.perf_counter() - t0 + float(prov["timings"].get("embed", 0.0))
        prov["timings"]["total"] = prov["build_seconds"] = elapsed
        (tmp / PROVENANCE_FILE).write_text(json.dumps(prov, indent=2, default=_json_default))
    return Bank.load(out_dir)
