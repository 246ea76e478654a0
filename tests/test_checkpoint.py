"""Checkpoints: bit-exact round trips, and pickles refused without running them."""

from __future__ import annotations

import json
import os
import pickle

import pytest
import torch

from mmv.checkpoint import (
    CONFIG_FILE,
    VOCAB_FILE,
    WEIGHTS_FILE,
    CheckpointError,
    convert_torch_state_dict,
    load_checkpoint,
    read_checkpoint_header,
    save_checkpoint,
)
from mmv.factory import create_model
from mmv.tokenizer import Vocabulary


class _Exploit:
    """Unpickling this writes a file: the proof that a loader executed code."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _inputs(model, batch=2):
    cfg = model.config
    g = torch.Generator().manual_seed(0)
    video = torch.rand(batch, cfg.video.num_frames, cfg.video.frame_size, cfg.video.frame_size, 3, generator=g)
    audio = torch.rand(batch, cfg.audio.num_samples, generator=g) * 2 - 1
    text = torch.randint(0, cfg.text.vocab_size, (batch, 3, cfg.text.max_words), generator=g)
    return video, audio, text


def _outputs(model, video, audio, text):
    with torch.no_grad():
        return model.encode_video(video)["repr"], model.encode_audio(audio)["repr"], model.encode_text(text)["repr"]


@pytest.mark.parametrize("preset", ["tiny_fac", "tiny_tsm_fac"])
def test_round_trip_is_bit_exact(tmp_path, preset):
    torch.manual_seed(0)
    model = create_model(preset)
    model.vocab = Vocabulary.build(["a red ball bounces", "the blue cube slides left"])
    video, audio, text = _inputs(model)
    model.train()
    _outputs(model, video, audio, text)  # move BN running statistics away from their init
    model.eval()
    before = _outputs(model, video, audio, text)

    path = save_checkpoint(model, tmp_path / "ckpt", metadata={"step": 7})
    assert sorted(p.name for p in path.iterdir()) == sorted([CONFIG_FILE, WEIGHTS_FILE, VOCAB_FILE])
    loaded = load_checkpoint(path)
    after = _outputs(loaded, video, audio, text)
    for b, a in zip(before, after):
        assert torch.equal(b, a)
    for (k1, v1), (k2, v2) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert k1 == k2 and torch.equal(v1, v2)
    assert loaded.config == model.config
    assert loaded.vocab.words == model.vocab.words
    assert loaded.checkpoint_metadata == {"step": 7}
    assert not loaded.training
    # The weights file alone also points at its checkpoint.
    assert torch.equal(_outputs(load_checkpoint(path / WEIGHTS_FILE), video, audio, text)[0], before[0])


def test_save_replaces_existing_checkpoint(tmp_path):
    model = create_model("tiny_fac", modalities=["text"])
    save_checkpoint(model, tmp_path / "c")
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    save_checkpoint(model, tmp_path / "c")
    loaded = load_checkpoint(tmp_path / "c")
    for a, b in zip(model.parameters(), loaded.parameters()):
        assert torch.equal(a, b)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c"]  # no temporary directories left behind


def test_header_records_config_and_versions(tmp_path):
    model = create_model("tiny_fac", modalities=["video"])
    save_checkpoint(model, tmp_path / "c")
    header = read_checkpoint_header(tmp_path / "c")
    assert header["format"] == "mmv-checkpoint" and header["format_version"] == 1
    assert header["config"]["modalities"] == ["video"]
    assert header["torch_version"] == torch.__version__


@pytest.mark.parametrize("name", ["model.pt", "model.pkl", "weights.safetensors"])
def test_pickle_posing_as_checkpoint_is_refused_without_running(tmp_path, name):
    marker = tmp_path / "pwned"
    bad = tmp_path / name
    bad.write_bytes(pickle.dumps(_Exploit(str(marker)), protocol=2))
    with pytest.raises(CheckpointError, match="pickle"):
        load_checkpoint(bad)
    assert not marker.exists()


def test_torch_save_pickle_in_checkpoint_dir_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    torch.save({"x": _Exploit(str(marker))}, ckpt / WEIGHTS_FILE)  # a zip pickle under the right name
    (ckpt / CONFIG_FILE).write_text(
        json.dumps(
            {"format": "mmv-checkpoint", "format_version": 1, "config": create_model("tiny_fac").config.to_dict()}
        )
    )
    with pytest.raises(CheckpointError):
        load_checkpoint(ckpt)
    with pytest.raises(CheckpointError, match="pickle"):
        load_checkpoint(ckpt / WEIGHTS_FILE)
    assert not marker.exists()


def test_convert_uses_weights_only(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    torch.save({"w": _Exploit(str(marker))}, evil)
    cfg = create_model("tiny_fac", modalities=["text"]).config
    with pytest.raises(CheckpointError, match="not a plain tensor state dict"):
        convert_torch_state_dict(evil, tmp_path / "out", cfg)
    assert not marker.exists()

    model = create_model(cfg)
    good = tmp_path / "good.pt"
    torch.save(model.state_dict(), good)
    out = convert_torch_state_dict(good, tmp_path / "out", cfg)
    loaded = load_checkpoint(out)
    for a, b in zip(model.state_dict().values(), loaded.state_dict().values()):
        assert torch.equal(a, b)


def test_missing_or_mismatched_checkpoints(tmp_path):
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "nothing")
    model = create_model("tiny_fac", modalities=["text"])
    path = save_checkpoint(model, tmp_path / "c")
    header = json.loads((path / CONFIG_FILE).read_text())
    header["config"]["text"]["sentence_dim"] = 128
    (path / CONFIG_FILE).write_text(json.dumps(header))
    with pytest.raises(CheckpointError, match="cannot load weights|do not match"):
        load_checkpoint(path)
    (path / WEIGHTS_FILE).write_bytes(b"\x00" * 16)
    with pytest.raises(CheckpointError):
        load_checkpoint(path)
    (path / CONFIG_FILE).write_text("{not json")
    with pytest.raises(CheckpointError, match="cannot read checkpoint config"):
        load_checkpoint(path)
    os.remove(path / CONFIG_FILE)
    with pytest.raises(CheckpointError):
        load_checkpoint(path)
