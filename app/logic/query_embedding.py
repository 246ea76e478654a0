"""From a checked upload to what the model sees, and on to normalised query embeddings.

Uploads are decoded by the **same code the bank's clips go through**: a one-row manifest read by
:class:`mmv.data.dataset.ClipDataset` in ``'eval'`` mode (OpenCV frames at the model's ``fps``, the
:class:`~mmv.data.transforms.EvalVideoTransform` resize + centre crop to ``frame_size``, the audio window
centred on the video window, mixed to mono and resampled to ``audio.sample_rate``), and the windows are
combined as :func:`mmv.embed.embed_manifest` does (raw embeddings averaged over windows, then
L2-normalised). So the upload of a clip that is in the bank embeds like the bank's own entry for it.

A clip longer than the model's window is either **cut** to one window starting where the user says, or
**averaged** over ``num_windows`` linearly spaced windows covering the whole clip.

Images go through ``model.encode_image`` when the model has one (a deflated video network); otherwise the
image is repeated ``num_frames`` times and embedded as a static video through ``encode_video``, and a note
says so.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from app.logic.uploads import UploadError, ValidUpload
from mmv.data.collate import collate_clips
from mmv.data.dataset import ClipDataset
from mmv.data.manifest import normalize_manifest
from mmv.data.transforms import EvalVideoTransform

if TYPE_CHECKING:
    from mmv.models.mmv import MMV

WINDOW_MODES = ("average", "cut")
#: At most this many windows are averaged (a 2-minute clip of 2-s windows would otherwise take 60).
MAX_WINDOWS = 16


@dataclass
class PreparedQuery:
    """What the model sees for one query.

    Attributes:
        kind: ``'video'``, ``'audio'``, ``'image'`` or ``'text'``.
        name: what the user uploaded or typed (for display).
        digest: a content hash (cache key, together with the options).
        video: uint8 ``[W, T, S, S, 3]``: ``W`` windows of ``T`` frames at the model's fps and frame size.
        audio: float32 ``[W, N]`` mono waveforms at ``sample_rate`` (``N = duration * sample_rate``).
        image: uint8 ``[S, S, 3]`` (the eval transform of the uploaded image).
        text: the query text.
        windows: ``(start, end)`` seconds of each video (or audio) window.
        sample_rate: of ``audio``.
        notes: what was converted, cut or assumed, for the user.
    """

    kind: str
    name: str
    digest: str
    video: torch.Tensor | None = None
    audio: torch.Tensor | None = None
    image: torch.Tensor | None = None
    text: str | None = None
    windows: list[tuple[float, float]] = field(default_factory=list)
    sample_rate: int | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def modalities(self) -> list[str]:
        """The query's modalities as the bank names them (an image searches as ``video``)."""
        out = []
        if self.video is not None or self.image is not None:
            out.append("video")
        if self.audio is not None:
            out.append("audio")
        if self.text is not None:
            out.append("text")
        return out


def window_seconds(config: Any) -> float:
    """The model's clip window in seconds: the video span ``num_frames / fps`` (or the audio duration)."""
    if "video" in config.modalities:
        return config.video.num_frames / config.video.fps
    return float(config.audio.duration)


def default_num_windows(duration: float, window: float) -> int:
    """Windows to average for a clip: enough to cover it without overlap, at least 1, at most :data:`MAX_WINDOWS`."""
    return int(min(MAX_WINDOWS, max(1, math.ceil(duration / window - 1e-6))))


def _one_row(upload: ValidUpload, start: float, end: float) -> pd.DataFrame:
    path = str(upload.path)
    row = {
        "clip_id": f"upload/{upload.digest[:12]}",
        "dataset": "upload",
        "video_path": path if upload.kind == "video" else None,
        "audio_path": path if upload.kind == "audio" else None,
        "start": float(start),
        "end": float(end),
        "split": "test",
    }
    return normalize_manifest(pd.DataFrame([row]))


def _decode(upload: ValidUpload, config: Any, start: float, end: float, num_windows: int) -> list[dict]:
    has_video = upload.kind == "video" and "video" in config.modalities
    has_audio = upload.has_audio and "audio" in config.modalities
    if not has_video and not has_audio:
        raise UploadError(f"This model has no tower for this {upload.kind}: it reads {', '.join(config.modalities)}.")
    dataset = ClipDataset(
        _one_row(upload, start, end),
        video_cfg=config.video if has_video else None,
        audio_cfg=config.audio if has_audio else None,
        mode="eval",
        num_windows=num_windows,
        cache_dir=Path(upload.path).parent / "audio-cache",
    )
    samples = [dataset[i] for i in range(len(dataset))]
    if any(s is None for s in samples):
        reason = next(iter(dataset.bad_samples.values()), "unknown error")
        raise UploadError(
            f"The {upload.kind} cannot be decoded ({reason}). Re-encode it (H.264 MP4 or WAV) and try again."
        )
    return samples


def prepare_upload(
    upload: ValidUpload,
    config: Any,
    window_mode: str = "average",
    num_windows: int | None = None,
    start: float = 0.0,
) -> PreparedQuery:
    """Decodes a checked upload into model inputs.

    Args:
        upload: from :func:`app.logic.uploads.validate_upload` (or :func:`~app.logic.uploads.validate_text`).
        config: the model's :class:`mmv.config.MMVConfig`.
        window_mode: ``'average'`` (``num_windows`` linearly spaced windows over the whole clip, their
            embeddings averaged) or ``'cut'`` (one window starting at ``start`` seconds).
        num_windows: windows to average (default :func:`default_num_windows`); ignored for ``'cut'``.
        start: start of the window for ``'cut'``, seconds (clamped into the clip).

    Returns:
        The prepared query.

    Raises:
        UploadError: the media cannot be decoded, or the model has no tower for it.
    """
    out = PreparedQuery(kind=upload.kind, name=upload.name, digest=upload.digest, notes=list(upload.notes))
    if upload.kind in ("text", "image"):
        return _prepare_still(upload, config, out)
    if window_mode not in WINDOW_MODES:
        raise ValueError(f"window_mode: must be one of {WINDOW_MODES}, got {window_mode!r}")
    duration = float(upload.duration)
    span = window_seconds(config)
    (first, last), n = _windows(duration, span, window_mode, num_windows, start, out.notes)
    samples = _decode(upload, config, first, last, n)
    _add_windows(out, collate_clips(samples), upload, config)
    out.windows = [(float(s["start"]), float(s["start"]) + span) for s in samples]
    return out


def _prepare_still(upload: ValidUpload, config: Any, out: PreparedQuery) -> PreparedQuery:
    """A text or an image query: nothing to decode, only the tower to check (and the image's eval transform)."""
    if upload.kind == "text":
        if "text" not in config.modalities:
            raise UploadError("This model has no text tower: text queries are not possible.")
        out.text = upload.text
        return out
    if "video" not in config.modalities:
        raise UploadError("This model has no video tower: image queries are not possible.")
    image = torch.from_numpy(np.array(upload.image, dtype=np.uint8, copy=True))[None]  # [1, H, W, 3]
    out.image = EvalVideoTransform(config.video.frame_size)(image)[0]
    return out


def _windows(
    duration: float, span: float, window_mode: str, num_windows: int | None, start: float, notes: list[str]
) -> tuple[tuple[float, float], int]:
    """``((first, last) seconds decoded, windows)`` of a clip of ``duration`` s; what was cut, averaged or padded
    is said in ``notes``."""
    if window_mode == "cut" or duration <= span + 1e-6:
        first = min(max(0.0, float(start)), max(0.0, duration - span))
        region = (first, duration)  # one window starting at `first` (the audio window is centred on it)
        n = 1
        if duration > span + 1e-6:
            notes.append(f"Cut to one {span:g}-s window, {region[0]:.2f}-{region[0] + span:.2f} s of {duration:.2f} s.")
    else:
        region = (0.0, duration)
        n = int(num_windows or default_num_windows(duration, span))
        n = max(1, min(MAX_WINDOWS, n))
        notes.append(f"Averaged over {n} windows of {span:g} s spread over the {duration:.2f}-s clip.")
    if duration < span - 1e-6:
        notes.append(
            f"The clip ({duration:.2f} s) is shorter than the model's {span:g}-s window: its last frame is "
            "repeated and the sound padded with silence."
        )
    return region, n


def _add_windows(out: PreparedQuery, batch: dict[str, Any], upload: ValidUpload, config: Any) -> None:
    """The decoded windows' frames and sound into ``out``, with a note on what the sound went through."""
    if "video" in batch:
        out.video = batch["video"]  # [W, T, S, S, 3] uint8
    if "audio" in batch and bool(batch["has_audio"].any()):
        out.audio = batch["audio"].to(torch.float32)  # [W, N]
        out.sample_rate = int(config.audio.sample_rate)
        if upload.sample_rate and (upload.sample_rate != out.sample_rate or (upload.channels or 1) > 1):
            layout = "mono" if (upload.channels or 1) == 1 else f"{upload.channels} channels mixed to mono"
            out.notes.append(f"Audio resampled from {upload.sample_rate} Hz ({layout}) to {out.sample_rate} Hz.")
    elif upload.has_audio and "audio" not in config.modalities:
        out.notes.append("This model has no audio tower: the sound is not used.")


def prepare_text(text: str, config: Any) -> PreparedQuery:
    """A typed text query (see :func:`app.logic.uploads.validate_text` for the checks)."""
    from app.logic.uploads import validate_text

    return prepare_upload(validate_text(text), config)


# ---------------------------------------------------------------------------------------------------
# Embedding
# ---------------------------------------------------------------------------------------------------


def _mean_normalised(out: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    """Per space: the raw ``[W, D]`` embeddings averaged over windows, then L2-normalised -> float32 ``[D]``."""
    result = {}
    for space in ("va", "vat"):
        if space in out:
            mean = out[space].detach().to(torch.float64).mean(dim=0)
            result[space] = F.normalize(mean, dim=0).to(torch.float32).numpy()
    return result


NO_WORD_LIST = (
    "This model has no word list, so it cannot read text. A converted official checkpoint holds the word table "
    "but not the words of its rows: convert it again with `python -m training.convert_official --checkpoint "
    "FILE.pkl --out DIR --vocab words.txt` (one word per row of the table) to search by text. Video and audio "
    "queries work without it."
)


def tokenize_text(model: MMV, text: str) -> tuple[torch.Tensor, list[str], list[str]]:
    """Token ids ``[1, L]`` of a query, the words the model knows, and the words it does not.

    Raises:
        UploadError: the model has no vocabulary, or no word of the query is in it (the embedding of an
            all-padding sentence would be meaningless).
    """
    from mmv.tokenizer import ENGLISH_STOP_WORDS, UNK_ID, tokenize

    vocab = model.vocab
    if vocab is None:
        raise UploadError(NO_WORD_LIST)
    ids = model.tokenize([text])  # [1, L]
    cfg = model.config.text
    words = tokenize(text)
    if cfg.remove_stop_words:
        words = [w for w in words if w not in ENGLISH_STOP_WORDS]
    known = [w for w in words if w in vocab]
    unknown = [w for w in words if w not in vocab]
    if not bool(((ids != 0) & (ids != UNK_ID)).any()):
        hint = f" Unknown words: {', '.join(unknown[:8])}." if unknown else ""
        stop = " (stop words are dropped)" if cfg.remove_stop_words else ""
        raise UploadError(f"None of the words of '{text}' is in the model's vocabulary{stop}.{hint}")
    return ids, known, unknown


@torch.no_grad()
def embed_query(model: MMV, query: PreparedQuery) -> dict[str, dict[str, np.ndarray]]:
    """Embeds a prepared query in every space the model maps it to.

    Returns:
        ``{modality: {space: float32 [D] unit vector}}``; modality ``'video'`` for videos and images,
        ``'audio'``, ``'text'``. The model is switched to eval mode (it is loaded in eval mode anyway).
    """
    model.eval()
    out: dict[str, dict[str, np.ndarray]] = {}
    if query.video is not None:
        out["video"] = _mean_normalised(model.encode_video(query.video))
    if query.image is not None:
        image = query.image[None]  # [1, S, S, 3]
        with warnings.catch_warnings():  # "naive deflation" is said in the UI (image_mode_note)
            warnings.simplefilter("ignore", UserWarning)
            out["video"] = _mean_normalised(model.encode_image(image.float().div(255.0)))
    if query.audio is not None:
        out["audio"] = _mean_normalised(model.encode_audio(query.audio))
    if query.text is not None:
        ids, _, _ = tokenize_text(model, query.text)
        out["text"] = _mean_normalised(model.encode_text(ids))
    return out


def image_mode_note(model: MMV) -> str:
    """How an image query is embedded by this model (shown in the UI)."""
    if model.calibrated_deflation is not None:
        return "Images are embedded by the deflated video network, with its recalibrated BatchNorm (encode_image)."
    return (
        "Images are embedded by the deflated video network (encode_image). This checkpoint has no "
        "recalibration, so the deflation is naive (the video network's own BatchNorm parameters)."
    )


# ---------------------------------------------------------------------------------------------------
# Previews: what the model sees
# ---------------------------------------------------------------------------------------------------


def frame_strip(video: torch.Tensor, max_frames: int = 16) -> np.ndarray:
    """The frames of one window side by side: uint8 ``[S, n * S, 3]`` from ``[T, S, S, 3]``."""
    frames = video.detach().cpu()
    if frames.dtype != torch.uint8:
        frames = (frames.clamp(0, 1) * 255).round().to(torch.uint8)
    idx = np.linspace(0, len(frames) - 1, min(max_frames, len(frames))).round().astype(int)
    return np.concatenate([frames[i].numpy() for i in idx], axis=1)
