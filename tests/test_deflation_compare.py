"""Images for deflation (folder, manifest frames) and the inflated / naive / calibrated comparisons."""

from __future__ import annotations

import cv2
import numpy as np
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
    toyworld_prompts,
    zero_shot_classify,
)
from mmv.deflation.report import format_markdown, toyworld_report
from mmv.factory import create_model
from mmv.tokenizer import Vocabulary
from mmv.toyworld import COLOURS, SHAPES, clean_description


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


def test_toyworld_prompts_are_clean_descriptions():
    shape = toyworld_prompts("shape")
    assert list(shape) == list(SHAPES) and clean_description("star", "red", "static") in shape["star"]
    assert all(len(v) == 6 * 8 for v in shape.values())
    joint = toyworld_prompts("shape_colour")
    assert len(joint) == len(SHAPES) * len(COLOURS) and "red circle" in joint
    with pytest.raises(ValueError, match="attribute"):
        toyworld_prompts("motion")


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
