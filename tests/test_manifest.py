"""The clip manifest: exact round trips through parquet and CSV, validation errors that name file, row and column."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pandas as pd
import pytest

from mmv.data.manifest import (
    MANIFEST_COLUMNS,
    REQUIRED_COLUMNS,
    captions_in_window,
    label_columns,
    load_manifest,
    normalize_manifest,
    save_manifest,
    validate_manifest,
)

CAPS = [
    {"start": 0.5, "end": 2.25, "text": 'say "hello", then…'},
    {"start": 3.0, "end": 3.0, "text": "日本語, naïve; ok"},
]


def _table(tmp_path: Path) -> pd.DataFrame:
    """Rows covering every column type: inside/outside paths, null end, labels of both kinds, fold, extras."""
    (tmp_path / "media" / "sub").mkdir(parents=True, exist_ok=True)
    inside = tmp_path / "media" / "sub" / "a.mp4"
    return pd.DataFrame(
        {
            "clip_id": ["000123", "b_1500", "c"],
            "dataset": ["toyworld", "howto100m", "esc50"],
            "video_path": [str(inside), "/data/elsewhere/b.webm", None],
            "audio_path": [None, None, str(tmp_path / "media" / "c.wav")],
            "image_path": [None, None, None],
            "start": [0.0, 1.5, 0.1 + 0.2],  # 0.30000000000000004 must survive CSV
            "end": [None, 4.7, 5.0],
            "captions": [CAPS, [], [{**CAPS[1], "kind": "extra keys are dropped"}]],
            "split": ["train", "val", "test"],
            "fold": [None, None, 3],
            "label_shape": ["cube", "sphere", "cube"],
            "label_target": [0, 7, 49],
            "label_pitch_hz": [220.0, 330.0, 440.0],  # a float label stays float, even when integral
            "label_count": pd.array([1, None, 3], dtype="Int64"),  # an int label with a gap
            "note": ["x", "y,z", None],  # CSV cannot tell "" from null: both read back as null
        }
    )


def test_columns_and_labels() -> None:
    assert MANIFEST_COLUMNS == (
        "clip_id",
        "dataset",
        "video_path",
        "audio_path",
        "image_path",
        "start",
        "end",
        "captions",
        "split",
        "fold",
    )
    assert set(REQUIRED_COLUMNS) <= set(MANIFEST_COLUMNS)
    df = pd.DataFrame(columns=["clip_id", "label_a", "label_", "x_label_b", "label_b"])
    assert label_columns(df) == ["label_a", "label_b"]


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_round_trip_is_exact(tmp_path: Path, suffix: str) -> None:
    df = _table(tmp_path)
    path = tmp_path / f"manifest{suffix}"
    save_manifest(df, path)
    loaded = load_manifest(path)

    expected = normalize_manifest(df)
    pd.testing.assert_frame_equal(loaded, expected)
    labels = ["label_shape", "label_target", "label_pitch_hz", "label_count"]
    assert list(loaded.columns) == [*MANIFEST_COLUMNS, *labels, "note", "has_text"]
    assert label_columns(loaded) == labels
    assert loaded["label_pitch_hz"].dtype == "float64" and loaded["label_count"].dtype == "Int64"
    assert loaded.attrs["root"] == str(tmp_path)
    assert loaded["video_path"].tolist() == [str(tmp_path / "media/sub/a.mp4"), "/data/elsewhere/b.webm", None]
    assert loaded["captions"].tolist() == [CAPS, [], [CAPS[1]]]
    assert loaded["has_text"].tolist() == [True, False, True]
    assert math.isnan(loaded["end"][0]) and loaded["end"][1] == 4.7
    assert loaded["start"][2] == 0.1 + 0.2
    assert loaded["fold"].tolist()[2] == 3 and loaded["fold"].isna().tolist() == [True, True, False]
    assert loaded["clip_id"].tolist() == ["000123", "b_1500", "c"]  # never read back as the number 123
    assert loaded["label_target"].tolist() == [0, 7, 49]
    assert sorted(os.listdir(tmp_path)) == sorted(["media", path.name])  # no temporary file left behind


def test_parquet_and_csv_give_equal_frames(tmp_path: Path) -> None:
    df = _table(tmp_path)
    save_manifest(df, tmp_path / "m.parquet")
    save_manifest(df, tmp_path / "m.csv")
    pd.testing.assert_frame_equal(load_manifest(tmp_path / "m.parquet"), load_manifest(tmp_path / "m.csv"))
    # and a frame loaded from one format re-saves to the other unchanged
    save_manifest(load_manifest(tmp_path / "m.parquet"), tmp_path / "again.csv")
    pd.testing.assert_frame_equal(load_manifest(tmp_path / "again.csv"), load_manifest(tmp_path / "m.csv"))


def test_stored_layout(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    df = _table(tmp_path)
    save_manifest(df, tmp_path / "m.parquet")
    save_manifest(df, tmp_path / "m.csv")
    schema = pq.read_schema(tmp_path / "m.parquet")
    assert schema.field("captions").type == pa.list_(
        pa.struct([("start", pa.float64()), ("end", pa.float64()), ("text", pa.string())])
    )
    assert "has_text" not in schema.names
    stored = pq.read_table(tmp_path / "m.parquet").column("video_path").to_pylist()
    assert stored == ["media/sub/a.mp4", "/data/elsewhere/b.webm", None]  # relative only inside the directory

    raw = pd.read_csv(tmp_path / "m.csv", dtype=str, keep_default_na=False)
    assert raw["video_path"].tolist() == ["media/sub/a.mp4", "/data/elsewhere/b.webm", ""]
    assert raw["audio_path"].tolist() == ["", "", "media/c.wav"]
    assert json.loads(raw["captions"][0]) == CAPS
    assert raw["captions"][1] == "[]"


def test_hand_written_csv_takes_defaults(tmp_path: Path) -> None:
    (tmp_path / "m.csv").write_text(
        "clip_id,dataset,split,video_path,label_class\n"
        "007,folder,train,clips/a.mp4,NA\n"
        "008,folder,test,/abs/b.mp4,null\n",
        encoding="utf-8",
    )
    df = load_manifest(tmp_path / "m.csv")
    assert df["clip_id"].tolist() == ["007", "008"]
    assert df["video_path"].tolist() == [str(tmp_path / "clips" / "a.mp4"), "/abs/b.mp4"]
    assert df["audio_path"].tolist() == [None, None] and df["image_path"].tolist() == [None, None]
    assert df["start"].tolist() == [0.0, 0.0] and df["end"].isna().all()
    assert df["captions"].tolist() == [[], []] and df["has_text"].tolist() == [False, False]
    assert df["fold"].isna().all()
    assert df["label_class"].tolist() == ["NA", "null"]  # only an empty field is null


def _csv(tmp_path: Path, header: str, *rows: str) -> Path:
    path = tmp_path / "bad.csv"
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


H = "clip_id,dataset,video_path,start,end,captions,split"
OK = 'ok,folder,a.mp4,0,1,"[]",train'


@pytest.mark.parametrize(
    ("row", "clip_id", "column", "problem"),
    [
        ('x,folder,a.mp4,0,1,"[]",training', "x", "split", "train, val, test"),
        ('x,folder,a.mp4,-0.5,1,"[]",train', "x", "start", ">= 0"),
        ('x,folder,a.mp4,,1,"[]",train', "x", "start", "finite"),
        ('x,folder,a.mp4,2,2,"[]",train', "x", "end", "> start"),
        ('x,folder,a.mp4,2,1,"[]",train', "x", "end", "> start"),
        ('x,folder,a.mp4,0,1,"[{""start"": 2, ""end"": 1, ""text"": ""t""}]",train', "x", "captions", "caption 0"),
        ('x,folder,a.mp4,0,1,"[{""start"": ""0"", ""end"": 1, ""text"": ""t""}]",train', "x", "captions", "numbers"),
        ('x,folder,a.mp4,0,1,"[{""start"": 0, ""end"": 1, ""text"": 5}]",train', "x", "captions", "text"),
        ('x,folder,a.mp4,0,1,"[{""start"": 0, ""end"": 1}]",train', "x", "captions", "lacks text"),
        ('x,folder,a.mp4,0,1,"{""start"": 0}",train', "x", "captions", "list"),
        ('x,folder,a.mp4,0,1,"[{oops",train', "x", "captions", "invalid JSON"),
        ('x,folder,,0,1,"[]",train', "x", "video_path", "no media"),
        ('ok,folder,b.mp4,0,1,"[]",val', "ok", "clip_id", "duplicate"),
        (',folder,b.mp4,0,1,"[]",val', None, "clip_id", "non-empty"),
    ],
)
def test_validation_names_file_clip_and_column(
    tmp_path: Path, row: str, clip_id: str | None, column: str, problem: str
) -> None:
    path = _csv(tmp_path, H, OK, row)
    with pytest.raises(ValueError) as info:
        load_manifest(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    assert f"clip_id {clip_id!r}" in message if clip_id else "clip_id" in message
    assert repr(column) in message or column in message
    assert problem in message


def test_validation_missing_columns(tmp_path: Path) -> None:
    path = _csv(tmp_path, "clip_id,dataset,video_path", "a,folder,a.mp4")
    with pytest.raises(ValueError, match=rf"^{path}: missing required column 'split'$"):
        load_manifest(path)
    path = _csv(tmp_path, "clip_id,dataset,split", "a,folder,train")
    with pytest.raises(ValueError, match="missing required column: one of 'video_path'"):
        load_manifest(path)
    with pytest.raises(ValueError, match="unknown manifest format"):
        load_manifest(tmp_path / "m.json")


def test_parquet_validation_and_direct_frames(tmp_path: Path) -> None:
    df = _table(tmp_path)
    df.loc[1, "split"] = "dev"
    with pytest.raises(ValueError, match=r"m\.parquet: clip_id 'b_1500', column 'split'"):
        save_manifest(df, tmp_path / "m.parquet")
    assert not os.path.exists(tmp_path / "m.parquet")
    with pytest.raises(ValueError, match=r"^here: clip_id 'b_1500', column 'split'"):
        validate_manifest(df, "here")
    validate_manifest(_table(tmp_path), "here")


def test_save_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import pyarrow.parquet as pq

    path = tmp_path / "m.parquet"
    save_manifest(_table(tmp_path), path)
    before = path.read_bytes()

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(pq, "write_table", boom)
    df = _table(tmp_path).iloc[:1]
    with pytest.raises(OSError, match="disk full"):
        save_manifest(df, path)
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["m.parquet", "media"]


def test_empty_manifest_round_trips(tmp_path: Path) -> None:
    df = _table(tmp_path).iloc[:0]
    for name in ("e.parquet", "e.csv"):
        save_manifest(df, tmp_path / name)
        loaded = load_manifest(tmp_path / name)
        assert len(loaded) == 0 and list(loaded.columns)[: len(MANIFEST_COLUMNS)] == list(MANIFEST_COLUMNS)


CANDIDATES = [
    {"start": 0.0, "end": 1.0, "text": "a"},  # distance to [5, 8]: 4
    {"start": 4.0, "end": 5.0, "text": "b"},  # touches: 0
    {"start": 6.0, "end": 7.0, "text": "c"},  # inside: 0
    {"start": 9.0, "end": 10.0, "text": "d"},  # 1
    {"start": 3.0, "end": 4.0, "text": "e"},  # 1 (tie with d, earlier start first)
    {"start": 20.0, "end": 30.0, "text": "f"},  # 12
]


@pytest.mark.parametrize(
    ("start", "end", "k", "texts"),
    [
        (5.0, 8.0, 1, ["b"]),
        (5.0, 8.0, 2, ["b", "c"]),
        (5.0, 8.0, 4, ["b", "c", "e", "d"]),
        (5.0, 8.0, 10, ["b", "c", "e", "d", "a", "f"]),
        (5.0, 8.0, 0, []),
        (25.0, 26.0, 2, ["f", "d"]),
        (8.5, None, 3, ["d", "f", "c"]),  # open end: everything after 8.5 overlaps
        (8.5, float("nan"), 3, ["d", "f", "c"]),
    ],
)
def test_captions_in_window(start: float, end: float | None, k: int, texts: list[str]) -> None:
    got = captions_in_window(CANDIDATES, start, end, k)
    assert [c["text"] for c in got] == texts
    assert all(set(c) == {"start", "end", "text"} for c in got)
    assert captions_in_window([], start, end, k) == []
