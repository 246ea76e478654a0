"""``python -m training.prepare``: layouts on disk -> a valid manifest, with counts, skips and probing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from layouts import esc50_layout

from mmv.data.manifest import load_manifest
from mmv.data.media import write_audio
from mmv.data.readers.esc50 import read_esc50
from training.prepare import check_files, main


def _howto_layout(tmp_path: Path) -> tuple[Path, Path]:
    videos = tmp_path / "howto" / "videos"
    videos.mkdir(parents=True)
    captions = {}
    for i in range(12):
        vid = f"yt{i:02d}"
        if i != 11:  # listed in the captions, never downloaded
            (videos / f"{vid}.mp4").write_bytes(b"\0")
        captions[vid] = {"start": [1.0, 30.0], "end": [2.0, 34.0], "text": [f"step one of {vid}", "step two"]}
    path = tmp_path / "howto" / "caption.json"
    path.write_text(json.dumps(captions), encoding="utf-8")
    return videos, path


def test_prepare_esc50(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = esc50_layout(tmp_path / "ESC-50-master")
    out = tmp_path / "out" / "esc50.parquet"
    assert main(["esc50", str(root), "--test-fold", "5", "--out", str(out), "--no-progress"]) == 0
    df = load_manifest(out)
    pd.testing.assert_frame_equal(df, read_esc50(root, test_fold=5))
    assert df["split"].tolist() == ["train", "train", "train", "test"]
    printed = capsys.readouterr().out
    assert f"wrote 4 clips (esc50) to {out}" in printed
    assert "  train: 3\n  val: 0\n  test: 1\n" in printed
    assert "skipped: 1 (listed but not found: 1, missing on check: 0)" in printed


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_prepare_howto100m(tmp_path: Path, capsys: pytest.CaptureFixture[str], suffix: str) -> None:
    videos, captions = _howto_layout(tmp_path)
    out = tmp_path / "howto" / f"manifest{suffix}"
    argv = ["howto100m", str(videos), str(captions), "--out", str(out), "--val-fraction", "0.25", "--no-progress"]
    assert main(argv) == 0
    df = load_manifest(out)
    assert len(df) == 22 and df["clip_id"].is_unique
    assert df["video_path"].map(lambda p: Path(p).parent == videos).all()
    assert (df.groupby("video_id")["split"].nunique() == 1).all()
    assert df["has_text"].all() and all(len(c) == 2 for c in df["captions"])
    first = df.iloc[0]
    assert (first.clip_id, first.start, first.end) == ("yt00_0_3200", 0.0, 3.2)
    n_val = int((df["split"] == "val").sum())
    printed = capsys.readouterr().out
    assert f"  train: {22 - n_val}\n  val: {n_val}\n  test: 0\n" in printed
    assert "skipped: 1 (" in printed
    # stored relative to the manifest's directory
    if suffix == ".csv":
        assert pd.read_csv(out)["video_path"][0] == "videos/yt00.mp4"

    assert main(["howto100m", str(videos), str(captions), "--per-video", "--out", str(out), "--no-progress"]) == 0
    assert load_manifest(out)["clip_id"].tolist() == [f"yt{i:02d}" for i in range(11)]


def test_prepare_probe_drops_unreadable(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``--probe`` opens each file with mmv.data.media and drops what it cannot read."""
    root = esc50_layout(tmp_path / "esc")
    tone = np.sin(np.linspace(0, 2 * np.pi * 440, 16000)).astype(np.float32) * 0.5
    for name in ("1-100032-A-0.wav", "1-100038-A-14.wav", "5-9032-A-0.wav"):
        write_audio(root / "audio" / name, tone, 16000)  # real WAVs; 2-100648-A-43.wav stays one zero byte
    out = tmp_path / "esc.parquet"
    assert main(["esc50", str(root), "--probe", "--out", str(out), "--no-progress"]) == 0
    df = load_manifest(out)
    assert sorted(Path(p).name for p in df["audio_path"]) == ["1-100032-A-0.wav", "1-100038-A-14.wav", "5-9032-A-0.wav"]
    assert "skipped: 2 (listed but not found: 1, missing on check: 0, unreadable: 1)" in capsys.readouterr().out


def test_check_files_counts_missing(tmp_path: Path) -> None:
    root = esc50_layout(tmp_path / "esc")
    df = read_esc50(root)
    (root / "audio" / "2-100648-A-43.wav").unlink()  # vanished after listing
    kept, missing, unreadable = check_files(df, progress=False)
    assert kept["clip_id"].tolist() == ["1-100032-A-0", "1-100038-A-14", "5-9032-A-0"]
    assert (missing, unreadable) == (1, 0)
    assert kept.attrs["skipped"] == 1


def test_prepare_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["folder", str(tmp_path / "nope"), "--out", str(tmp_path / "m.parquet"), "--no-progress"]) == 2
    assert "not a directory" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["folder", str(tmp_path / "empty"), "--out", str(tmp_path / "m.parquet"), "--no-progress"]) == 1
    assert "no clips" in capsys.readouterr().err
    assert not (tmp_path / "m.parquet").exists()
    with pytest.raises(SystemExit):
        main(["esc50", str(tmp_path)])  # --out is required
