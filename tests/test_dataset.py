"""ClipDataset / collate / MixedDataset on real MP4s: right windows, bad files skipped and counted, workers."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from mmv.config import AudioConfig, TextConfig, VideoConfig
from mmv.data.collate import collate_clips
from mmv.data.dataset import ClipDataset, SkipCounter
from mmv.data.manifest import load_manifest, save_manifest
from mmv.data.media import write_audio, write_video
from mmv.data.mixed import MixedDataset
from mmv.data.transforms import TrainVideoTransform
from mmv.tokenizer import Vocabulary

FPS = 8
NUM_FRAMES = 32  # 4-s files
SIZE = 48
SR = 16000
VIDEO = VideoConfig(num_frames=16, frame_size=32, fps=8.0)  # a 2-s window
AUDIO = AudioConfig(sample_rate=SR, duration=2.0, fmax=7600.0)
TEXT = TextConfig(max_words=6)

# 32 flat colours, any two >= 64 apart in some channel: the decoded colour names the source frame.
_LEVELS = np.array([16, 80, 144, 208])
COLOURS = np.array([(r, g, b) for r in _LEVELS for g in _LEVELS for b in (40, 200)], dtype=np.uint8)

CAPTIONS = [
    {"start": 0.0, "end": 0.8, "text": "red ball appears"},
    {"start": 1.0, "end": 1.5, "text": "the ball rolls left"},
    {"start": 2.5, "end": 3.0, "text": "a green box"},
    {"start": 3.5, "end": 4.0, "text": "and it stops"},
    {"start": 3.9, "end": 4.0, "text": "the the of"},  # stop words only: encodes to padding
]


def _which_frame(video: torch.Tensor) -> list[int]:
    mean = video.double().reshape(len(video), -1, 3).mean(1).numpy()
    return np.abs(mean[:, None, :] - COLOURS[None].astype(float)).sum(-1).argmin(1).tolist()


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("media")
    frames = np.broadcast_to(COLOURS[:, None, None, :], (NUM_FRAMES, SIZE, SIZE, 3)).copy()
    t = np.arange(NUM_FRAMES // FPS * SR) / SR
    tone = (0.5 * np.sin(2 * np.pi * 440.0 * t)).astype(np.float32)
    out = {}
    for i in range(4):
        out[f"good{i}"] = root / f"good{i}.mp4"
        write_video(out[f"good{i}"], frames, FPS, audio=tone, sample_rate=SR, crf=18)
    out["ramp"] = root / "ramp.wav"  # sample value = time / 8, so a window's samples give its start
    write_audio(out["ramp"], (t / 8.0).astype(np.float32), SR)
    out["silent"] = root / "silent.mp4"
    write_video(out["silent"], frames, FPS)
    out["empty"] = root / "empty.mp4"
    out["empty"].write_bytes(b"")
    data = out["good0"].read_bytes()
    out["truncated"] = root / "truncated.mp4"
    out["truncated"].write_bytes(data[: len(data) // 2])
    out["missing"] = root / "missing.mp4"
    return out


def _row(clip_id: str, video: Path | None, **kw) -> dict:
    row = {"clip_id": clip_id, "dataset": "test", "video_path": None if video is None else str(video), "start": 0.0}
    row.update({"end": 4.0, "captions": [], "split": "train", "label_shape": "ball", "label_n": 1})
    row.update(kw)
    return row


def _manifest(tmp_path: Path, rows: list[dict]) -> pd.DataFrame:
    save_manifest(pd.DataFrame(rows), tmp_path / "manifest.parquet")
    return load_manifest(tmp_path / "manifest.parquet")


@pytest.fixture
def vocab() -> Vocabulary:
    return Vocabulary.build([c["text"] for c in CAPTIONS])


@pytest.fixture
def mixed_manifest(tmp_path: Path, files: dict[str, Path]) -> pd.DataFrame:
    """4 good clips and 3 broken files (empty, truncated, missing), interleaved."""
    names = ["good0", "empty", "good1", "truncated", "good2", "missing", "good3"]
    return _manifest(tmp_path, [_row(n, files[n], captions=CAPTIONS) for n in names])


def _no_colour(size: int = 32) -> TrainVideoTransform:
    return TrainVideoTransform(size, color_prob=0.0, scale=(0.5, 1.0))


# ---------------------------------------------------------------------------------------------- samples


def test_sample_shapes_and_dtypes(tmp_path: Path, files: dict[str, Path], vocab: Vocabulary) -> None:
    df = _manifest(tmp_path, [_row("a", files["good0"], captions=CAPTIONS)])
    ds = ClipDataset(df, VIDEO, AUDIO, vocab, TEXT, num_captions=4, cache_dir=tmp_path / "cache")
    assert len(ds) == 1
    s = ds[0]
    assert s["video"].dtype == torch.uint8 and tuple(s["video"].shape) == (16, 32, 32, 3)
    assert s["audio"].dtype == torch.float32 and tuple(s["audio"].shape) == (32000,)
    assert s["text"].dtype == torch.int64 and tuple(s["text"].shape) == (4, 6)
    assert s["text_mask"].dtype == torch.bool and tuple(s["text_mask"].shape) == (4,)
    assert s["has_text"] is True and s["has_audio"] is True
    assert (s["clip_id"], s["dataset"], s["index"], s["window"]) == ("a", "test", 0, 0)
    assert s["labels"] == {"shape": "ball", "n": 1}
    assert 0.0 <= s["start"] <= 2.0 and isinstance(s["start"], float)
    # Audio follows the file's tone (440 Hz) and the video its colours, in order.
    spectrum = np.abs(np.fft.rfft(s["audio"].numpy()))
    assert np.fft.rfftfreq(32000, 1 / SR)[spectrum.argmax()] == pytest.approx(440.0, abs=1.0)


def test_modalities_absent_from_the_config_are_omitted(tmp_path: Path, files: dict[str, Path]) -> None:
    df = _manifest(tmp_path, [_row("a", files["good0"], captions=CAPTIONS)])
    s = ClipDataset(df, VIDEO)[0]
    assert "audio" not in s and "text" not in s and "text_mask" not in s and s["has_text"] is True
    s = ClipDataset(df, None, AUDIO, cache_dir=tmp_path / "cache")[0]
    assert "video" not in s and tuple(s["audio"].shape) == (32000,)
    with pytest.raises(ValueError, match="vocab"):
        ClipDataset(df, VIDEO, text_cfg=TEXT)


def test_eval_windows_are_linearly_spaced_and_in_sync(tmp_path: Path, files: dict[str, Path]) -> None:
    df = _manifest(tmp_path, [_row("a", files["good0"], audio_path=str(files["ramp"]))])
    ds = ClipDataset(df, VIDEO, AUDIO, mode="eval", num_windows=3)
    assert len(ds) == 3
    for k, start in enumerate([0.0, 1.0, 2.0]):  # linspace(0, 4 - 2, 3)
        s = ds[k]
        assert (s["index"], s["window"], s["start"]) == (0, k, start)
        assert _which_frame(s["video"]) == [int(start * FPS) + j for j in range(16)]
        expected = (start + np.arange(32000) / SR) / 8.0  # the ramp: value = time / 8
        np.testing.assert_allclose(s["audio"].numpy(), expected, atol=1e-4)


def test_audio_longer_than_video_is_centred_and_clamped(tmp_path: Path, files: dict[str, Path]) -> None:
    df = _manifest(tmp_path, [_row("a", files["good0"], audio_path=str(files["ramp"]))])
    audio = AudioConfig(sample_rate=SR, duration=3.0, fmax=7600.0)
    ds = ClipDataset(df, VIDEO, audio, mode="eval", num_windows=3)
    for k, audio_start in enumerate([0.0, 0.5, 1.0]):  # video [k, k+2] -> centre k+1 -> [k-0.5, k+2.5] clamped
        assert ds[k]["audio"][0].item() == pytest.approx(audio_start / 8.0, abs=1e-4)


def test_short_region_is_padded(tmp_path: Path, files: dict[str, Path]) -> None:
    df = _manifest(tmp_path, [_row("a", files["good0"], audio_path=str(files["ramp"]), start=1.0, end=2.5)])
    s = ClipDataset(df, VIDEO, AUDIO, mode="eval")[0]
    assert _which_frame(s["video"]) == [8 + j for j in range(12)] + [19] * 4  # 1.5 s = 12 frames, then repeats
    audio = s["audio"].numpy()
    np.testing.assert_allclose(audio[:24000], (1.0 + np.arange(24000) / SR) / 8.0, atol=1e-4)
    assert not audio[24000:].any()


def test_open_end_is_probed_and_silent_video_has_no_audio(tmp_path: Path, files: dict[str, Path]) -> None:
    df = _manifest(tmp_path, [_row("a", files["silent"], end=None)])
    ds = ClipDataset(df, VIDEO, AUDIO, mode="eval", num_windows=2, cache_dir=tmp_path / "cache")
    s = ds[1]
    assert s["start"] == 2.0 and _which_frame(s["video"])[0] == 16  # the window ends at the probed 4.0 s
    assert s["has_audio"] is False and not s["audio"].any()
    assert ds.num_skipped == 0


def test_random_windows_are_deterministic_per_seed_epoch_index(tmp_path: Path, files: dict[str, Path]) -> None:
    df = _manifest(tmp_path, [_row(f"c{i}", files[f"good{i}"]) for i in range(4)])
    a = ClipDataset(df, VIDEO, seed=3)  # default training transform: random crop and colour
    b = ClipDataset(df, VIDEO, seed=3)
    first = [a[i] for i in range(4)]
    assert all(torch.equal(x["video"], b[i]["video"]) and x["start"] == b[i]["start"] for i, x in enumerate(first))
    a.set_epoch(1)
    assert a.epoch == 1
    assert [a[i]["start"] for i in range(4)] != [x["start"] for x in first]
    plain = ClipDataset(df, VIDEO, transform=_no_colour(), seed=3)
    for i in range(4):  # the frames read are those shown at start + j / fps
        s = plain[i]
        assert s["start"] == first[i]["start"]  # the window is drawn before the transform
        assert _which_frame(s["video"]) == [math.floor(s["start"] * FPS) + j for j in range(16)]


def test_k_nearest_captions_with_mask_and_no_text(tmp_path: Path, files: dict[str, Path], vocab: Vocabulary) -> None:
    df = _manifest(
        tmp_path,
        [_row("narrated", files["good0"], captions=CAPTIONS), _row("silent_text", files["good1"], captions=[])],
    )
    ds = ClipDataset(df, VIDEO, None, vocab, TEXT, num_captions=4, mode="eval", num_windows=3)
    s = ds[0]  # window [0, 2]: captions 0 and 1 overlap it, then caption 2 (0.5 s away), then 3 (1.5 s)
    expected = vocab.encode_batch([[c["text"] for c in (CAPTIONS[0], CAPTIONS[1], CAPTIONS[2], CAPTIONS[3])]], 6)
    assert torch.equal(s["text"], expected[0])
    assert s["text_mask"].tolist() == [True, True, True, True]
    s = ds[2]  # window [2, 4]: captions 2, 3, 4 overlap (4 is all stop words -> masked), then caption 1
    assert s["text_mask"].tolist() == [True, True, False, True]
    assert not s["text"][2].any()
    s = ds[3]  # no narration
    assert s["has_text"] is False and not s["text"].any() and not s["text_mask"].any()
    ds2 = ClipDataset(df, VIDEO, None, vocab, TEXT, num_captions=8, mode="eval")
    assert ds2[0]["text_mask"].tolist() == [True, True, True, True, False, False, False, False]


# ---------------------------------------------------------------------------------------------- collate


def test_collate_clips_stacks_and_drops_none() -> None:
    def sample(i: int, label: object) -> dict:
        return {
            "video": torch.full((2, 4, 4, 3), i, dtype=torch.uint8),
            "audio": torch.zeros(10),
            "text": torch.zeros(3, 5, dtype=torch.long),
            "text_mask": torch.tensor([True, False, False]),
            "has_text": i % 2 == 0,
            "clip_id": f"c{i}",
            "index": i,
            "start": 0.5 * i,
            "labels": {"shape": "ball", "n": i, "pitch": label},
        }

    batch = collate_clips([sample(0, 1.5), None, sample(1, 2), None])
    assert batch["num_skipped"] == 2
    assert tuple(batch["video"].shape) == (2, 2, 4, 4, 3) and batch["video"].dtype == torch.uint8
    assert tuple(batch["audio"].shape) == (2, 10) and tuple(batch["text"].shape) == (2, 3, 5)
    assert tuple(batch["text_mask"].shape) == (2, 3)
    assert batch["has_text"].tolist() == [True, False] and batch["has_text"].dtype == torch.bool
    assert batch["clip_id"] == ["c0", "c1"] and batch["index"].tolist() == [0, 1]
    assert batch["start"].dtype == torch.float64
    assert batch["labels"]["shape"] == ["ball", "ball"]
    assert batch["labels"]["n"].dtype == torch.int64 and batch["labels"]["n"].tolist() == [0, 1]
    assert batch["labels"]["pitch"].dtype == torch.float64
    assert collate_clips([None, None]) == {"num_skipped": 2, "clip_id": []}
    with pytest.raises(KeyError):
        collate_clips([sample(0, 1.0), {"clip_id": "x"}])


# ---------------------------------------------------------------------------------------------- bad media


def test_bad_files_are_skipped_and_counted_in_process(
    mixed_manifest: pd.DataFrame, files: dict[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    ds = ClipDataset(mixed_manifest, VIDEO, transform=_no_colour())
    loader = DataLoader(ds, batch_size=3, collate_fn=collate_clips)
    for epoch in range(2):
        ds.set_epoch(epoch)
        with caplog.at_level("WARNING", logger="mmv.data.dataset"):
            batches = list(loader)
        assert sorted(cid for b in batches for cid in b["clip_id"]) == ["good0", "good1", "good2", "good3"]
        assert sum(b["num_skipped"] for b in batches) == 3
    assert ds.num_skipped == 6
    assert len([r for r in caplog.records if "skipping clip" in r.getMessage()]) == 3  # once per file
    bad = ds.bad_samples
    assert set(bad) == {str(files["empty"]), str(files["truncated"]), str(files["missing"])}
    assert bad[str(files["empty"])].startswith("empty file")
    assert bad[str(files["truncated"])].startswith("truncated")
    assert bad[str(files["missing"])].startswith("file not found")


def test_bad_files_are_skipped_and_counted_with_workers(mixed_manifest: pd.DataFrame, files: dict[str, Path]) -> None:
    ds = ClipDataset(mixed_manifest, VIDEO, transform=_no_colour())
    loader = DataLoader(ds, batch_size=2, num_workers=2, collate_fn=collate_clips, persistent_workers=True)
    for epoch in range(2):
        ds.set_epoch(epoch)
        batches = list(loader)
        assert sorted(c for b in batches for c in b["clip_id"]) == ["good0", "good1", "good2", "good3"]
        assert sum(b["num_skipped"] for b in batches) == 3
        assert ds.num_skipped == 3 * (epoch + 1)  # every skip of every worker, read in the main process
    assert set(ds.bad_samples) == {str(files["empty"]), str(files["truncated"]), str(files["missing"])}
    per_worker = ds.skips.per_worker()
    assert sum(per_worker.values()) == 6 and len(per_worker) == 2  # both workers skipped something


def test_skip_counter_first_record_and_reset(tmp_path: Path) -> None:
    counter = SkipCounter(tmp_path / "skips")
    assert counter.record("/x.mp4", "empty file (0 bytes)", "x", 0) is True
    assert counter.record("/x.mp4", "empty file (0 bytes)", "x", 0) is False
    assert counter.count == 2 and counter.bad_samples() == {"/x.mp4": "empty file (0 bytes)"}
    counter.reset()
    assert counter.count == 0
    own = SkipCounter()
    directory = own.directory
    del own
    assert not Path(directory).exists()  # a temporary directory goes with its counter


def test_set_epoch_reaches_persistent_workers(tmp_path: Path, files: dict[str, Path]) -> None:
    df = _manifest(tmp_path, [_row(f"c{i}", files[f"good{i}"]) for i in range(4)])
    ds = ClipDataset(df, VIDEO, transform=_no_colour(), seed=5)
    reference = ClipDataset(df, VIDEO, transform=_no_colour(), seed=5)
    loader = DataLoader(ds, batch_size=2, num_workers=2, collate_fn=collate_clips, persistent_workers=True)
    for epoch in (0, 1, 2):
        ds.set_epoch(epoch)
        reference.set_epoch(epoch)
        got = {int(i): (s, v) for b in loader for i, s, v in zip(b["index"], b["start"].tolist(), b["video"])}
        for i in range(4):
            want = reference[i]
            assert got[i][0] == want["start"] and torch.equal(got[i][1], want["video"])


def test_distributed_ranks_see_disjoint_items(tmp_path: Path, files: dict[str, Path]) -> None:
    df = _manifest(tmp_path, [_row(f"c{i}", files[f"good{i}"]) for i in range(4)])
    ds = ClipDataset(df, VIDEO, mode="eval", num_windows=2)
    seen = []
    for rank in range(2):
        sampler = DistributedSampler(ds, num_replicas=2, rank=rank, shuffle=True, seed=0)
        sampler.set_epoch(3)
        batch = collate_clips([ds[i] for i in sampler])
        seen.append({(c, w) for c, w in zip(batch["clip_id"], batch["window"].tolist())})
    assert len(seen[0]) == len(seen[1]) == 4
    assert not seen[0] & seen[1]
    assert seen[0] | seen[1] == {(f"c{i}", w) for i in range(4) for w in range(2)}


# ---------------------------------------------------------------------------------------------- mixing


class _Indexed(Dataset):
    def __init__(self, n: int, name: str) -> None:
        self.n, self.name = n, name

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict:
        return {"clip_id": f"{self.name}{i}", "index": i}


def test_mixed_dataset_proportions_and_coverage() -> None:
    mixed = MixedDataset([(_Indexed(40, "ht"), 0.7), (_Indexed(13, "as"), 0.3)], length=1000, seed=1)
    counts = {0: 0, 1: 0}
    per_item: dict[str, int] = {}
    for i in range(len(mixed)):
        s = mixed[i]
        counts[s["source"]] += 1
        per_item[s["clip_id"]] = per_item.get(s["clip_id"], 0) + 1
    assert counts == {0: 700, 1: 300}
    # Within a part, a full permutation passes before any item repeats: counts differ by at most 1.
    ht = [per_item[f"ht{i}"] for i in range(40)]
    assert max(ht) - min(ht) <= 1 and sum(ht) == 700
    # The order is shuffled per epoch and the stream goes on across epochs.
    parts0, items0 = mixed.schedule(0)
    parts1, items1 = mixed.schedule(1)
    assert not np.array_equal(parts0, parts1)
    small = MixedDataset([(_Indexed(10, "a"), 1.0), (_Indexed(10, "b"), 1.0)], length=10, seed=0)
    seen = [set(small.schedule(e)[1][small.schedule(e)[0] == 0].tolist()) for e in (0, 1)]
    assert seen[0] | seen[1] == set(range(10)) and not seen[0] & seen[1]  # epochs 0 and 1: one full pass
    with pytest.raises(ValueError):
        MixedDataset([(_Indexed(3, "a"), -1.0)], length=4)


def test_mixed_dataset_of_clip_datasets_with_and_without_text(
    tmp_path: Path, files: dict[str, Path], vocab: Vocabulary
) -> None:
    ht = _manifest(tmp_path / "ht", [_row(f"ht{i}", files[f"good{i}"], captions=CAPTIONS) for i in range(2)])
    aset = _manifest(tmp_path / "as", [_row(f"as{i}", files[f"good{i + 2}"]) for i in range(2)])
    counter = SkipCounter()
    parts = [
        (ClipDataset(ht, VIDEO, None, vocab, TEXT, transform=_no_colour(), skip_counter=counter), 0.5),
        (ClipDataset(aset, VIDEO, None, vocab, TEXT, transform=_no_colour(), skip_counter=counter), 0.5),
    ]
    mixed = MixedDataset(parts, length=8, seed=0)
    loader = DataLoader(mixed, batch_size=4, num_workers=2, collate_fn=collate_clips)
    batches = list(loader)
    clip_ids = [c for b in batches for c in b["clip_id"]]
    has_text = torch.cat([b["has_text"] for b in batches]).tolist()
    source = torch.cat([b["source"] for b in batches]).tolist()
    assert source.count(0) == 4 and source.count(1) == 4
    assert has_text == [s == 0 for s in source]
    assert all(c.startswith("ht") == (s == 0) for c, s in zip(clip_ids, source))
    text = torch.cat([b["text"] for b in batches])
    mask = torch.cat([b["text_mask"] for b in batches])
    no_text = torch.tensor(source) == 1
    assert not text[no_text].any() and not mask[no_text].any() and mask[~no_text].any(dim=1).all()
    assert mixed.num_skipped == 0 and mixed.bad_samples == {}
