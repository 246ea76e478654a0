"""Images for deflation (folder, manifest frames) and the inflated / naive / calibrated comparisons."""

from __future__ import annotations

import cv2
import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from train_helpers import SAMPLE, single_thread

import mmv.deflation.comparison as compare_module
from mmv.data.manifest import load_manifest
from mmv.deflation import (
    CalibrationOptions,
    ImageSet,
    compare,
    embed_images,
    frames_from_manifest,
    load_image_folder,
    recalibrate,
    zero_shot_classify,
)
from mmv.deflation.report import deflation_report, format_markdown, own_clip_videos
from mmv.factory import create_model
from mmv.tokenizer import Vocabulary
from mmv.toyworld import COLOURS, SHAPES, clean_description
from mmv.toyworld.deflation_report import description_targets, toyworld_prompts, toyworld_report


@pytest.fixture(scope="module")
def model():
    from mmv.toyworld.narration import vocabulary_words

    single_thread()
    torch.manual_seed(0)
    m = create_model("tiny_fac", video={"num_frames": 4, "frame_size": 32}, audio={"duration": 1.0}).eval()
    m.vocab = Vocabulary.from_words(vocabulary_words())
    return m


# --- Images ---------------------------------------------------------------------------------------------------


def test_image_folder_reads_resizes_and_skips_bad_files(tmp_path):
    red = np.zeros((40, 60, 3), np.uint8)
    red[..., 2] = 255  # BGR: pure red
    cv2.imwrite(str(tmp_path / "a.png"), red)
    (tmp_path / "sub").mkdir()
    cv2.imwrite(str(tmp_path / "sub" / "b.jpg"), np.full((64, 64, 3), 128, np.uint8))
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("ignored: not an image suffix")
    images = load_image_folder(tmp_path, size=32)
    assert images.images.shape == (2, 32, 32, 3) and images.images.dtype == torch.uint8
    assert [s.rsplit("/", 1)[-1] for s in images.sources] == ["a.png", "b.jpg"]
    assert images.images[0, ..., 0].min() == 255 and images.images[0, ..., 1:].max() == 0  # RGB order
    assert sorted(p.rsplit("/", 1)[-1] for p in images.skipped) == ["broken.jpg", "empty.png"]
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "x.png").write_bytes(b"junk")
    with pytest.raises(ValueError, match="no readable image"):
        load_image_folder(junk, size=32)
    with pytest.raises(ValueError, match="not a directory"):
        load_image_folder(tmp_path / "missing", size=32)


def test_frames_from_manifest_labels_positions_and_bad_clips(tmp_path):
    df = load_manifest(SAMPLE)
    df = df[df["split"] == "val"].reset_index(drop=True)
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"garbage")
    df.loc[0, "video_path"] = str(bad)
    frames = frames_from_manifest(df, 32, frames_per_clip=2, position="middle")
    assert frames.images.shape == (2 * (len(df) - 1), 32, 32, 3)
    assert list(frames.skipped) == [str(bad)]
    assert frames.labels["clip_id"][:2] == [df.clip_id[1]] * 2 and frames.labels["shape"][0] == df.label_shape[1]
    # "middle" with two frames: the centres of the two halves of [0, 3.875 s] (the last frame starts at 3.875 s).
    assert frames.sources[0].endswith("@0.969s") and frames.sources[1].endswith("@2.906s")
    again = frames_from_manifest(df, 32, frames_per_clip=2, position="random", seed=5)
    assert torch.equal(again.images, frames_from_manifest(df, 32, frames_per_clip=2, position="random", seed=5).images)
    train, held = again.split(0.25, seed=0)
    assert len(train) + len(held) == len(again) and not set(train.sources) & set(held.sources)


# --- Comparisons ----------------------------------------------------------------------------------------------


def _images(n: int = 8) -> torch.Tensor:
    return torch.randint(0, 256, (n, 32, 32, 3), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)


def test_compare_cosines_retrieval_and_times(model):
    images = _images()
    inflated, _ = embed_images(model, images, "inflated")
    texts = ["a red circle", "a blue square", "a green star"]
    res = compare(
        model,
        images,
        texts=texts,
        text_gt=np.zeros(len(images), dtype=int),
        video_bank=inflated["vat"],  # each image's own static video is in the bank
        video_gt=np.arange(len(images)),
        modes=("inflated", "naive", "calibrated"),
    )
    assert list(res["summary"].index) == ["inflated", "naive"]  # no calibration attached: skipped
    # Image -> video: the inflated embedding finds its own static video first (cosine 1).
    assert res["i2v"]["inflated"]["r1"] == 1.0
    assert np.isnan(res["summary"].loc["inflated", "cos_repr"])  # no cosine of the reference to itself
    # Cosines are the per-image cosines of the deflated and inflated embeddings.
    naive, _ = embed_images(model, images, "naive")
    expected = F.cosine_similarity(naive["vat"].double(), inflated["vat"].double(), dim=-1)
    torch.testing.assert_close(res["cosine"]["naive"]["vat"], expected)
    assert res["summary"].loc["naive", "cos_vat"] == pytest.approx(float(expected.mean()))
    # Image -> text ranks against the texts' own embeddings.
    text = compare_module.embed_sentences(model, texts)
    sim = naive["vat"] @ text.T
    r1 = float(np.mean(sim.argmax(1).numpy() == 0))
    assert res["i2t"]["naive"]["r1"] == pytest.approx(r1)
    assert (res["summary"]["ms_per_image"] > 0).all() and res["summary"].loc["inflated", "speedup"] == 1.0
    with pytest.raises(ValueError, match="text_gt"):
        compare(model, images, texts=texts)


def test_zero_shot_classify_with_planted_prompt_embeddings(model, monkeypatch):
    # Prompt embeddings planted on the axes; image embeddings near axis 1, 0, 1, 2.
    axes = torch.eye(4)

    def fake_embed_sentences(_model, sentences):
        return torch.stack([axes[int(s[-1])] for s in sentences])

    monkeypatch.setattr(compare_module, "embed_sentences", fake_embed_sentences)
    emb = F.normalize(axes[[1, 0, 1, 2]] + 0.1 * torch.rand(4, 4), dim=-1)
    prompts = {"zero": ["p0", "p0"], "one": ["p1"], "two": ["p2"]}
    out = zero_shot_classify(
        model, ["one", "zero", "zero", "two"], prompts, embeddings={"naive": {"vat": emb}}, modes=("naive",)
    )
    assert out["predictions"]["naive"] == ["one", "zero", "one", "two"]
    assert out["accuracy"]["naive"] == 0.75 and out["chance"] == pytest.approx(1 / 3)
    assert out["per_class"]["naive"] == {"zero": 0.5, "one": 1.0, "two": 1.0}
    with pytest.raises(ValueError, match="no prompts"):
        zero_shot_classify(model, ["three"], prompts, embeddings={"naive": {"vat": emb[:1]}}, modes=("naive",))


def test_deflation_report_of_any_labelled_frames(model):
    # Nothing toy-world here: the caller hands in texts, videos and a zero-shot task of its own.
    frames = ImageSet(_images(6), [f"img{i}" for i in range(6)])
    inflated, _ = embed_images(model, frames, "inflated")
    labels = ["even", "odd"] * 3
    prompts = {"even": ["a red circle"], "odd": ["a blue star", "a green square"]}
    rep = deflation_report(
        model,
        frames,
        texts=["a red circle", "a blue star"],
        text_gt=np.zeros(6, dtype=int),
        video_bank=inflated["vat"],
        video_gt=np.arange(6),
        zero_shot={"odd_even": (labels, prompts)},
        modes=("inflated", "naive"),
    )
    summary = rep["summary"]
    assert list(summary.index) == ["inflated", "naive"] and rep["num_images"] == 6 and rep["num_texts"] == 2
    assert summary.loc["inflated", "i2v_r1"] == 1.0  # each image's own static video is in the bank
    expected = zero_shot_classify(model, labels, prompts, embeddings=rep["compare"]["embeddings"])
    assert rep["zero_shot"]["odd_even"]["predictions"] == expected["predictions"]
    assert summary["zs_odd_even"].to_dict() == expected["accuracy"] and rep["zero_shot"]["odd_even"]["chance"] == 0.5
    assert "| zero-shot odd+even |" in format_markdown(summary)


def test_own_clip_videos_match_frames_to_their_clip_and_drop_unreadable_ones(model, tmp_path):
    df = load_manifest(SAMPLE)
    df = df[df["split"] == "test"].reset_index(drop=True)
    frames = frames_from_manifest(df, 32)
    broken = df.copy()
    (tmp_path / "broken.mp4").write_bytes(b"garbage")
    broken.loc[1, "video_path"] = str(tmp_path / "broken.mp4")
    kept, bank, gt = own_clip_videos(model, broken, frames, batch_size=8)
    assert kept.labels["clip_id"] == [df.clip_id[i] for i in (0, 2, 3, 4)]  # clip 1 has no video to find
    assert gt.tolist() == [0, 1, 2, 3] and bank.shape == (4, model.config.heads["va_vat"].dim)
    torch.testing.assert_close(bank.norm(dim=-1), torch.ones(4))
    torch.testing.assert_close(kept.images, frames.images[[0, 2, 3, 4]])


def test_format_markdown_columns_order_and_missing_values():
    summary = pd.DataFrame(
        {
            "ms_per_image": [2.0, 0.25],
            "speedup": [1.0, 8.0],
            "cos_repr": [np.nan, 0.95],
            "zs_shape": [0.25, 0.5],
            "zs_shape_colour": [0.125, 0.0],
            "i2v_medr": [11.0, 34.0],
            "unlisted": [1.0, 2.0],
        },
        index=pd.Index(["inflated", "naive"], name="mode"),
    )
    assert format_markdown(summary).splitlines() == [
        "| mode | ms / image | speed-up | cos repr | zero-shot shape | zero-shot shape+colour | i2v MedR |",
        "|---|---:|---:|---:|---:|---:|---:|",
        "| inflated | 2.00 | 1.0x | — | 0.250 | 0.125 | 11 |",
        "| naive | 0.25 | 8.0x | 0.950 | 0.500 | 0.000 | 34 |",
    ]


# --- The toy world's report (mmv.toyworld.deflation_report) --------------------------------------------------


def test_toyworld_prompts_are_clean_descriptions():
    shape = toyworld_prompts("shape")
    assert list(shape) == list(SHAPES) and clean_description("star", "red", "static") in shape["star"]
    assert all(len(v) == 6 * 8 for v in shape.values())
    colour = toyworld_prompts("colour")
    assert list(colour) == list(COLOURS) and all(len(v) == 4 * 8 for v in colour.values())
    joint = toyworld_prompts("shape_colour")
    assert len(joint) == len(SHAPES) * len(COLOURS) and "red circle" in joint
    assert joint["red circle"][0] == clean_description("circle", "red", "static") and len(joint["red circle"]) == 8
    with pytest.raises(ValueError, match="attribute"):
        toyworld_prompts("motion")


def test_description_targets_count_every_motion_of_the_right_object():
    df = pd.DataFrame(
        {
            "label_shape": ["circle", "circle", "star", "circle"],
            "label_colour": ["red", "red", "blue", "red"],
            "label_motion": ["static", "left", "up", "static"],  # the last row repeats the first description
        }
    )
    texts, gt = description_targets(df, ["circle", "star", "square"], ["red", "blue", "red"])
    assert texts == [
        clean_description("circle", "red", "static"),
        clean_description("circle", "red", "left"),
        clean_description("star", "blue", "up"),
    ]
    assert gt.tolist() == [[True, True, False], [False, False, True], [False, False, False]]


def test_toyworld_report_on_the_bundled_sample(model):
    df = load_manifest(SAMPLE)
    train = frames_from_manifest(df, 32, split="train")
    m = model
    recalibrate(m, train.images, CalibrationOptions(steps=3, batch_size=8))
    try:
        rep = toyworld_report(m, df, split="test", batch_size=8)
    finally:
        m.set_calibrated_deflation(None)
    summary = rep["summary"]
    assert list(summary.index) == ["inflated", "naive", "calibrated"] and rep["num_images"] == 5
    assert rep["split"] == "test" and rep["num_texts"] == 5 and rep["skipped"] == {}  # 5 distinct test clips
    assert {task: zs["chance"] for task, zs in rep["zero_shot"].items()} == {
        "shape": 1 / 4,
        "colour": 1 / 6,
        "shape_colour": 1 / 24,
    }
    assert summary["zs_colour"].to_dict() == rep["zero_shot"]["colour"]["accuracy"]
    for col in ("cos_repr", "zs_shape", "zs_colour", "zs_shape_colour", "i2t_r1", "i2v_r1"):
        assert col in summary.columns
    assert np.isnan(summary.loc["inflated", "cos_repr"]) and summary.loc["naive", "cos_repr"] > 0
    assert ((summary["zs_shape"] >= 0) & (summary["zs_shape"] <= 1)).all()
    table = format_markdown(summary)
    assert table.splitlines()[0].startswith("| mode | ms / image") and "| calibrated |" in table


def test_image_set_subset_keeps_labels():
    s = ImageSet(torch.zeros(3, 2, 2, 3, dtype=torch.uint8), ["a", "b", "c"], {"shape": ["x", "y", "z"]})
    sub = s.subset([2, 0])
    assert sub.sources == ["c", "a"] and sub.labels == {"shape": ["z", "x"]}
    with pytest.raises(ValueError, match="hold out"):
        s.split(5)
