"""What every reader shares: manifests that survive save/load, absolute paths from relative arguments."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
from layouts import esc50_layout, howto_layout, touch, ucf101_layout

from mmv.data.manifest import load_manifest, save_manifest
from mmv.data.readers.esc50 import read_esc50
from mmv.data.readers.folders import read_class_folders, read_video_folder
from mmv.data.readers.howto100m import read_howto100m
from mmv.data.readers.ucf_hmdb import read_ucf_hmdb


def test_readers_round_trip_through_files(tmp_path: Path) -> None:
    """Every reader's output survives save/load unchanged (paths made relative and back)."""
    root = esc50_layout(tmp_path / "esc")
    for df in (read_esc50(root, test_fold=5), read_ucf_hmdb(*ucf101_layout(tmp_path), dataset="ucf101")):
        for name in ("m.parquet", "m.csv"):
            save_manifest(df, tmp_path / name)
            loaded = load_manifest(tmp_path / name)
            pd.testing.assert_frame_equal(loaded, df)
            assert all(math.isnan(e) for e in loaded["end"])


def test_readers_return_absolute_paths_from_relative_arguments(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    esc50_layout(tmp_path / "esc")
    touch(tmp_path, "mine/a.mp4", "cls/dog/b.wav")
    videos, captions = howto_layout(tmp_path, "json")
    frames = [
        read_esc50("esc"),
        read_video_folder("mine"),
        read_class_folders("cls", modality="audio"),
        read_howto100m("videos", "caption.json"),
        read_ucf_hmdb(*[p.relative_to(tmp_path) for p in ucf101_layout(tmp_path)]),
    ]
    for df in frames:
        paths = [p for col in ("video_path", "audio_path") for p in df[col] if p is not None]
        assert paths and all(Path(p).is_absolute() and Path(p).is_file() for p in paths)
        assert Path(df.attrs["root"]).is_absolute()
