"""Layout ``toyworld``: a stored manifest, rows whose files are missing dropped."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from layouts import touch

from mmv.data.manifest import save_manifest
from mmv.data.readers.toyworld import read_toyworld


def test_read_toyworld(tmp_path: Path) -> None:
    root = tmp_path / "toyworld"
    touch(root, "clips/000000.mp4", "clips/000001.mp4")
    df = pd.DataFrame(
        {
            "clip_id": ["toyworld/000000", "toyworld/000001", "toyworld/000002"],
            "dataset": ["toyworld"] * 3,
            "video_path": [f"clips/00000{i}.mp4" for i in range(3)],
            "start": [0.0] * 3,
            "end": [2.0] * 3,
            "captions": [[{"start": 0.0, "end": 2.0, "text": "a red cube spins"}], [], []],
            "split": ["train", "val", "test"],
            "label_shape": ["cube", "sphere", "cone"],
        }
    )
    df.attrs["root"] = str(root)  # what the relative paths above are relative to
    save_manifest(df, root / "manifest.parquet")
    got = read_toyworld(root)
    assert got["clip_id"].tolist() == ["toyworld/000000", "toyworld/000001"]
    assert got["video_path"].tolist() == [str(root / "clips/000000.mp4"), str(root / "clips/000001.mp4")]
    assert got["label_shape"].tolist() == ["cube", "sphere"]
    assert got["has_text"].tolist() == [True, False]
    assert got.attrs["skipped"] == 1 and got.attrs["root"] == str(root)
    assert read_toyworld(root / "manifest.parquet")["clip_id"].tolist() == got["clip_id"].tolist()
