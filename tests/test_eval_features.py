"""Frozen features: per-window representations equal the model's own ``repr`` of each window, the on-disk cache
is hit without running the model and missed whenever the model, the media or the parameters change."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from train_helpers import SAMPLE, single_thread

from mmv import create_model
from mmv.data.dataset import ClipDataset
from mmv.data.manifest import load_manifest
from mmv.data.media import write_video
from mmv.eval.datasets import read_image
from mmv.eval.features import (
    FeatureOptions,
    Features,
    extract_features,
    load_features,
    model_fingerprint,
    save_features,
)

T, S = 4, 32


@pytest.fixture(scope="module")
def model():
    single_thread()
    torch.manual_seed(0)
    return create_model("tiny_fac", video={"num_frames": T, "frame_size": S}, audio={"duration": 1.0}).eval()


@pytest.fixture(scope="module")
def clips() -> pd.DataFrame:
    return load_manifest(SAMPLE).iloc[:6].reset_index(drop=True)


class Calls:
    """Counts forward passes of a module (a hook, so nothing about the model changes)."""

    def __init__(self, module: torch.nn.Module) -> None:
        self.n = 0
        self.handle = module.register_forward_hook(lambda *_: self.count())

    def count(self) -> None:
        self.n += 1


def test_video_features_are_each_windows_repr(model, clips) -> None:
    f = extract_features(model, clips, "video", FeatureOptions(num_windows=2, batch_size=5))
    assert f.features.shape == (6, 2, model.video.output_dim) and f.features.dtype == np.float32
    assert f.mask.all() and f.clip_id == clips["clip_id"].tolist() and not f.from_cache
    data = ClipDataset(clips, video_cfg=model.config.video, mode="eval", num_windows=2)
    with torch.no_grad():
        for row in (0, 5):
            video = torch.stack([data[2 * row + k]["video"] for k in range(2)])
            ref = model.encode_video(video)["repr"].numpy()
            np.testing.assert_allclose(f.features[row], ref, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(f.mean(), f.features.mean(axis=1), rtol=1e-6)


def test_the_cache_is_hit_without_running_the_model(model, clips, tmp_path: Path) -> None:
    calls = Calls(model.audio)
    two = FeatureOptions(num_windows=2, cache_dir=tmp_path)
    first = extract_features(model, clips, "audio", two)
    assert calls.n > 0 and not first.from_cache and Path(first.path).parent == tmp_path
    calls.n = 0
    second = extract_features(model, clips, "audio", two)
    assert calls.n == 0 and second.from_cache and second.path == first.path
    np.testing.assert_array_equal(second.features, first.features)
    np.testing.assert_array_equal(second.mask, first.mask)
    # Other windows, other clips, other weights: another key, the model runs again.
    assert not extract_features(model, clips, "audio", FeatureOptions(num_windows=1, cache_dir=tmp_path)).from_cache
    assert not extract_features(model, clips.iloc[:3], "audio", two).from_cache
    calls.handle.remove()
    changed = create_model("tiny_fac", video={"num_frames": T, "frame_size": S}, audio={"duration": 1.0}).eval()
    changed.load_state_dict(model.state_dict())
    assert model_fingerprint(changed) == model_fingerprint(model)
    with torch.no_grad():
        next(changed.audio.parameters()).add_(0.01)
    assert model_fingerprint(changed) != model_fingerprint(model)
    assert not extract_features(changed, clips, "audio", two).from_cache
    assert len(list(tmp_path.glob("audio-*.safetensors"))) == 4


def test_a_changed_media_file_is_a_cache_miss(model, tmp_path: Path) -> None:
    frames = np.zeros((8, S, S, 3), dtype=np.uint8)
    path = tmp_path / "a.mp4"
    write_video(path, frames, 4.0)
    df = pd.DataFrame({"clip_id": ["a"], "video_path": [str(path)], "start": [0.0], "end": [np.nan], "split": ["test"]})
    one = FeatureOptions(num_windows=1, cache_dir=tmp_path)
    assert not extract_features(model, df, "video", one).from_cache
    assert extract_features(model, df, "video", one).from_cache
    write_video(path, frames + 200, 4.0)  # re-encoded: new size and modification time
    os.utime(path, ns=(1, 1))
    assert not extract_features(model, df, "video", one).from_cache


def test_unreadable_windows_are_masked(model, clips, tmp_path: Path) -> None:
    silent = tmp_path / "silent.mp4"
    write_video(silent, np.zeros((16, S, S, 3), dtype=np.uint8), 4.0)  # 4 s without an audio track
    df = clips.iloc[:2].copy()
    df.loc[1, "video_path"] = str(silent)
    df.loc[2] = df.loc[0]
    df.loc[2, ["clip_id", "video_path"]] = ["missing", str(tmp_path / "nope.mp4")]
    audio = extract_features(model, df, "audio", FeatureOptions(num_windows=2))
    assert audio.mask.tolist() == [[True, True], [False, False], [False, False]]
    assert audio.valid.tolist() == [True, False, False] and not audio.features[1:].any()
    video = extract_features(model, df, "video", FeatureOptions(num_windows=2))
    assert video.valid.tolist() == [True, True, False]
    with pytest.raises(ValueError, match="no audio window of any"):
        extract_features(model, df.iloc[1:], "audio", FeatureOptions(num_windows=1))


def test_image_features_from_files_and_frames(model, clips, tmp_path: Path) -> None:
    import cv2

    paths = []
    for i, colour in enumerate([(255, 0, 0), (0, 0, 255)]):
        image = np.zeros((40, 60, 3), dtype=np.uint8)
        image[:, 30:] = colour
        paths.append(str(tmp_path / f"{i}.png"))
        cv2.imwrite(paths[-1], image[..., ::-1])
    df = pd.DataFrame({"clip_id": ["x", "y"], "image_path": paths, "split": ["train", "test"]})
    f = extract_features(model, df, "image", FeatureOptions(image_mode="naive"))
    assert f.features.shape == (2, 1, model.video.output_dim) and f.params["image_source"] == "files"
    with torch.no_grad():
        ref = model.encode_image(torch.stack([read_image(p, S) for p in paths]), mode="naive")["repr"].numpy()
    np.testing.assert_allclose(f.features[:, 0], ref, rtol=1e-4, atol=1e-5)
    # A video manifest gives the middle frame of each window.
    frames = extract_features(model, clips.iloc[:2], "image", FeatureOptions(num_windows=2, image_mode="naive"))
    data = ClipDataset(clips.iloc[:2], video_cfg=model.config.video, mode="eval", num_windows=2)
    with torch.no_grad():
        middle = data[3]["video"][T // 2]
        ref = model.encode_image(middle[None], mode="naive")["repr"].numpy()[0]
    np.testing.assert_allclose(frames.features[1, 1], ref, rtol=1e-4, atol=1e-5)
    assert frames.params["image_source"] == "frames"


def test_files_round_trip_and_refuse_foreign_files(tmp_path: Path) -> None:
    f = Features(np.arange(12, dtype=np.float32).reshape(2, 3, 2), np.array([[1, 0, 1], [1, 1, 1]], bool), ["a", "b"])
    f.key, f.params = "k" * 64, {"modality": "video"}
    back = load_features(save_features(f, tmp_path / "f.safetensors"))
    np.testing.assert_array_equal(back.features, f.features)
    np.testing.assert_array_equal(back.mask, f.mask)
    assert (back.clip_id, back.key, back.params, back.from_cache) == (["a", "b"], f.key, f.params, True)
    assert back.mean().tolist() == [[2.0, 3.0], [8.0, 9.0]]  # masked window 1 of clip a left out
    from safetensors.numpy import save_file

    save_file({"x": np.zeros(1, np.float32)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(ValueError, match="not an mmv-features file"):
        load_features(tmp_path / "other.safetensors")
