"""Frozen features for linear probes: the representation before the heads, per evaluation window, cached.

**What a feature is** (``shared/mmv_spec.md`` section 8.5): for video, ``model.encode_video(clip)["repr"]``, the
pooled backbone output before any projection head (``d_v``: 1024 for S3D-G, 2048 for TSM-R50); for audio,
``model.encode_audio(wave)["repr"]``; for images, ``model.encode_image(image, mode)["repr"]``, the *deflated*
video network (spec section 6; ``mode='inflated'`` embeds the image as a static video instead).

**Windows.** Clips are read by :class:`mmv.data.dataset.ClipDataset` in ``'eval'`` mode, the windowing
:func:`mmv.embed.embed_manifest` uses: ``num_windows`` linearly spaced windows per clip, centre crop,
BatchNorm with running statistics. Each window's feature is kept, ``[M, W, D]`` with a mask of the windows
read, so a probe can average the features over the windows (:meth:`Features.mean`) or the classifier scores
(the official UCF101 script, spec section 7.1). Images from files have one window; images from a video
manifest are the middle frame of each window. A window that cannot be read (bad media, an audio window of a
clip without sound) is masked out; a clip with no window read is left out by the probe.

**Cache.** ``extract_features(..., FeatureOptions(cache_dir=D))`` writes ``D/<modality>-<key[:16]>.safetensors``
(never a pickle) holding ``features`` float32 ``[M, W, D]`` and ``mask`` uint8 ``[M, W]``, with the metadata
``format`` (``"mmv-features"``), ``format_version``, ``key``, ``params`` (JSON) and ``clip_id`` (JSON list, the
manifest's row order). ``key`` is the SHA-256 of the parameters: the model's fingerprint
(:func:`model_fingerprint`: its config and every weight, BN statistics included), the manifest's
(:func:`manifest_fingerprint`: clip ids, paths, windows, and each file's size and modification time), the
modality, ``num_windows`` and the image options. Any change gives a new key, so a stale file is never read;
labels are not part of it, so probing another label of the same clips reuses the file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from mmv.embed import embed_manifest

if TYPE_CHECKING:
    from mmv.models.mmv import MMV

logger = logging.getLogger(__name__)

FORMAT = "mmv-features"
FORMAT_VERSION = 1
MODALITIES = ("video", "audio", "image")
#: Where image features come from: ``files`` (``image_path``), ``frames`` (middle frame of each video window),
#: ``auto`` (``files`` when any row has an image, else ``frames``).
IMAGE_SOURCES = ("auto", "files", "frames")


@dataclass
class Features:
    """Per-window features of every row of a manifest.

    Attributes:
        features: float32 ``[M, W, D]`` (zeros where ``mask`` is False).
        mask: bool ``[M, W]``: which windows were read.
        clip_id: ``[M]`` clip ids, the manifest's row order.
        params: what they were computed with (modality, windows, fingerprints).
        key: the cache key (SHA-256 hex of ``params``).
        path: the cache file, when one was read or written.
        from_cache: whether they were read from the cache.
    """

    features: np.ndarray
    mask: np.ndarray
    clip_id: list[str]
    params: dict[str, Any] = field(default_factory=dict)
    key: str = ""
    path: str | None = None
    from_cache: bool = False

    @property
    def valid(self) -> np.ndarray:
        """Bool ``[M]``: rows with at least one window read."""
        return self.mask.any(axis=1)

    @property
    def dim(self) -> int:
        return int(self.features.shape[2])

    def mean(self) -> np.ndarray:
        """Float32 ``[M, D]``: each row's features averaged over its windows read (zeros for none)."""
        count = self.mask.sum(axis=1, keepdims=True)
        total = (self.features * self.mask[..., None]).sum(axis=1)
        return (total / np.maximum(count, 1)).astype(np.float32)


# ---------------------------------------------------------------------------------------------------
# Fingerprints and the cache
# ---------------------------------------------------------------------------------------------------


def _hash_tensors(h: Any, state: dict[str, torch.Tensor]) -> None:
    for name in sorted(state):
        t = state[name].detach().to("cpu").contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}\n".encode())
        if t.numel():
            h.update(memoryview(t.reshape(-1).view(torch.uint8).numpy()))


def model_fingerprint(model: MMV, include_deflation: bool = False) -> str:
    """SHA-256 hex of a model's config and every tensor of its ``state_dict`` (weights and BN statistics).

    With ``include_deflation``, also of the recalibrated image tower attached outside the module tree
    (:meth:`mmv.models.mmv.MMV.set_calibrated_deflation`), which changes image features but not the state dict.
    """
    h = hashlib.sha256()
    h.update(json.dumps(model.config.to_dict(), sort_keys=True).encode())
    _hash_tensors(h, model.state_dict())
    tower = model.calibrated_deflation if include_deflation else None
    if tower is not None:
        h.update(b"deflation\n")
        _hash_tensors(h, tower.state_dict())
    return h.hexdigest()


def _stat(path: Any) -> list[int]:
    if not isinstance(path, str) or not path:
        return []
    try:
        st = os.stat(path)
    except OSError:
        return [-1, -1]
    return [int(st.st_size), int(st.st_mtime_ns)]


_IDENTITY = ("clip_id", "video_path", "audio_path", "image_path", "start", "end")


def manifest_fingerprint(manifest: pd.DataFrame) -> str:
    """SHA-256 hex of what decides a manifest's features: per row, the clip id, the media paths, the window
    (``start``, ``end``) and each file's size and modification time (a re-encoded file gives a new print)."""
    h = hashlib.sha256()
    cols = {c: manifest[c].tolist() if c in manifest.columns else [None] * len(manifest) for c in _IDENTITY}
    for i in range(len(manifest)):
        row = [_json_value(cols[c][i]) for c in _IDENTITY]
        row += [_stat(cols[c][i]) for c in ("video_path", "audio_path", "image_path")]
        h.update((json.dumps(row) + "\n").encode())
    return h.hexdigest()


def _json_value(v: Any) -> Any:
    if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)):
        return None
    return v.item() if isinstance(v, np.generic) else v


def feature_key(params: dict[str, Any]) -> str:
    """The cache key: SHA-256 hex of the parameters as canonical JSON."""
    return hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()


def save_features(features: Features, path: str | os.PathLike) -> Path:
    """Writes :class:`Features` as safetensors (atomically: a temporary sibling, then a rename)."""
    from safetensors.numpy import save_file

    from mmv.fileio import atomic_file

    metadata = {
        "format": FORMAT,
        "format_version": str(FORMAT_VERSION),
        "key": features.key,
        "params": json.dumps(features.params, sort_keys=True),
        "clip_id": json.dumps(list(features.clip_id)),
    }
    tensors = {
        "features": np.ascontiguousarray(features.features, dtype=np.float32),
        "mask": np.ascontiguousarray(features.mask, dtype=np.uint8),
    }
    path = Path(path)
    with atomic_file(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
    return path


def load_features(path: str | os.PathLike) -> Features:
    """Reads a file :func:`save_features` wrote (safetensors: no code runs on reading).

    Raises:
        ValueError: not an ``mmv-features`` file, or one of a newer format version.
    """
    from safetensors import safe_open

    with safe_open(str(path), framework="numpy") as f:
        meta = f.metadata() or {}
        if meta.get("format") != FORMAT:
            raise ValueError(f"{path}: not an {FORMAT} file (format={meta.get('format')!r})")
        if int(meta.get("format_version", 0)) > FORMAT_VERSION:
            raise ValueError(f"{path}: format_version {meta['format_version']} is newer than {FORMAT_VERSION}")
        features, mask = f.get_tensor("features"), f.get_tensor("mask").astype(bool)
    return Features(
        features=features,
        mask=mask,
        clip_id=json.loads(meta["clip_id"]),
        params=json.loads(meta["params"]),
        key=meta.get("key", ""),
        path=str(path),
        from_cache=True,
    )


# ---------------------------------------------------------------------------------------------------
# Extraction
# ---------------------------------------------------------------------------------------------------


class _WindowsAsRows(Dataset):
    """Item ``i`` of ``data`` relabelled as its own row (``index = i = row * W + window``), so that
    :func:`embed_manifest` averages nothing and every window's feature comes back separately."""

    num_windows = 1

    def __init__(self, data: Dataset) -> None:
        self.data = data

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int) -> dict[str, Any] | None:
        sample = self.data[i]
        if sample is not None:
            sample["index"], sample["window"] = int(i), 0
        return sample


def _image_source(manifest: pd.DataFrame, source: str) -> str:
    if source not in IMAGE_SOURCES:
        raise ValueError(f"image_source must be one of {IMAGE_SOURCES}, got {source!r}")
    if source != "auto":
        return source
    has_images = "image_path" in manifest.columns and manifest["image_path"].notna().any()
    return "files" if has_images else "frames"


def feature_dataset(
    model: MMV, manifest: pd.DataFrame, modality: str, num_windows: int, image_source: str = "auto"
) -> Dataset:
    """The evaluation items of ``manifest`` for one modality: ``num_windows`` windows per row (one for image
    files), item ``row * W + window``. The dataset's ``num_windows`` is W."""
    from mmv.data.dataset import ClipDataset
    from mmv.eval.datasets import FramesAsImages, ImageDataset

    if modality not in MODALITIES:
        raise ValueError(f"modality must be one of {MODALITIES}, got {modality!r}")
    cfg = model.config
    tower = "video" if modality == "image" else modality
    if tower not in cfg.modalities:
        raise ValueError(
            f"this model has no {tower} tower (modalities={list(cfg.modalities)}); cannot probe {modality}"
        )
    if modality == "image" and _image_source(manifest, image_source) == "files":
        return ImageDataset(manifest, cfg.video.frame_size)
    kwargs = {"video_cfg": cfg.video} if tower == "video" else {"audio_cfg": cfg.audio}
    clips = ClipDataset(manifest, **kwargs, mode="eval", num_windows=num_windows)
    return FramesAsImages(clips) if modality == "image" else clips


@dataclass(frozen=True)
class FeatureOptions:
    """How :func:`extract_features` reads a manifest, passed whole (from :func:`mmv.eval.linear_probe.probe_manifest`).

    Attributes:
        num_windows: linearly spaced windows per clip (10 in the paper's classification protocols).
        image_source: for ``'image'``: :data:`IMAGE_SOURCES`.
        image_mode: for ``'image'``: :meth:`mmv.models.mmv.MMV.encode_image`'s mode (``'auto'``,
            ``'calibrated'``, ``'naive'``, ``'inflated'``).
        device: where the model runs.
        batch_size: windows per forward pass.
        num_workers: DataLoader workers.
        cache_dir: directory of the feature cache (``None``: no cache).
        progress: show a tqdm bar.
    """

    num_windows: int = 10
    image_source: str = "auto"
    image_mode: str = "auto"
    device: str | torch.device = "cpu"
    batch_size: int = 16
    num_workers: int = 0
    cache_dir: str | os.PathLike | None = None
    progress: bool = False


def extract_features(
    model: MMV,
    manifest: pd.DataFrame | str | os.PathLike,
    modality: str = "video",
    options: FeatureOptions | None = None,
) -> Features:
    """Per-window representations of every row of a manifest (module docstring), read from the cache if there.

    Args:
        model: an :class:`mmv.models.mmv.MMV` on ``options.device``.
        manifest: a manifest path or a loaded table; every row (all splits) is embedded, in order.
        modality: ``'video'``, ``'audio'`` or ``'image'``.
        options: windows, device, batches and cache (defaults if None).

    Returns:
        :class:`Features` aligned with the manifest's rows.

    Raises:
        ValueError: a bad modality or option, or no window of any clip could be read.
    """
    from mmv.data.manifest import load_manifest

    o = options or FeatureOptions()
    df = load_manifest(manifest) if isinstance(manifest, (str, os.PathLike)) else manifest.reset_index(drop=True)
    if o.num_windows < 1:
        raise ValueError(f"num_windows must be >= 1, got {o.num_windows}")
    dataset = feature_dataset(model, df, modality, o.num_windows, o.image_source)
    windows = int(getattr(dataset, "num_windows", 1))
    params = {
        "format_version": FORMAT_VERSION,
        "modality": modality,
        "num_windows": windows,
        "model": model_fingerprint(model, include_deflation=modality == "image"),
        "manifest": manifest_fingerprint(df),
    }
    if modality == "image":
        params.update(image_source=_image_source(df, o.image_source), image_mode=o.image_mode)
    key = feature_key(params)
    path = None if o.cache_dir is None else Path(o.cache_dir) / f"{modality}-{key[:16]}.safetensors"
    cached = _read_cache(path, key, df)
    if cached is not None:
        return cached
    features, mask = _embed_windows(model, dataset, df, modality, windows, o)
    result = Features(features, mask, df["clip_id"].astype(str).tolist(), params, key)
    if path is not None:
        result.path = str(save_features(result, path))
    return result


def _read_cache(path: Path | None, key: str, df: pd.DataFrame) -> Features | None:
    """The cached features of ``df`` under ``key``, or None (no file, a damaged one, or another key)."""
    if path is None or not path.is_file():
        return None
    try:
        cached = load_features(path)
    except (ValueError, OSError) as err:  # a damaged file is recomputed, never fatal
        logger.warning("feature cache %s unreadable (%s); recomputing", path, err)
        return None
    if cached.key == key and cached.clip_id == df["clip_id"].astype(str).tolist():
        return cached
    return None


def _embed_windows(
    model: MMV, dataset: Dataset, df: pd.DataFrame, modality: str, windows: int, o: FeatureOptions
) -> tuple[np.ndarray, np.ndarray]:
    """``features`` float32 ``[M, W, D]`` and ``mask`` bool ``[M, W]`` of the windows of ``dataset``."""
    key_name = f"{modality}_repr"
    nothing = f"extract_features: no {modality} window of any of the {len(df)} clips could be read"
    try:
        emb = embed_manifest(
            model,
            _WindowsAsRows(dataset),
            o.device,
            batch_size=o.batch_size,
            num_workers=o.num_workers,
            outputs={key_name},
            image_mode=o.image_mode,
            progress=o.progress,
        )
    except ValueError as err:
        if "yielded no clip" in str(err):
            raise ValueError(nothing) from err
        raise
    items = emb["index"].numpy()
    values = emb[key_name].numpy()
    keep = emb["has_audio"].numpy() if modality == "audio" else np.ones(len(items), dtype=bool)
    rows, k = np.divmod(items[keep], windows)
    features = np.zeros((len(df), windows, values.shape[1]), dtype=np.float32)
    mask = np.zeros((len(df), windows), dtype=bool)
    features[rows, k], mask[rows, k] = values[keep], True
    if not mask.any():
        raise ValueError(nothing)
    return features, mask
