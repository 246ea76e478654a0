"""The SRT and WebVTT parsers of subtitle sidecars (mmv.data.readers.subtitles)."""

from __future__ import annotations

import pytest
from layouts import cues

from mmv.data.readers.subtitles import parse_srt, parse_vtt

SRT_CASES = {
    "basic": (
        "1\n00:00:01,000 --> 00:00:02,500\nHello there\n\n2\n00:00:03,000 --> 00:00:04,000\nGeneral Kenobi\n",
        cues((1.0, 2.5, "Hello there"), (3.0, 4.0, "General Kenobi")),
    ),
    "bom_crlf_multiline": (
        "\ufeff1\r\n00:00:01,000 --> 00:00:02,000\r\nfirst line\r\nsecond line\r\n\r\n"
        "2\r\n01:02:03,040 --> 01:02:04,000\r\nlate\r\n",
        cues((1.0, 2.0, "first line second line"), (3723.04, 3724.0, "late")),
    ),
    "tags_entities_coordinates": (
        "1\n00:00:00,500 --> 00:00:01,000 X1:100 X2:200 Y1:10 Y2:20\n"
        '{\\an8}<i>Whispers</i> <font color="#ff0000">&amp; red</font>\n',
        cues((0.5, 1.0, "Whispers & red")),
    ),
    "no_numbers_dot_millis_no_hours_cr": (
        "00:00:01.250 --> 00:00:02.000\rone\r\r00:10,5 --> 00:11,75\rtwo\r",
        cues((1.25, 2.0, "one"), (10.5, 11.75, "two")),
    ),
    "missing_blank_line_and_bad_cues": (
        "1\n00:00:01,000 --> 00:00:02,000\nkept\n2\n00:00:03,000 --> 00:00:04,000\nalso kept\n\n"
        "3\n00:00:05,000 --> 00:00:04,000\nends before it starts\n\n"
        "4\n00:00:06,000 --> 00:00:07,000\n<i></i>\n\n"
        "garbage block\nwithout timing\n\n"
        "5\n00:00:08,000 --> 00:00:09,000\n  last  \n\n\n",
        cues((1.0, 2.0, "kept"), (3.0, 4.0, "also kept"), (8.0, 9.0, "last")),
    ),
    "empty": ("", []),
    "bom_only": ("\ufeff\r\n", []),
}


@pytest.mark.parametrize("case", list(SRT_CASES))
def test_parse_srt(case: str) -> None:
    text, expected = SRT_CASES[case]
    assert parse_srt(text) == expected


VTT_CASES = {
    "basic_no_hours": (
        "WEBVTT\n\n00:01.000 --> 00:04.000\nNever drink liquid nitrogen.\n\n"
        "00:05.000 --> 00:09.000\n- It will perforate your stomach.\n- You could die.\n",
        cues(
            (1.0, 4.0, "Never drink liquid nitrogen."), (5.0, 9.0, "- It will perforate your stomach. - You could die.")
        ),
    ),
    "header_text_ids_settings": (
        "\ufeffWEBVTT - Some title\r\nKind: captions\r\nLanguage: en\r\n\r\n"
        "intro\r\n00:00:00.000 --> 00:00:01.500 align:start position:10% line:0\r\nHi\r\n\r\n"
        "2\r\n01:00:00.000 --> 01:00:02.000 vertical:rl\r\nan hour in\r\n",
        cues((0.0, 1.5, "Hi"), (3600.0, 3602.0, "an hour in")),
    ),
    "note_style_region_blocks": (
        "WEBVTT\n\nSTYLE\n::cue { color: lime }\n\nREGION\nid:fred width:40%\n\n"
        "NOTE This is a comment\nover two lines\n\n00:02.000 --> 00:03.000 region:fred\nafter notes\n\nNOTE end\n",
        cues((2.0, 3.0, "after notes")),
    ),
    "tags_voices_inline_timestamps": (
        "WEBVTT\n\n00:00:01.000 --> 00:00:03.000\n<v Roger Bingham>We are in New York City</v>\n\n"
        "00:00:03.000 --> 00:00:05.000\nso<00:00:03.500><c> we</c><00:00:04.000><c.colorE5E5E5> go</c> &lt;3\n\n"
        "00:00:05.000 --> 00:00:06.000\n<b><u>bold</u></b> &nbsp;end\n",
        cues(
            (1.0, 3.0, "We are in New York City"),
            (3.0, 5.0, "so we go <3"),
            (5.0, 6.0, "bold end"),
        ),
    ),
    "header_only": ("WEBVTT\n", []),
}


@pytest.mark.parametrize("case", list(VTT_CASES))
def test_parse_vtt(case: str) -> None:
    text, expected = VTT_CASES[case]
    assert parse_vtt(text) == expected
