"""CachedClipDataset: the same items as ClipDataset, decoded once; bad files skipped and counted the same way."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch.utils.data import DataLoader

from mmv.config import AudioConfig, TextConfig, VideoConfig
from mmv.data.collate import collate_clips
from mmv.data.dataset import ClipDataset
from mmv.data.manifest import load_manifest, save_manifest
from mmv.data.media import write_audio, write_video
from mmv.data.memory_cache import CachedClipDataset
from mmv.data.transforms import TrainVideoTransform
from mmv.tokenizer import Vocabulary

FPS, NUM_FRAMES, SIZE, SR = 8, 32, 48, 16000
VIDEO = VideoConfig(num_frames=8, frame_size=32, fps=4.0)  # a 2-s window, every second source frame
AUDIO = AudioConfig(sample_rate=SR, duration=2.0, fmax=7600.0)
TEXT = TextConfig(max_words=6)
_LEVELS = np.array([16, 80, 144, 208])
COLOURS = np.array([(r, g, b) for r in _LEVELS for g in _LEVELS for b in (40, 200)], dtype=np.uint8)
CAPTIONS = [
    {"start": 0.0, "end": 0.8, "text": "red ball appears"},
    {"start": 1.0, "end": 1.5, "text": "the ball rolls left"},
    {"start": 2.5, "end": 3.0, "text": "a green box"},
]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("cache-media")
    frames = np.broadcast_to(COLOURS[:, None, None, :], (NUM_FRAMES, SIZE, SIZE, 3)).copy()
    frames[:, :, : SIZE // 2] //= 2  # a left/right difference, so crops matter
    t = np.arange(NUM_FRAMES // FPS * SR) / SR
    out = {}
    for i in range(3):
        out[f"good{i}"] = root / f"good{i}.mp4"
        tone = (0.4 * np.sin(2 * np.pi * (300.0 + 100 * i) * t)).astype(np.float32)
        write_video(out[f"good{i}"], frames, FPS, audio=tone, sample_rate=SR, crf=18)
    out["ramp"] = root / "ramp.wav"
    write_audio(out["ramp"], (t / 8.0).astype(np.float32), SR)
    out["silent"] = root / "silent.mp4"
    write_video(out["silent"], frames, FPS)
    out["empty"] = root / "empty.mp4"
    out["empty"].write_bytes(b"")
    out["missing"] = root / "missing.mp4"
    return out


def _manifest(tmp_path: Path, rows: list[dict]) -> pd.DataFrame:
    full = []
    for row in rows:
        r = {"dataset": "test", "start": 0.0, "end": 4.0, "captions": CAPTIONS, "split": "train", "label_k": 1}
        r.update(row)
        full.append(r)
    save_manifest(pd.DataFrame(full), tmp_path / "manifest.parquet")
    return load_manifest(tmp_path / "manifest.parquet")


@pytest.fixture
def vocab() -> Vocabulary:
    return Vocabulary.build([c["text"] for c in CAPTIONS])


def _assert_same(a: dict | None, b: dict | None) -> None:
    if a is None or b is None:
        assert a is None and b is None
        return
    assert list(a) == list(b)
    for key in a:
        if isinstance(a[key], torch.Tensor):
            assert torch.equal(a[key], b[key]), key
        else:
            assert a[key] == b[key], key


def test_items_equal_those_of_clip_dataset(tmp_path: Path, files: dict[str, Path], vocab: Vocabulary) -> None:
    df = _manifest(
        tmp_path,
        [
            {"clip_id": "a", "video_path": str(files["good0"])},
            {"clip_id": "b", "video_path": str(files["good1"]), "start": 0.5, "end": 3.5},  # region inside the file
            {"clip_id": "c", "video_path": str(files["good2"]), "audio_path": str(files["ramp"])},
            {"clip_id": "d", "video_path": str(files["silent"])},  # no sound track
        ],
    )
    kw = {"vocab": vocab, "text_cfg": TEXT, "num_captions": 2, "cache_dir": tmp_path / "flac"}
    for mode, windows in (("train", 1), ("eval", 3)):
        ref = ClipDataset(df, VIDEO, AUDIO, mode=mode, num_windows=windows, **kw)
        cached = CachedClipDataset(df, VIDEO, AUDIO, mode=mode, num_windows=windows, **kw)
        assert len(cached) == len(ref) == 4 * windows
        for epoch in (0, 1):
            ref.set_epoch(epoch)
            cached.set_epoch(epoch)
            for i in range(len(ref)):
                _assert_same(cached[i], ref[i])
    assert cached[3 * 3]["has_audio"] is False and not cached[3 * 3]["audio"].any()
    assert cached.cache_bytes == sum(f.nbytes for f in cached._frames) + sum(
        a.nbytes for a in cached._audio if a is not None
    )


def test_positional_arguments_and_a_custom_transform(tmp_path: Path, files: dict[str, Path]) -> None:
    df = _manifest(tmp_path, [{"clip_id": "a", "video_path": str(files["good0"])}])
    tf = TrainVideoTransform(32, scale=(0.5, 1.0), color_prob=0.0)
    ref = ClipDataset(df, VIDEO, AUDIO, None, None, 4, "train", "train", tf, cache_dir=tmp_path / "flac")
    cached = CachedClipDataset(df, VIDEO, AUDIO, None, None, 4, "train", "train", tf, cache_dir=tmp_path / "flac")
    _assert_same(cached[0], ref[0])


def test_smaller_cached_frames(tmp_path: Path, files: dict[str, Path]) -> None:
    df = _manifest(tmp_path, [{"clip_id": "a", "video_path": str(files["good0"])}])
    cached = CachedClipDataset(df, VIDEO, None, cache_frame_size=24, mode="eval")
    assert cached._frames[0].shape == (NUM_FRAMES, 24, 24, 3)
    s = cached[0]
    assert tuple(s["video"].shape) == (8, 32, 32, 3)  # the transform still gives the model's size
    ref = ClipDataset(df, VIDEO, None, mode="eval")[0]
    # Same frames in time (the colour of each frame), only the spatial resampling differs.
    diff = (s["video"].float().mean((1, 2)) - ref["video"].float().mean((1, 2))).abs()
    assert float(diff.max()) < 4.0


def test_bad_files_are_skipped_and_counted_like_clip_dataset(tmp_path: Path, files: dict[str, Path]) -> None:
    names = ["good0", "empty", "good1", "missing"]
    df = _manifest(tmp_path, [{"clip_id": n, "video_path": str(files[n])} for n in names])
    ref = ClipDataset(df, VIDEO, AUDIO, cache_dir=tmp_path / "flac")
    cached = CachedClipDataset(df, VIDEO, AUDIO, cache_dir=tmp_path / "flac")
    for i in range(len(ref)):
        _assert_same(cached[i], ref[i])
    assert cached.num_skipped == ref.num_skipped == 2
    assert set(cached.bad_samples) == set(ref.bad_samples) == {str(files["empty"]), str(files["missing"])}
    batch = collate_clips([cached[i] for i in range(len(cached))])
    assert batch["num_skipped"] == 2 and batch["clip_id"] == ["good0", "good1"]


def test_parallel_fill_and_loader_workers(tmp_path: Path, files: dict[str, Path]) -> None:
    df = _manifest(tmp_path, [{"clip_id": f"c{i}", "video_path": str(files[f"good{i}"])} for i in range(3)])
    serial = CachedClipDataset(df, VIDEO, AUDIO, cache_dir=tmp_path / "flac")
    parallel = CachedClipDataset(df, VIDEO, AUDIO, cache_dir=tmp_path / "flac", cache_workers=2)
    for i in range(3):
        _assert_same(parallel[i], serial[i])
    loader = DataLoader(parallel, batch_size=3, num_workers=2, collate_fn=collate_clips)
    batch = next(iter(loader))
    assert torch.equal(batch["video"], torch.stack([serial[i]["video"] for i in range(3)]))


def test_memory_bound(tmp_path: Path, files: dict[str, Path]) -> None:
    df = _manifest(tmp_path, [{"clip_id": "a", "video_path": str(files["good0"])}])
    with pytest.raises(MemoryError, match="max_bytes"):
        CachedClipDataset(df, VIDEO, None, max_bytes=1000)
    with pytest.raises(ValueError, match="cache_frame_size"):
        CachedClipDataset(df, VIDEO, None, cache_frame_size=0)
