"""Checking an uploaded file before the model sees it: kind from the bytes, limits, clear messages.

:func:`validate_upload` turns ``(file name, bytes)`` into a :class:`ValidUpload` (the file written to a
private directory under a suffix that matches its contents, its probed duration, size and streams, and
notes for the user) or raises :class:`UploadError`, whose message is written for the person who uploaded
the file (what is wrong, what to do), never a traceback. :func:`validate_text` does the same for a typed
query. Decoding into model inputs is :mod:`app.logic.query_embedding`'s job.

Decisions (the issue leaves them open):

* The **kind comes from the first bytes** (:func:`mmv.data.media.probe.sniff`, ``strict=False``), not from the name.
  A name whose extension promises another kind (a PNG named ``.mp4``) is refused with a message naming both, rather
  than guessed.
* **Audio** of any sample rate and channel count that FFmpeg/libsndfile read is accepted: it is mixed down to
  mono and resampled to the model's rate later (a 96 kHz stereo WAV works; a note says so). Above
  ``max_sample_rate`` or ``max_channels`` it is refused.
* **Images**: CMYK and other modes are converted to RGB, transparent pixels are laid on white, EXIF rotation
  is applied; each conversion is a note, not an error.
* **Text** must be UTF-8 (a BOM is allowed); anything else is refused with the offending byte and position.
* **Duration**: up to ``max_seconds`` (2 minutes by default); longer clips are refused (trim them first), so
  a 10-minute upload never ties up the server. Within the limit, a clip longer than the model's window is
  cut to one window or averaged over several (:mod:`app.logic.query_embedding`).
"""

from __future__ import annotations

import hashlib
import io
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mmv.data.media import MediaError, audio_info, video_info
from mmv.data.media.probe import sniff

#: Kinds the upload sniffer recognises, grouped by what the app does with them.
VIDEO_KINDS = ("mp4", "matroska", "avi")
AUDIO_KINDS = ("wav", "flac", "ogg", "mp3", "aac")
IMAGE_KINDS = ("png", "jpeg", "gif", "webp", "bmp")

#: The suffix a file of each kind is stored under (so the media readers' own extension check agrees).
_SUFFIX = {
    "mp4": ".mp4",
    "matroska": ".mkv",
    "avi": ".avi",
    "wav": ".wav",
    "flac": ".flac",
    "ogg": ".ogg",
    "mp3": ".mp3",
    "aac": ".aac",
}
#: What an extension promises (a name without one of these promises nothing).
_EXTENSION_KIND = {
    **dict.fromkeys((".mp4", ".m4v", ".m4a", ".mov", ".3gp"), "mp4"),
    **dict.fromkeys((".mkv", ".webm", ".mka"), "matroska"),
    ".avi": "avi",
    ".wav": "wav",
    ".flac": "flac",
    **dict.fromkeys((".ogg", ".oga", ".opus"), "ogg"),
    ".mp3": "mp3",
    ".aac": "aac",
    ".png": "png",
    **dict.fromkeys((".jpg", ".jpeg", ".jfif"), "jpeg"),
    ".gif": "gif",
    ".webp": "webp",
    ".bmp": "bmp",
    **dict.fromkeys((".txt", ".text", ".md"), "text"),
}
_KIND_NAMES = {
    "mp4": "an MP4/MOV video or audio file",
    "matroska": "a Matroska/WebM file",
    "avi": "an AVI video",
    "wav": "a WAV audio file",
    "flac": "a FLAC audio file",
    "ogg": "an Ogg audio file",
    "mp3": "an MP3 audio file",
    "aac": "an AAC audio stream",
    "png": "a PNG image",
    "jpeg": "a JPEG image",
    "gif": "a GIF image",
    "webp": "a WebP image",
    "bmp": "a BMP image",
    "text": "a text file",
    "pdf": "a PDF document",
    "zip": "a ZIP archive",
}
SUPPORTED = "video (mp4, mov, webm, mkv, avi), audio (wav, flac, ogg, mp3, m4a), image (jpg, png, gif, webp, bmp), text"


class UploadError(ValueError):
    """An upload the app cannot use; ``str(err)`` is a message for the user (no path, no traceback)."""


@dataclass(frozen=True)
class UploadLimits:
    """What the app accepts.

    Attributes:
        max_bytes: largest file (the server's ``maxUploadSize`` in ``.streamlit/config.toml`` is the same
            50 MB, so the browser refuses larger files before they are sent).
        max_seconds: longest video or audio.
        min_side / max_side: smallest / largest frame or image side, pixels.
        max_sample_rate / max_channels: audio limits.
        max_text_chars: longest text query.
    """

    max_bytes: int = 50 * 1024 * 1024
    max_seconds: float = 120.0
    min_side: int = 16
    max_side: int = 4096
    max_sample_rate: int = 192_000
    max_channels: int = 8
    max_text_chars: int = 2000


@dataclass
class ValidUpload:
    """An upload that passed :func:`validate_upload`.

    Attributes:
        kind: ``'video'`` (may have sound), ``'audio'``, ``'image'`` or ``'text'``.
        name: the file name as uploaded.
        digest: sha256 of the bytes (a cache key).
        path: the stored file (video and audio), else ``None``.
        duration: seconds (video and audio), else ``None``.
        has_audio: the video has a sound track / the upload is audio.
        width / height: frame or image size in pixels.
        fps: video frame rate.
        sample_rate / channels: of the audio track.
        image: uint8 ``[H, W, 3]`` RGB for images.
        text: the decoded text for text files.
        notes: what was converted or assumed, for the user.
    """

    kind: str
    name: str
    digest: str
    path: Path | None = None
    duration: float | None = None
    has_audio: bool = False
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    sample_rate: int | None = None
    channels: int | None = None
    image: np.ndarray | None = None
    text: str | None = None
    notes: list[str] = field(default_factory=list)


def _family(kind: str | None) -> str | None:
    for family, kinds in (("video", VIDEO_KINDS), ("audio", AUDIO_KINDS), ("image", IMAGE_KINDS)):
        if kind in kinds:
            return family
    return "text" if kind == "text" else None


def _media_message(err: MediaError, what: str) -> str:
    """A :class:`MediaError` as a sentence for the user (the reason phrases are documented by MediaError)."""
    reason = err.reason
    detail = reason.split(":", 1)[1].strip() if ":" in reason else ""
    if reason.startswith("empty file"):
        return f"The {what} is empty (0 bytes)."
    if reason.startswith("truncated file"):
        return f"The {what} is incomplete (truncated: {detail}). Upload the complete file."
    if reason.startswith("no video stream"):
        return f"The {what} has no video stream."
    if reason.startswith("no audio stream"):
        return f"The {what} has no audio stream."
    if reason.startswith("zero duration"):
        return f"The {what} holds no frames or samples."
    if reason.startswith("window past the end"):
        return f"The {what} is shorter than its header says ({detail})."
    if reason.startswith(("unreadable frame", "unsupported format")):
        return f"Some frames of the {what} cannot be decoded ({reason}). Re-encode it (H.264 MP4 works) and try again."
    return f"The {what} cannot be read ({reason}). Re-encode it (H.264 MP4 or WAV) and try again."


def _store(data: bytes, kind: str, digest: str, workdir: Path) -> Path:
    """Writes the bytes once into ``workdir/<digest>/upload<suffix>`` (the FLAC cache goes beside it)."""
    directory = workdir / digest[:32]
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"upload{_SUFFIX[kind]}"
    if not path.is_file() or path.stat().st_size != len(data):
        tmp = directory / f".upload{_SUFFIX[kind]}.{os.getpid()}.tmp"
        tmp.write_bytes(data)
        os.replace(tmp, path)
    return path


def _check_media(path: Path, kind: str, name: str, digest: str, limits: UploadLimits) -> ValidUpload:
    out = ValidUpload(kind="video", name=name, digest=digest, path=path)
    video = None
    if kind in VIDEO_KINDS:
        try:
            video = video_info(path)
        except MediaError as err:
            if not err.reason.startswith("no video stream"):
                raise UploadError(_media_message(err, "video")) from err
    if video is not None:
        out.duration, out.fps = float(video.duration), float(video.fps)
        out.width, out.height, out.has_audio = int(video.width), int(video.height), bool(video.has_audio)
        short, long = min(out.width, out.height), max(out.width, out.height)
        if short < limits.min_side:
            raise UploadError(
                f"The video is {out.width}x{out.height} pixels; the smallest side must be at least {limits.min_side}."
            )
        if long > limits.max_side:
            raise UploadError(
                f"The video is {out.width}x{out.height} pixels; the largest side may be at most {limits.max_side}. "
                "Downscale it first."
            )
    else:
        out.kind, out.has_audio = "audio", True
    if out.has_audio:
        try:
            audio = audio_info(path)
        except MediaError as err:
            if video is None:
                raise UploadError(_media_message(err, "audio file")) from err
            out.has_audio = False
            out.notes.append(f"The sound track cannot be read ({err.reason}): only the pictures are used.")
        else:
            if audio.sample_rate > limits.max_sample_rate or audio.channels > limits.max_channels:
                raise UploadError(
                    f"The audio is {audio.sample_rate} Hz with {audio.channels} channels; the app takes at most "
                    f"{limits.max_sample_rate} Hz and {limits.max_channels} channels."
                )
            out.sample_rate, out.channels = int(audio.sample_rate), int(audio.channels)
            if out.duration is None:
                out.duration = float(audio.duration)
    if video is not None and not out.has_audio and not out.notes:
        out.notes.append("The video has no sound track: it is searched by its pictures only.")
    if out.duration is None or not out.duration > 0:
        raise UploadError(f"The {out.kind} has no duration.")
    if out.duration > limits.max_seconds:
        raise UploadError(
            f"The {out.kind} is {out.duration:.0f} s long; the app takes at most {limits.max_seconds:.0f} s. "
            "Trim it to the part you want to search with."
        )
    return out


def _check_image(data: bytes, kind: str, name: str, digest: str, limits: UploadLimits) -> ValidUpload:
    from PIL import Image, ImageOps

    notes: list[str] = []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data))
            width, height = im.size
            if max(width, height) > limits.max_side:
                raise UploadError(
                    f"The image is {width}x{height} pixels; the largest side may be at most {limits.max_side}."
                )
            if min(width, height) < limits.min_side:
                raise UploadError(
                    f"The image is {width}x{height} pixels; the smallest side must be at least {limits.min_side}."
                )
            im.load()
    except UploadError:
        raise
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise UploadError(f"The image cannot be decoded ({e}). It may be truncated or corrupt.") from e
    if getattr(im, "n_frames", 1) > 1:
        notes.append("The image is animated: its first frame is used.")
    transposed = ImageOps.exif_transpose(im)
    if transposed is not None and transposed.size != im.size:
        notes.append("The image was rotated as its EXIF orientation says.")
    im = transposed if transposed is not None else im
    mode = im.mode
    if mode == "P":
        im = im.convert("RGBA") if "transparency" in im.info else im.convert("RGB")
    elif mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(im, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        arr = (arr - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(arr)
        im = Image.fromarray(arr.astype(np.uint8), "L")
        notes.append(f"The {mode} image was scaled to 8 bits.")
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "RGBa"):
        rgba = im.convert("RGBA")
        alpha = np.asarray(rgba)[..., 3]
        if alpha.min() < 255:
            notes.append("Transparent pixels were laid on a white background.")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        im = Image.alpha_composite(white, rgba)
    if mode == "CMYK":
        notes.append("The CMYK image was converted to RGB (colours may shift slightly).")
    elif mode not in ("RGB", "RGBA", "P", "L", "LA") and not notes:
        notes.append(f"The {mode} image was converted to RGB.")
    rgb = np.ascontiguousarray(np.asarray(im.convert("RGB"), dtype=np.uint8))
    return ValidUpload(
        kind="image", name=name, digest=digest, width=rgb.shape[1], height=rgb.shape[0], image=rgb, notes=notes
    )


def validate_text(text: str, limits: UploadLimits = UploadLimits(), name: str = "query") -> ValidUpload:
    """A typed (or decoded) text query: stripped, non-empty, at most ``limits.max_text_chars`` characters."""
    clean = " ".join(text.replace("\x00", " ").split())
    if not clean:
        raise UploadError("The text is empty: type a few words (for example 'a red circle moves to the right').")
    if len(clean) > limits.max_text_chars:
        raise UploadError(
            f"The text has {len(clean)} characters; a query may have at most {limits.max_text_chars}. "
            "The model reads only its first 16 content words anyway."
        )
    digest = hashlib.sha256(clean.encode("utf-8")).hexdigest()
    return ValidUpload(kind="text", name=name, digest=digest, text=clean)


def _decode_text(data: bytes, name: str, limits: UploadLimits) -> ValidUpload:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        bad = data[e.start : e.start + 1].hex().upper()
        raise UploadError(
            f"'{name}' is not UTF-8 text (byte 0x{bad} at position {e.start} is not valid UTF-8). "
            "Save it as UTF-8 and upload it again, or type the text into the box."
        ) from e
    if any(ord(c) < 32 and c not in "\t\r\n\f" for c in text):
        raise UploadError(f"'{name}' contains control characters: it does not look like a text file.")
    return validate_text(text, limits, name)


def validate_upload(
    name: str, data: bytes, workdir: str | os.PathLike, limits: UploadLimits = UploadLimits()
) -> ValidUpload:
    """Checks an uploaded file and stores it for decoding.

    Args:
        name: the file name as uploaded (only its extension is used, and only to catch a mismatch).
        data: the file's bytes.
        workdir: where media files are stored (one sub-directory per distinct upload).
        limits: what is accepted.

    Returns:
        The checked upload; see :class:`ValidUpload`.

    Raises:
        UploadError: with a message for the user, for every file the app cannot use.
    """
    name = os.path.basename(name or "upload") or "upload"
    if len(data) == 0:
        raise UploadError(f"'{name}' is empty (0 bytes). Upload the file again, or another file.")
    if len(data) > limits.max_bytes:
        raise UploadError(
            f"'{name}' is {len(data) / 2**20:.1f} MB; the app takes files up to {limits.max_bytes / 2**20:.0f} MB."
        )
    kind = sniff(bytes(data[:64]), strict=False)
    promised = _EXTENSION_KIND.get(Path(name).suffix.lower())
    if kind is None or kind in ("pdf", "zip"):
        what = _KIND_NAMES.get(kind or "", "a file of an unknown format")
        raise UploadError(f"'{name}' looks like {what}. The app takes {SUPPORTED}.")
    if promised is not None and promised != kind and not (promised == "text" and kind == "text"):
        if _family(promised) != _family(kind) or _family(kind) == "image" or kind == "text":
            raise UploadError(
                f"'{name}' is named like {_KIND_NAMES[promised]}, but its contents are {_KIND_NAMES[kind]}. "
                "Give it the right extension (or upload the file you meant)."
            )
    if kind == "text" and promised not in (None, "text"):
        raise UploadError(f"'{name}' is not {_KIND_NAMES[promised]}: its first bytes are plain text.")
    digest = hashlib.sha256(data).hexdigest()
    if kind in IMAGE_KINDS:
        return _check_image(bytes(data), kind, name, digest, limits)
    if kind == "text":
        if len(data) > 8 * limits.max_text_chars:
            raise UploadError(
                f"'{name}' is {len(data)} bytes long; a text query may have at most {limits.max_text_chars} characters."
            )
        return _decode_text(bytes(data), name, limits)
    path = _store(bytes(data), kind, digest, Path(workdir))
    out = _check_media(path, kind, name, digest, limits)
    if out.kind == "audio" and out.channels and out.sample_rate:
        layout = {1: "mono", 2: "stereo"}.get(out.channels, f"{out.channels} channels")
        out.notes.append(f"Audio: {out.sample_rate} Hz {layout}.")
    return out
