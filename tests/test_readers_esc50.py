"""Layout ``esc50``: the meta CSV, folds and the ESC-10 flag."""

from __future__ import annotations

from pathlib import Path

from layouts import esc50_layout

from mmv.data.readers.esc50 import read_esc50


def test_read_esc50(tmp_path: Path) -> None:
    root = esc50_layout(tmp_path / "ESC-50-master")
    df = read_esc50(root)
    assert df["clip_id"].tolist() == ["1-100032-A-0", "1-100038-A-14", "2-100648-A-43", "5-9032-A-0"]
    assert df["audio_path"].tolist() == [str(root / "audio" / f"{c}.wav") for c in df["clip_id"]]
    assert df["label_class"].tolist() == ["dog", "chirping_birds", "chainsaw", "dog"]
    assert df["label_target"].tolist() == [0, 14, 43, 0]
    assert df["fold"].tolist() == [1, 1, 2, 5]
    assert df["esc10"].tolist() == [True, False, False, True]
    assert set(df["split"]) == {"train"} and df["video_path"].isna().all()
    assert df.attrs["skipped"] == 1
    assert read_esc50(root, test_fold=1)["split"].tolist() == ["test", "test", "train", "train"]
