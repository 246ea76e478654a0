"""``mmv.data.media.probe.sniff``: one magic-byte sniffer, strict for the library's file checks, lenient for uploads.

Both modes share the media and document signatures; only the strict mode counts fragmented-MP4 boxes as mp4 and
asks text to decode as printable UTF-8; only the upload mode knows webp, bmp, bare MPEG / ADTS frames and UTF-16.
"""

from __future__ import annotations

import pytest

from mmv.data.media.probe import sniff

SHARED = {
    b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00": "mp4",
    b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81": "matroska",
    b"RIFF\x24\x08\x00\x00WAVEfmt ": "wav",
    b"RIFF\x24\x08\x00\x00AVI LIST": "avi",
    b"fLaC\x00\x00\x00\x22": "flac",
    b"OggS\x00\x02\x00\x00": "ogg",
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR": "png",
    b"\xff\xd8\xff\xe0\x00\x10JFIF": "jpeg",
    b"GIF89a\x10\x00\x10\x00": "gif",
    b"%PDF-1.7\n": "pdf",
    b"PK\x03\x04\x14\x00": "zip",
    b"ID3\x04\x00\x00\x00\x00\x00\x00": "mp3",
    b"a red circle moves to the right\n": "text",
    "un cercle rouge, café crème".encode(): "text",
}


@pytest.mark.parametrize("head,kind", SHARED.items(), ids=SHARED.values())
def test_both_modes_share_the_signatures(head, kind):
    assert sniff(head) == kind
    assert sniff(head, strict=False) == kind


@pytest.mark.parametrize(
    "head,strict,upload",
    [
        (b"\x00\x00\x00\x18stypmsdh\x00\x00\x00\x00", "mp4", None),  # fragmented MP4: the library's only
        (b"\x00\x00\x00\x10moof\x00\x00\x00\x10mfhd", "mp4", None),
        (b"RIFF\x24\x08\x00\x00WEBPVP8 ", None, "webp"),
        (b"BM\x36\x00\x0c\x00\x00\x00\x00\x00\x36\x00\x00\x00", None, "bmp"),
        (b"\xff\xfba\x00\x00", None, "mp3"),  # MPEG-1 layer III frame sync, no ID3 tag
        (b"\xff\xf1\x50\x80\x00", None, "aac"),  # ADTS
        ("a red circle".encode("utf-16"), None, "text"),  # a byte-order mark: the upload decoder refuses it
        ("café crème".encode("latin-1"), None, "text"),  # not UTF-8: the upload decoder says which byte
        (b"\x01\x02 control characters", None, "text"),
        (b"", None, "text"),
        (b"\x00\x01\x02\x03 binary", None, None),
    ],
)
def test_strict_and_upload_rules(head, strict, upload):
    assert sniff(head) == strict
    assert sniff(head, strict=True) == strict
    assert sniff(head, strict=False) == upload


def test_a_character_cut_by_the_end_of_the_head_is_still_text():
    head = ("x" * 62 + "\u00e9").encode()[:63]  # the last character's second byte is missing
    assert sniff(head) == "text"
    assert sniff(b"\xc3x" + b"y" * 40) is None  # an invalid byte inside the head is not
