"""``python -m training.deflate``: recalibrate from a manifest or a folder, store, reload, report, errors."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch
from train_helpers import SAMPLE, single_thread

from mmv.checkpoint import DEFLATION_FILE, load_checkpoint, save_checkpoint
from mmv.factory import create_model
from mmv.tokenizer import Vocabulary
from mmv.toyworld.narration import vocabulary_words
from training.deflate import main


@pytest.fixture()
def checkpoint(tmp_path):
    single_thread()
    torch.manual_seed(0)
    model = create_model("tiny_fac", video={"num_frames": 4, "frame_size": 32}, audio={"duration": 1.0})
    model.vocab = Vocabulary.from_words(vocabulary_words())
    return save_checkpoint(model.eval(), tmp_path / "model")


def test_manifest_source_writes_the_calibration_that_load_checkpoint_attaches(checkpoint, capsys):
    rc = main(["--checkpoint", str(checkpoint), "--manifest", str(SAMPLE), "--steps", "4", "--batch-size", "8",
               "--quiet"])  # fmt: skip
    assert rc == 0
    out = capsys.readouterr().out
    assert "38 training and 5 held-out images at 32x32 (0 unreadable files skipped)" in out
    assert "naive" in out and "calibrated" in out and f"wrote {checkpoint / DEFLATION_FILE}" in out
    model = load_checkpoint(checkpoint)
    info = model.deflation_info
    assert model.calibrated_deflation is not None
    assert info["steps"] == 4 and info["manifest"] == str(SAMPLE) and info["num_images"] == 38
    assert set(info["cosine"]) == {"naive", "calibrated"}


def test_missing_held_out_split_holds_out_training_frames(checkpoint, capsys):
    rc = main(["--checkpoint", str(checkpoint), "--manifest", str(SAMPLE), "--held-out-split", "nope",
               "--steps", "1", "--batch-size", "4", "--no-save", "--quiet"])  # fmt: skip
    assert rc == 0
    out = capsys.readouterr().out
    assert "held-out split 'nope'" in out and "34 training and 4 held-out images" in out


def test_image_folder_source_counts_bad_files_and_json(checkpoint, tmp_path, capsys):
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(12):
        cv2.imwrite(str(folder / f"{i:02d}.png"), rng.integers(0, 256, (48, 40, 3), dtype=np.uint8))
    (folder / "bad.jpg").write_bytes(b"nope")
    rc = main(["--checkpoint", str(checkpoint), "--images", str(folder), "--steps", "2", "--batch-size", "4",
               "--held-out", "0.25", "--no-save", "--quiet", "--json"])  # fmt: skip
    assert rc == 0
    captured = capsys.readouterr().out
    assert captured.startswith("9 training and 3 held-out images at 32x32 (1 unreadable files skipped)")
    result = json.loads(captured[captured.index("{") :])
    assert "saved" not in result and not (checkpoint / DEFLATION_FILE).exists()
    assert set(result["cosine"]["calibrated"]) == {"repr", "va", "vat"}


def test_report_only_prints_the_comparison_table(checkpoint, capsys):
    rc = main(["--checkpoint", str(checkpoint), "--manifest", str(SAMPLE), "--report-only", "--batch-size", "8"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "has no stored calibration" in out
    assert "report: 5 test frames" in out and "| mode | ms / image |" in out
    assert "| inflated |" in out and "| naive |" in out and "| calibrated |" not in out
    assert "zero-shot chance: {'shape': 0.25, 'colour': 0.167, 'shape_colour': 0.042}" in out


def test_bad_arguments_exit_with_a_message(checkpoint, tmp_path, capsys):
    assert main(["--checkpoint", str(checkpoint), "--images", str(tmp_path), "--report"]) == 2
    assert "--report needs --manifest" in capsys.readouterr().err
    assert main(["--checkpoint", str(tmp_path / "missing"), "--manifest", str(SAMPLE)]) == 2
    assert "no such checkpoint" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["--checkpoint", str(checkpoint), "--images", str(empty), "--steps", "1"]) == 2
    assert "no readable image" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--checkpoint", str(checkpoint)])  # one of --images / --manifest is required
