"""Probing media files: :class:`MediaError`, the stream descriptions, and the checks every reader runs first.

**PyAV** (FFmpeg) opens *containers*: it probes streams (:func:`video_info`, :func:`audio_info`, and the
checks that turn a bad file into a clear :class:`MediaError` before OpenCV sees it). It also extracts audio
tracks (:mod:`mmv.data.media.audio`) and writes MP4 (:mod:`mmv.data.media.write`). WAV/FLAC/OGG files are
probed with soundfile.

Before any library sees a file, :func:`_check_file` checks that it exists, is not empty, that its first
bytes match its suffix (:func:`sniff`), and (for MP4/MOV) that no top-level box runs past the end of the file.
:func:`sniff` is also the app's upload sniffer (``strict=False``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import av
import soundfile as sf

#: Suffixes read directly with soundfile (everything else goes through PyAV and the FLAC cache).
SOUNDFILE_SUFFIXES: frozenset[str] = frozenset({".wav", ".flac", ".ogg", ".oga"})

# What a file's suffix promises, as the kind :func:`sniff` recognises from the first bytes.
_SUFFIX_KIND = {
    **dict.fromkeys((".mp4", ".m4a", ".m4v", ".mov", ".3gp", ".3g2"), "mp4"),
    **dict.fromkeys((".mkv", ".webm", ".mka"), "matroska"),
    ".avi": "avi",
    ".wav": "wav",
    ".flac": "flac",
    **dict.fromkeys((".ogg", ".oga", ".opus"), "ogg"),
}
# The ISO box types an MP4/MOV file may open with: a plain one's, which uploads (``strict=False``) accept, and
# those of fragmented MP4 too for the library.
_UPLOAD_ISO_BOXES = (b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pnot")
_ISO_BOXES = (*_UPLOAD_ISO_BOXES, b"styp", b"uuid", b"sidx", b"moof")


class MediaError(Exception):
    """A media file cannot be read as asked. ``str(err)`` is ``"<path>: <reason>"``.

    The reason starts with one of these phrases (match on them, not on the details after the colon):

    ==========================================  =====================================================
    ``file not found``                          the path does not exist
    ``not a regular file``                      a directory, a device, ...
    ``cannot read``                             the OS refused (permissions, I/O error)
    ``empty file (0 bytes)``                    zero-byte file
    ``wrong extension``                         the first bytes say another format (a PNG or text
                                                file named ``.mp4``, a WAV named ``.flac``, ...)
    ``truncated file``                          an MP4 whose boxes run past the end of the file
    ``corrupt or unsupported``                  FFmpeg / libsndfile cannot parse the file
    ``no video stream``                         e.g. an audio-only ``.m4a`` given to ``read_video``
    ``no audio stream``                         e.g. a silent ``.mp4`` given to ``read_audio``
    ``zero duration``                           a stream without frames / samples
    ``window past the end``                     the asked window ends after the media (beyond the
                                                1-frame / 1%-or-10-ms tolerance)
    ``unreadable frame``                        a frame inside the stream fails to decode
    ``unsupported format``                      a stream OpenCV cannot decode
    ``cannot write``                            ``write_video`` / ``write_audio`` failed
    ==========================================  =====================================================

    The library exception that caused it, if any, is chained (``err.__cause__``).

    Attributes:
        path: the file, as given.
        reason: what is wrong with it.
    """

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        super().__init__(str(path), reason)  # args = (path, reason): picklable across worker processes
        self.path = str(path)
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


@dataclass(frozen=True)
class VideoInfo:
    """What the container says about its (first) video stream.

    Attributes:
        duration: seconds; ``num_frames / fps`` when the container counts its frames, else the stream's
            (or container's) duration.
        fps: frames per second (FFmpeg's guess: the real frame rate, else the average one).
        num_frames: frames in the stream (counted by the container, else ``round(duration * fps)``).
        width: frame width, pixels.
        height: frame height, pixels.
        has_audio: the container also holds an audio stream.
    """

    duration: float
    fps: float
    num_frames: int
    width: int
    height: int
    has_audio: bool


@dataclass(frozen=True)
class AudioInfo:
    """An audio file's or a container's (first) audio stream.

    Attributes:
        duration: seconds.
        sample_rate: native sample rate, Hz.
        channels: number of channels.
    """

    duration: float
    sample_rate: int
    channels: int


# --------------------------------------------------------------------------------------------------
# Probing: turn every kind of bad file into a MediaError with a clear reason
# --------------------------------------------------------------------------------------------------


def sniff(head: bytes, strict: bool = True) -> str | None:
    """The format whose magic bytes open ``head`` (a file's first 64 bytes), or ``None`` when none does.

    Both modes recognise mp4 (an ISO box type at bytes 4-8), matroska, wav, avi, flac, ogg, png, jpeg, gif, pdf,
    zip and mp3 behind an ID3 tag.

    Args:
        head: the first bytes of a file.
        strict: ``True``, the library's file checks: any ISO box type counts as mp4 (fragmented MP4 too), and
            ``'text'`` means the bytes decode as printable UTF-8 (a character cut by the end of ``head``
            allowed). ``False``, the app's upload sniffer: only plain-MP4 box types count as mp4; webp, bmp, an
            MPEG audio frame sync (``'mp3'``), ADTS (``'aac'``) and a UTF-16 byte-order mark (``'text'``, which
            the upload's UTF-8 decoder then refuses with a clear message) are added; any other ``head`` without
            a NUL byte is ``'text'``, which may still fail to decode.
    """
    found = _signature(head, _ISO_BOXES if strict else _UPLOAD_ISO_BOXES)
    if found is not None:
        return found
    return _printable_text(head) if strict else _upload_signature(head)


def _signature(head: bytes, iso_boxes: tuple[bytes, ...]) -> str | None:
    """The signatures both modes of :func:`sniff` recognise."""
    if len(head) >= 8 and head[4:8] in iso_boxes:
        return "mp4"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "matroska"
    if head[:4] in (b"RIFF", b"RF64", b"BW64") and head[8:12] == b"WAVE":
        return "wav"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "avi"
    if head.startswith(b"fLaC"):
        return "flac"
    if head.startswith(b"OggS"):
        return "ogg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "gif"
    if head.startswith(b"%PDF"):
        return "pdf"
    if head.startswith(b"PK\x03\x04"):
        return "zip"
    if head.startswith(b"ID3"):
        return "mp3"
    return None


def _printable_text(head: bytes) -> str | None:
    """``'text'`` when ``head`` decodes as printable UTF-8 (the strict rule), else ``None``."""
    if b"\x00" in head:
        return None
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as e:
        if e.start < len(head) - 3:  # invalid UTF-8 (not just a character cut by the 64-byte limit)
            return None
        text = head[: e.start].decode("utf-8")
    if text and all(c.isprintable() or c in "\t\r\n" for c in text):
        return "text"
    return None


def _upload_signature(head: bytes) -> str | None:
    """The upload sniffer's extra signatures (none overlaps one of :func:`_signature`'s), else text without NUL."""
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head.startswith(b"BM") and len(head) >= 14 and head[6:10] == b"\x00\x00\x00\x00":
        return "bmp"
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "text"  # a UTF-16 byte-order mark: text, which the UTF-8 decoder then refuses clearly
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE6 in (0xE2, 0xE4, 0xE6):
        return "mp3"  # an MPEG-1/2 layer II/III frame sync (an ID3 tag is _signature's)
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xF6 == 0xF0:
        return "aac"  # ADTS frame sync (layer bits 00)
    if b"\x00" in head:
        return None
    return "text"


def _check_iso_boxes(path: Path, size: int) -> None:
    """Walks the top-level boxes of an MP4/MOV file; raises when one runs past the end of the file."""
    has_moov = False
    with open(path, "rb") as f:
        offset = 0
        for _ in range(100_000):
            if offset >= size:
                break
            f.seek(offset)
            header = f.read(16)
            if len(header) < 8:
                raise MediaError(path, f"truncated file: {size - offset} stray bytes after the last box")
            box_size, box_type = int.from_bytes(header[:4], "big"), header[4:8]
            name = box_type.decode("latin-1")
            if box_size == 1:  # 64-bit size follows the type
                if len(header) < 16:
                    raise MediaError(path, f"truncated file: box {name!r} header cut at byte {size}")
                box_size = int.from_bytes(header[8:16], "big")
            elif box_size == 0:  # the box extends to the end of the file
                box_size = size - offset
            if box_size < 8:
                raise MediaError(path, f"corrupt or unsupported container: box {name!r} of {box_size} bytes")
            if offset + box_size > size:
                raise MediaError(
                    path,
                    f"truncated file: box {name!r} needs {box_size} bytes at offset {offset}, "
                    f"the file ends after {size - offset}",
                )
            has_moov = has_moov or box_type in (b"moov", b"moof")
            offset += box_size
    if not has_moov:
        raise MediaError(path, "truncated file: no 'moov' box (the index of the file is missing)")


def _check_file(path: str | os.PathLike[str]) -> Path:
    """Existence, size, and "do the bytes match the suffix" checks shared by every reader."""
    p = Path(path)
    try:
        st = p.stat()
    except FileNotFoundError as e:
        raise MediaError(path, "file not found") from e
    except OSError as e:
        raise MediaError(path, f"cannot read: {e}") from e
    if not p.is_file():
        raise MediaError(path, "not a regular file")
    if st.st_size == 0:
        raise MediaError(path, "empty file (0 bytes)")
    try:
        with open(p, "rb") as f:
            head = f.read(64)
    except OSError as e:
        raise MediaError(path, f"cannot read: {e}") from e
    expected = _SUFFIX_KIND.get(p.suffix.lower())
    found = sniff(head)
    if expected is not None and found is not None and found != expected:
        raise MediaError(path, f"wrong extension: the contents look like {found}, not {p.suffix.lower()}")
    if found == "mp4":
        _check_iso_boxes(p, st.st_size)
    return p


@contextmanager
def _open_container(path: str | os.PathLike[str]) -> Iterator[av.container.InputContainer]:
    """Checks the file, then opens it with PyAV; FFmpeg errors become MediaError."""
    p = _check_file(path)
    try:
        container = av.open(str(p), mode="r")
    except av.FFmpegError as e:
        raise MediaError(path, f"corrupt or unsupported container: {e}") from e
    except OSError as e:
        raise MediaError(path, f"cannot read: {e}") from e
    try:
        yield container
    finally:
        container.close()


def _video_info(container: av.container.InputContainer, path: str | os.PathLike[str]) -> VideoInfo:
    if not container.streams.video:
        raise MediaError(path, "no video stream")
    stream = container.streams.video[0]
    rate = stream.guessed_rate or stream.average_rate or stream.base_rate
    if not rate or rate <= 0:
        raise MediaError(path, "corrupt or unsupported container: the video stream has no frame rate")
    fps = float(rate)
    if stream.duration is not None and stream.time_base is not None:
        duration = float(stream.duration * stream.time_base)
    elif container.duration is not None:
        duration = container.duration / av.time_base
    else:
        duration = 0.0
    if stream.frames > 0:
        num_frames = int(stream.frames)
        duration = num_frames / fps
    else:
        num_frames = round(duration * fps)
    if num_frames <= 0:
        raise MediaError(path, "zero duration: the video stream has no frames")
    cc = stream.codec_context
    return VideoInfo(
        duration=duration,
        fps=fps,
        num_frames=num_frames,
        width=int(cc.width),
        height=int(cc.height),
        has_audio=bool(container.streams.audio),
    )


def video_info(path: str | os.PathLike[str]) -> VideoInfo:
    """Reads a video container's header (no decoding).

    Args:
        path: a video file (mp4, webm, mkv, avi, mov, ...).

    Returns:
        The first video stream's :class:`VideoInfo`.

    Raises:
        MediaError: missing, empty, corrupt or truncated file, no video stream, zero duration.
    """
    with _open_container(path) as container:
        return _video_info(container, path)


def audio_info(path: str | os.PathLike[str]) -> AudioInfo:
    """Duration, native sample rate and channels of an audio file or of a container's audio track.

    WAV/FLAC/OGG are read with soundfile; containers (mp4, m4a, webm, mkv, avi, mov, ...) with PyAV, whose
    duration is the container's (an extracted track can differ by a few milliseconds of codec padding).

    Raises:
        MediaError: missing, empty, corrupt file, no audio stream, zero duration.
    """
    p = Path(path)
    if p.suffix.lower() in SOUNDFILE_SUFFIXES:
        return _soundfile_info(path)
    with _open_container(path) as container:
        if not container.streams.audio:
            raise MediaError(path, "no audio stream")
        stream = container.streams.audio[0]
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / av.time_base
        else:
            duration = 0.0
        if duration <= 0:
            raise MediaError(path, "zero duration: the audio stream is empty")
        return AudioInfo(duration=duration, sample_rate=int(stream.rate), channels=int(stream.channels))


def _soundfile_info(path: str | os.PathLike[str], shown: str | os.PathLike[str] | None = None) -> AudioInfo:
    """soundfile's view of an audio file; errors name ``shown`` (the original file for cached audio)."""
    shown = path if shown is None else shown
    _check_file(path)
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as e:
        raise MediaError(shown, f"corrupt or unsupported audio file: {e}") from e
    if info.frames <= 0 or info.samplerate <= 0:
        raise MediaError(shown, "zero duration: the file holds no samples")
    return AudioInfo(duration=info.frames / info.samplerate, sample_rate=int(info.samplerate), channels=info.channels)
