"""Subtitle files: small SubRip (``.srt``) and WebVTT (``.vtt``) parsers, for the sidecars of a video folder.

Layout (a sidecar beside its video, see :func:`mmv.data.readers.folders.read_video_folder`)::

    talk.webm
    talk.srt             # or talk.vtt, or talk.<language>.srt / .vtt

    1
    00:00:01,000 --> 00:00:02,500
    Hello there

Every parser returns ``[{"start", "end", "text"}]`` (seconds), the ``captions`` of a manifest row.
"""

from __future__ import annotations

import html
import os
import re
from collections.abc import Iterator
from pathlib import Path

from mmv.data.readers.common import read_text, squash_spaces

SUBTITLE_EXTENSIONS: tuple[str, ...] = (".srt", ".vtt")

_TIMESTAMP = r"(?:(\d+):)?(\d{1,2}):(\d{1,2})(?:[,.](\d+))?"
_TIMING_LINE = re.compile(rf"^\s*{_TIMESTAMP}\s*-->\s*{_TIMESTAMP}(?:\s.*)?$")
_TAG = re.compile(r"<[^>]*>|\{\\[^}]*\}")


def _seconds(h: str | None, m: str, s: str, frac: str | None) -> float:
    value = int(h or 0) * 3600 + int(m) * 60 + int(s)
    if frac:
        value += int(frac) / 10 ** len(frac)
    return round(value, 6)


def _cue(times: tuple[float, float], body: list[str]) -> list[dict]:
    """The cue (a list of one) with its text cleaned, or none when the text is empty or it ends before it starts."""
    start, end = times
    text = squash_spaces(html.unescape(" ".join(_TAG.sub("", line) for line in body)))
    return [{"start": start, "end": end, "text": text}] if text and end >= start else []


def _blocks(text: str) -> Iterator[list[str]]:
    """The blocks of non-blank lines (separated by blank lines)."""
    block: list[str] = []
    for line in text.split("\n"):
        if line.strip():
            block.append(line)
        elif block:
            yield block
            block = []
    if block:
        yield block


def _block_cues(block: list[str]) -> list[dict]:
    """The cues of one block: each timing line opens a cue whose text runs to the next timing line."""
    cues: list[dict] = []
    current: tuple[float, float] | None = None
    body: list[str] = []
    for line in block:
        match = _TIMING_LINE.match(line)
        if match is None:
            if current is not None:
                body.append(line)
            continue
        if current is not None:
            if body and body[-1].strip().isdigit():  # the next cue's number, no blank line before it
                body.pop()
            cues += _cue(current, body)
        g = match.groups()
        current = (_seconds(*g[:4]), _seconds(*g[4:]))
        body = []
    if current is not None:
        cues += _cue(current, body)
    return cues


def _parse_cues(text: str) -> list[dict]:
    """Shared SRT/WebVTT cue parser.

    Blocks are separated by blank lines. Inside a block each timing line (``a --> b [settings]``) opens a cue
    whose text is the following lines up to the next timing line or the end of the block; a purely numeric
    line right before a timing line is a cue number, dropped. Lines before a block's first timing line (cue
    numbers, VTT identifiers) and blocks without timing lines (``WEBVTT`` header, ``NOTE``, ``STYLE``,
    ``REGION``) are ignored. Cues whose end is before their start, or whose text is empty once tags are
    stripped, are dropped.
    """
    text = text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    return [cue for block in _blocks(text) for cue in _block_cues(block)]


def parse_srt(text: str) -> list[dict]:
    """Parses SubRip subtitles into ``[{"start", "end", "text"}]`` (seconds, file order).

    Handles a UTF-8 BOM, CRLF or CR line ends, multi-line cues (joined with a space), missing cue numbers,
    ``.`` or ``,`` before the milliseconds, optional hours, coordinates after the timing, and strips styling
    (``<i>``, ``<font ...>``, ``{\\an8}``) and HTML entities. Malformed blocks are skipped, never fatal.
    """
    return _parse_cues(text)


def parse_vtt(text: str) -> list[dict]:
    """Parses WebVTT subtitles into ``[{"start", "end", "text"}]`` (seconds, file order).

    Handles the ``WEBVTT`` header, a BOM, CRLF, cue identifiers, cue settings after the timing
    (``align:start position:10%``), optional hours (``mm:ss.ttt``), ``NOTE``/``STYLE``/``REGION`` blocks,
    multi-line cues, and strips tags (``<i>``, ``<c.color>``, ``<v Speaker>``, inline ``<00:00:01.000>``)
    and HTML entities (``&amp;``).
    """
    return _parse_cues(text)


def read_subtitles(path: str | os.PathLike) -> list[dict]:
    """Captions from a ``.srt`` or ``.vtt`` file (UTF-8, else cp1252 or Latin-1), sorted by start time."""
    path = Path(path)
    text = read_text(path)
    cues = parse_vtt(text) if path.suffix.lower() == ".vtt" else parse_srt(text)
    return sorted(cues, key=lambda c: (c["start"], c["end"]))
