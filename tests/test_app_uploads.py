"""Upload checks and decoding (app/logic/uploads.py, app/logic/query_embedding.py) without Streamlit and without a bank.

Every file of the bad corpus gets its clear message (or, for the convertible ones, is converted and said so);
decoded uploads match the bank pipeline (the same frames and audio as ClipDataset in eval mode); windows are
cut or averaged as asked; images and text are prepared as documented.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from app_helpers import REAL_CLIP, TINY_OVERRIDES, TOYWORLD, bad_corpus, tiny_vocabulary

from app.logic.query_embedding import (
    default_num_windows,
    embed_query,
    frame_strip,
    prepare_upload,
    tokenize_text,
    window_seconds,
)
from app.logic.uploads import UploadError, UploadLimits, validate_text, validate_upload
from mmv import create_model
from mmv.data.dataset import ClipDataset
from mmv.data.manifest import load_manifest
from mmv.data.media.probe import sniff


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    torch.set_num_threads(1)
    vocab = tiny_vocabulary()
    m = create_model("tiny_fac", **TINY_OVERRIDES, text={"vocab_size": len(vocab)})
    m.vocab = vocab
    return m.eval()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return {u.name: u for u in bad_corpus(tmp_path_factory.mktemp("corpus"))}


def _check(upload, workdir):
    return validate_upload(upload.name, upload.data, workdir)


@pytest.mark.parametrize(
    "name",
    ["empty.mp4", "truncated.mp4", "picture.mp4", "ten_minutes.mp4", "latin1.txt", "utf16.txt", "noise.bin"],
)
def test_refused_files_say_why(corpus, tmp_path, name):
    upload = corpus[name]
    with pytest.raises(UploadError) as info:
        _check(upload, tmp_path)
    message = str(info.value)
    for words in upload.says:
        assert words in message, message
    assert "Traceback" not in message and str(tmp_path) not in message  # no internals shown to the user


@pytest.mark.parametrize("name", ["silent.mp4", "stereo_96k.wav", "cmyk.jpg", "alpha.png"])
def test_converted_files_are_used_and_say_how(corpus, tmp_path, model, name):
    upload = corpus[name]
    valid = _check(upload, tmp_path)
    prepared = prepare_upload(valid, model.config)
    notes = " ".join(prepared.notes)
    for words in upload.says:
        assert words in notes, notes
    vectors = embed_query(model, prepared)
    assert vectors, "an accepted upload must embed"
    for spaces in vectors.values():
        for v in spaces.values():
            assert np.isfinite(v).all() and abs(float(np.linalg.norm(v)) - 1) < 1e-5


def test_the_alpha_png_is_laid_on_white_and_cmyk_keeps_its_colours(corpus, tmp_path):
    alpha = _check(corpus["alpha.png"], tmp_path)
    assert alpha.image.shape == (48, 64, 3) and alpha.image.dtype == np.uint8
    assert (alpha.image[:, :32] == 255).all()  # the transparent half is white
    cmyk = _check(corpus["cmyk.jpg"], tmp_path)
    rgb = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    # CMYK JPEG is lossy and its conversion is not exact; the picture must still be the same one.
    assert np.corrcoef(cmyk.image.astype(float).ravel(), rgb.astype(float).ravel())[0, 1] > 0.8


def test_96k_stereo_is_mixed_down_and_resampled_to_the_model_rate(corpus, tmp_path, model):
    valid = _check(corpus["stereo_96k.wav"], tmp_path)
    assert (valid.kind, valid.sample_rate, valid.channels) == ("audio", 96000, 2)
    prepared = prepare_upload(valid, model.config)
    sr = model.config.audio.sample_rate
    assert prepared.sample_rate == sr and prepared.audio.shape[1] == round(model.config.audio.duration * sr)
    spectrum = np.abs(np.fft.rfft(prepared.audio[0].numpy()))
    freqs = np.fft.rfftfreq(prepared.audio.shape[1], 1 / sr)
    peaks = sorted(freqs[np.argsort(spectrum)[-2:]].round())
    assert peaks == [440.0, 660.0]  # both channels survive the mix-down


def test_content_decides_the_kind_not_the_name(tmp_path):
    mp4 = (TOYWORLD / "clips" / "000003.mp4").read_bytes()
    assert sniff(mp4[:64]) == "mp4"
    assert validate_upload("clip", mp4, tmp_path).kind == "video"  # no extension: the contents say
    assert validate_upload("clip.mov", mp4, tmp_path).kind == "video"  # same family
    with pytest.raises(UploadError, match="named like a WAV audio file"):
        validate_upload("clip.wav", mp4, tmp_path)


def test_limits_are_enforced_with_numbers(tmp_path):
    mp4 = (TOYWORLD / "clips" / "000003.mp4").read_bytes()
    with pytest.raises(UploadError, match="takes files up to 0 MB"):
        validate_upload("a.mp4", mp4, tmp_path, UploadLimits(max_bytes=1000))
    with pytest.raises(UploadError, match="largest side may be at most 100"):
        validate_upload("a.mp4", mp4, tmp_path, UploadLimits(max_side=100))
    with pytest.raises(UploadError, match="4 s long; the app takes at most 3 s"):
        validate_upload("a.mp4", mp4, tmp_path, UploadLimits(max_seconds=3))
    with pytest.raises(UploadError, match="empty"):
        validate_text("   \n ")
    assert validate_text("  a  red\ncircle ").text == "a red circle"


def test_upload_frames_and_audio_equal_the_bank_pipeline(tmp_path, model):
    """The upload of a bank clip decodes to exactly what ClipDataset (eval mode) gives for that clip."""
    clip = TOYWORLD / "clips" / "000005.mp4"
    valid = validate_upload(clip.name, clip.read_bytes(), tmp_path)
    prepared = prepare_upload(valid, model.config, "average", num_windows=2)
    df = load_manifest(TOYWORLD / "manifest.parquet")
    df = df[df["video_path"].str.endswith("000005.mp4")]
    cfg = model.config
    ds = ClipDataset(df, cfg.video, cfg.audio, mode="eval", num_windows=2, cache_dir=tmp_path / "cache")
    ref = [ds[i] for i in range(2)]
    assert torch.equal(prepared.video, torch.stack([r["video"] for r in ref]))
    assert torch.allclose(prepared.audio, torch.stack([r["audio"] for r in ref]), atol=1e-4)
    assert prepared.windows == [(r["start"], r["start"] + window_seconds(cfg)) for r in ref]


def test_long_clips_are_cut_or_averaged(tmp_path, model):
    valid = validate_upload(REAL_CLIP.name, REAL_CLIP.read_bytes(), tmp_path)  # 5.28 s, 1-s windows
    span = window_seconds(model.config)
    assert span == 1.0 and default_num_windows(valid.duration, span) == 6
    averaged = prepare_upload(valid, model.config, "average")
    assert averaged.video.shape[0] == 6 and averaged.windows[0][0] == 0.0
    assert averaged.windows[-1][1] == pytest.approx(valid.duration)
    cut = prepare_upload(valid, model.config, "cut", start=2.5)
    assert cut.video.shape[0] == 1 and cut.windows == [(2.5, 3.5)]
    late = prepare_upload(valid, model.config, "cut", start=99.0)  # clamped to the last full window
    assert late.windows[0][0] == pytest.approx(valid.duration - span)
    # averaging is the mean of the raw window embeddings, normalised (as embed_manifest does)
    with torch.no_grad():
        raw = model.encode_video(averaged.video)["va"].double().mean(0)
    expected = (raw / raw.norm()).float().numpy()
    np.testing.assert_allclose(embed_query(model, averaged)["video"]["va"], expected, atol=1e-5)


def test_image_and_text_queries(tmp_path, model):
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.full((40, 80, 3), 200, np.uint8)).save(buf, format="PNG")
    prepared = prepare_upload(validate_upload("grey.png", buf.getvalue(), tmp_path), model.config)
    assert prepared.image.shape == (32, 32, 3) and prepared.modalities == ["video"]
    assert frame_strip(torch.zeros(4, 32, 32, 3, dtype=torch.uint8)).shape == (32, 128, 3)
    vectors = embed_query(model, prepared)["video"]
    assert set(vectors) == {"va", "vat"}
    text = prepare_upload(validate_text("a red circle bounces"), model.config)
    ids, known, unknown = tokenize_text(model, text.text)
    assert known == ["red", "circle", "bounces"] and unknown == [] and ids.shape == (1, 16)
    with pytest.raises(UploadError, match="None of the words"):
        tokenize_text(model, "zzzz qqqq")
