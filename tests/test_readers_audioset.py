"""Layout ``audioset``: segment CSV, class names and every file naming of a downloaded segment."""

from __future__ import annotations

from pathlib import Path

from layouts import touch

from mmv.data.readers.audioset import read_audioset

SEGMENTS = """\
# Segments csv created Sun Mar  5 10:54:31 2017
# num_ytids=6, num_segs=6, num_unique_labels=3, num_positive_labels=8
# YTID, start_seconds, end_seconds, positive_labels
--PJHxphWEs, 30.000, 40.000, "/m/09x0r,/t/dd00088"
-0RWZT-miFs, 420.000, 430.000, "/m/03v3yw"
-1LrH01Ei1w, 0.500, 10.500, "/m/04rlf"
Y_abc, 10.000, 20.000, "/m/09x0r,/m/unknown"
bare_id, 60.000, 70.000, "/m/04rlf"
missing, 0.000, 10.000, "/m/04rlf"
--PJHxphWEs, 30.000, 40.000, "/m/09x0r"
"""

CLASS_LABELS = """\
index,mid,display_name
0,/m/09x0r,"Speech"
1,/t/dd00088,"Male speech, man speaking"
2,/m/03v3yw,"Keys jangling"
3,/m/04rlf,"Music"
"""


def _audioset_layout(tmp_path: Path) -> tuple[Path, Path, Path]:
    clips = tmp_path / "clips"
    touch(
        clips,
        "--PJHxphWEs_30000.flac",  # <YTID>_<start_ms>
        "--PJHxphWEs_30000.mp4",  # same stem, audio preferred
        "eval/-0RWZT-miFs_420.000.wav",  # <YTID>_<start as written>, in a sub-folder
        "Y-1LrH01Ei1w_0.500_10.500.wav",  # Y<YTID>_<start>_<end>
        "Y_abc_10.mp4",  # <YTID>_<integer start>, a YTID that itself starts with Y
        "bare_id.mp4",  # <YTID>
        "unrelated_0.wav",
    )
    segments = tmp_path / "eval_segments.csv"
    segments.write_text(SEGMENTS, encoding="utf-8")
    labels = tmp_path / "class_labels_indices.csv"
    labels.write_text(CLASS_LABELS, encoding="utf-8")
    return segments, clips, labels


def test_read_audioset(tmp_path: Path) -> None:
    segments, clips, labels = _audioset_layout(tmp_path)
    df = read_audioset(segments, clips, labels)
    assert df["clip_id"].tolist() == [
        "--PJHxphWEs_30000",
        "-0RWZT-miFs_420000",
        "-1LrH01Ei1w_500",
        "Y_abc_10000",
        "bare_id_60000",
    ]
    assert df["audio_path"].tolist() == [
        str(clips / "--PJHxphWEs_30000.flac"),
        str(clips / "eval" / "-0RWZT-miFs_420.000.wav"),
        str(clips / "Y-1LrH01Ei1w_0.500_10.500.wav"),
        None,
        None,
    ]
    assert df["video_path"].tolist() == [None, None, None, str(clips / "Y_abc_10.mp4"), str(clips / "bare_id.mp4")]
    assert df["label_class"].tolist() == [
        "Speech;Male speech, man speaking",
        "Keys jangling",
        "Music",
        "Speech;/m/unknown",
        "Music",
    ]
    assert df["label_mid"].tolist() == [
        "/m/09x0r;/t/dd00088",
        "/m/03v3yw",
        "/m/04rlf",
        "/m/09x0r;/m/unknown",
        "/m/04rlf",
    ]
    assert df["video_id"].tolist() == ["--PJHxphWEs", "-0RWZT-miFs", "-1LrH01Ei1w", "Y_abc", "bare_id"]
    assert df["start"].tolist() == [0.0] * 5 and df["end"].isna().all()  # files are the cut segments
    assert set(df["split"]) == {"test"}  # an *eval* CSV
    assert not df["has_text"].any()
    assert df.attrs["skipped"] == 1 and df.attrs["duplicates"] == 1


def test_read_audioset_options(tmp_path: Path) -> None:
    segments, clips, _ = _audioset_layout(tmp_path)
    df = read_audioset(segments, clips, split="train", full_videos=True)
    assert set(df["split"]) == {"train"}
    assert df["label_class"].tolist()[0] == "/m/09x0r;/t/dd00088"  # no names: the ids
    # only the bare <YTID> file is a whole video: it gets the segment's window
    assert list(zip(df["start"], df["end"].fillna(-1))) == [(0.0, -1), (0.0, -1), (0.0, -1), (0.0, -1), (60.0, 70.0)]
    renamed = tmp_path / "balanced_train_segments.csv"
    renamed.write_text(SEGMENTS, encoding="utf-8")
    assert set(read_audioset(renamed, clips)["split"]) == {"train"}
