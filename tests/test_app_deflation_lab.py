"""The Deflation lab: its logic (``app/logic/deflation_compare.py``) and its page, on tiny checkpoints and a real bank.

Models: the tiny random ``tiny_fac`` (S3D-G) of ``tests/app_helpers.py`` and its bank over the 48 bundled toy-world
clips; a copy of that checkpoint recalibrated by ``training.deflate``'s ``main`` for a few steps (so it carries a
``deflation.safetensors``); a tiny ``tiny_tsm_fac`` (TSM-ResNet) recalibrated with ``mmv.deflation.recalibrate``,
with a bank of its own.

What is checked: every embedding, cosine and time of the lab is what ``mmv.deflation`` computes for the same
checkpoint and images; the lab's image embeddings equal those of ``training.evaluate`` (``evaluate_zero_shot``
with ``--image-mode inflated|naive|calibrated``), its cosines those of the deflation report
(``training.deflate --report``), and its inflated / naive representations the forward passes
``benchmarks/deflation.py`` times; the neighbours are the brute-force top-k of the bank's vectors and the map
points ``bank.project``'s; without a calibration only inflated and naive are computed; the TSM checkpoint works
end to end; the page shows the logic's numbers for a bank frame and an uploaded PNG, and a bad upload gets a
clear message.
"""

from __future__ import annotations

import io
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from app_helpers import SAMPLE_MANIFEST, TINY_OVERRIDES, TOYWORLD, app_environment, tiny_model_and_bank, tiny_vocabulary

from app.logic import state
from app.logic.deflation_compare import (
    BUNDLED_STILLS,
    MAX_IMAGES,
    LabImage,
    add_neighbours,
    bank_images,
    embed_three_ways,
    lab_figure,
    map_frame,
    run_lab,
    still_images,
)
from mmv.deflation import MODES, compare, embed_images

SIZE = TINY_OVERRIDES["video"]["frame_size"]
ENTRY = str(Path(__file__).resolve().parents[1] / "app" / "streamlit_app.py")
PAGE = "views/deflation_lab.py"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    torch.set_num_threads(1)
    return tiny_model_and_bank(tmp_path_factory.mktemp("lab"))


@pytest.fixture(scope="module")
def calibrated_dir(tiny, tmp_path_factory):
    """A copy of the tiny checkpoint with a calibration stored by ``python -m training.deflate``."""
    from training.deflate import main

    directory = tmp_path_factory.mktemp("lab-calibrated") / "model"
    shutil.copytree(tiny[0], directory)
    args = ["--checkpoint", str(directory), "--manifest", str(SAMPLE_MANIFEST), "--steps", "4", "--lr", "1e-3",
            "--batch-size", "8", "--quiet"]  # fmt: skip
    assert main(args) == 0
    assert (directory / "deflation.safetensors").is_file()
    return directory


@pytest.fixture(scope="module")
def model(calibrated_dir):
    from mmv.checkpoint import load_checkpoint

    m = load_checkpoint(calibrated_dir).eval()
    assert m.calibrated_deflation is not None
    return m


@pytest.fixture(scope="module")
def search(tiny):
    from app.logic.bank_search import BankSearch
    from mmv.bank import Bank

    return BankSearch(Bank.load(tiny[1]))


@pytest.fixture(scope="module")
def test_rows(search):
    return np.flatnonzero(search.meta["split"].to_numpy() == "test").tolist()


@pytest.fixture(scope="module")
def lab(model, search, test_rows):
    return run_lab(model, search, bank_images(search, test_rows, SIZE), k=5, repeats=1)


def _seen(result) -> torch.Tensor:
    return torch.stack([torch.from_numpy(r.seen) for r in result.images])  # [N, S, S, 3] uint8


# ---------------------------------------------------------------------------------------------------
# Logic
# ---------------------------------------------------------------------------------------------------


def test_three_paths_are_the_librarys_embeddings_cosines_and_times(model, lab, search, test_rows):
    assert lab.modes == list(MODES) and lab.calibrated and lab.backbone == "S3DG" and lab.num_frames == 4
    assert [r.image.row for r in lab.images] == test_rows
    assert [r.image.label for r in lab.images] == [f"{search.meta.iloc[r]['clip_id']} (bank frame)" for r in test_rows]
    x = _seen(lab)
    library = compare(model, x)
    for mode in MODES:
        emb, _ = embed_images(model, x, mode)
        for i, res in enumerate(lab.images):
            p = res.paths[mode]
            assert set(p.embeddings) == {"repr", "va", "vat"}
            for space, v in p.embeddings.items():
                np.testing.assert_allclose(v, emb[space][i].numpy(), atol=1e-5)
            assert p.ms_per_image > 0
            if mode == "inflated":
                assert p.cosine == {}
                continue
            for space in ("repr", "va", "vat"):
                assert -1.0 <= p.cosine[space] <= 1.0
                assert p.cosine[space] == pytest.approx(float(library["cosine"][mode][space][i]), abs=1e-6)
    # The calibrated path is the attached tower's output (and differs from naive: gamma/beta were learnt).
    with torch.no_grad():
        tower_repr = model.calibrated_deflation(x.float() / 255.0)
    calibrated = np.stack([r.paths["calibrated"].embeddings["repr"] for r in lab.images])
    naive = np.stack([r.paths["naive"].embeddings["repr"] for r in lab.images])
    np.testing.assert_allclose(calibrated, tower_repr.numpy(), atol=1e-5)
    means = lab.mean_cosines()
    assert abs(means.loc["calibrated", "cos_repr"] - means.loc["naive", "cos_repr"]) > 0.01
    assert not np.allclose(calibrated, naive, rtol=1e-2, atol=0)
    assert list(means.index) == ["naive", "calibrated"]
    for mode in ("naive", "calibrated"):
        assert means.loc[mode, "cos_vat"] == pytest.approx(float(library["cosine"][mode]["vat"].mean()), abs=1e-6)


def test_neighbours_are_the_banks_top_k_and_points_its_projection(lab, search):
    bank = search.bank
    assert lab.map_space == "vat" and lab.k == 5
    for res in lab.images:
        for p in res.paths.values():
            e = p.embeddings["vat"]
            for hits, modality in ((p.text_hits, "text"), (p.video_hits, "video")):
                scores = np.asarray(bank.vectors("vat", modality), np.float64) @ e.astype(np.float64)
                rows = np.asarray(bank.rows("vat", modality))
                top = np.argsort(-scores, kind="stable")[:5]
                assert hits["row"].tolist() == rows[top].tolist()
                np.testing.assert_allclose(hits["score"], scores[top], atol=1e-5)
                assert hits["modality"].eq(modality).all() and hits["space"].eq("vat").all()
    vectors = np.stack([p.embeddings["vat"] for r in lab.images for p in r.paths.values()])
    frame = map_frame(lab)
    np.testing.assert_allclose(frame[["x", "y"]].to_numpy(), bank.project("vat", vectors), atol=1e-5)
    assert frame["mode"].tolist() == list(MODES) * len(lab.images)
    # The figure joins each image's inflated point to its naive and calibrated points by arrows.
    from app.logic.maps import map_points

    fig = lab_figure(map_points(bank.coords("vat"), search.meta), lab)
    arrows = fig.layout.annotations
    assert len(arrows) == 2 * len(lab.images)
    for i, res in enumerate(lab.images):
        for arrow, mode in zip(arrows[2 * i : 2 * i + 2], ("naive", "calibrated")):
            assert (arrow.ax, arrow.ay) == pytest.approx(res.paths["inflated"].xy)
            assert (arrow.x, arrow.y) == pytest.approx(res.paths[mode].xy)


def test_add_neighbours_returns_a_copy(model, search):
    """The page caches the embeddings and shares them between sessions: neighbours go into a copy."""
    base = embed_three_ways(model, still_images(BUNDLED_STILLS[:1]), repeats=1)
    assert all(p.text_hits is None and p.xy is None for p in base.images[0].paths.values())
    with_k3 = add_neighbours(base, search, 3)
    assert all(p.text_hits is None and p.xy is None for p in base.images[0].paths.values())
    assert all(len(p.text_hits) == 3 and len(p.video_hits) == 3 for p in with_k3.images[0].paths.values())


def test_lab_agrees_with_training_evaluate(model):
    """``training.evaluate retrieval --image-mode M`` embeds the middle frame of each window with
    ``encode_image(mode=M)``; the lab, given the same frames, gives the same S_va / S_vat vectors."""
    from mmv.data.dataset import ClipDataset
    from mmv.data.manifest import load_manifest
    from mmv.eval.datasets import FramesAsImages
    from mmv.eval.zero_shot import evaluate_zero_shot

    df = load_manifest(SAMPLE_MANIFEST)
    df = df[df["split"] == "test"].reset_index(drop=True)
    frames = FramesAsImages(ClipDataset(df, video_cfg=model.config.video, mode="eval", num_windows=1))
    images = [LabImage(frames[i]["clip_id"], frames[i]["image"].numpy()) for i in range(len(frames))]
    result = embed_three_ways(model, images, repeats=1)
    for mode in MODES:
        _, emb = evaluate_zero_shot(
            model, df, split="test", num_windows=1, images="frames", image_mode=mode, batch_size=8
        )
        row = {c: i for i, c in enumerate(emb["clip_id"])}
        assert emb["has_image"].all() and len(row) == len(images)
        for res in result.images:
            for space in ("va", "vat"):
                expected = emb[f"image_{space}"][row[res.image.label]].numpy()
                np.testing.assert_allclose(res.paths[mode].embeddings[space], expected, atol=1e-5)


def test_lab_agrees_with_the_deflation_report_and_the_benchmark(model, lab, search, test_rows):
    """Bank frames are the report's frames (middle of each test clip): same cosines per image and on average; the
    inflated and naive representations are the forward passes ``benchmarks/deflation.py`` times."""
    from benchmarks import deflation as bench
    from mmv.toyworld.deflation_report import toyworld_report

    report = toyworld_report(model, SAMPLE_MANIFEST, split="test")
    assert report["num_images"] == len(lab.images) == len(test_rows)
    for mode in ("naive", "calibrated"):
        for space in ("repr", "va", "vat"):
            per_image = report["compare"]["cosine"][mode][space].numpy()
            lab_values = [r.paths[mode].cosine[space] for r in lab.images]
            np.testing.assert_allclose(lab_values, per_image, atol=1e-6)
            assert lab.mean_cosines().loc[mode, f"cos_{space}"] == pytest.approx(
                report["summary"].loc[mode, f"cos_{space}"], abs=1e-6
            )
    x = _seen(lab).float() / 255.0
    with torch.no_grad():
        inflated = model.video(bench.inflate(x, model.config.video.num_frames))
        naive = bench.deflate(model.video)(x)  # the benchmark's image network: gamma/beta copied from the video net
    np.testing.assert_allclose(np.stack([r.paths["inflated"].embeddings["repr"] for r in lab.images]), inflated,
                               atol=1e-5)  # fmt: skip
    np.testing.assert_allclose(np.stack([r.paths["naive"].embeddings["repr"] for r in lab.images]), naive, atol=1e-5)


def test_without_a_calibration_only_inflated_and_naive(tiny, search):
    from mmv.checkpoint import load_checkpoint

    plain = load_checkpoint(tiny[0]).eval()
    result = run_lab(plain, search, still_images(BUNDLED_STILLS[:2]), k=4, repeats=2)
    assert result.modes == ["inflated", "naive"] and not result.calibrated and result.calibration == {}
    assert all(set(r.paths) == {"inflated", "naive"} for r in result.images)
    assert result.summary()["mode"].tolist() == ["inflated", "naive"] * 2
    assert len(map_frame(result)) == 4 and len(result.images[0].paths["naive"].video_hits) == 4
    # a still of the bundled clip at native size is prepared like the report's frames
    assert result.images[0].image.image.shape == (270, 480, 3) and result.images[0].seen.shape == (SIZE, SIZE, 3)


def test_bad_images_are_refused_with_a_reason(model):
    with pytest.raises(ValueError, match="No image"):
        embed_three_ways(model, [])
    still = still_images(BUNDLED_STILLS[:1])[0]
    with pytest.raises(ValueError, match=f"At most {MAX_IMAGES}"):
        embed_three_ways(model, [still] * (MAX_IMAGES + 1))
    with pytest.raises(ValueError, match="uint8"):
        embed_three_ways(model, [LabImage("float", still.image.astype(np.float32))])


def test_a_tsm_checkpoint_works(tmp_path):
    from app.logic.bank_search import BankSearch
    from mmv import create_model
    from mmv.bank import Bank, BankOptions, build_bank
    from mmv.checkpoint import load_checkpoint, save_checkpoint
    from mmv.deflation import CalibrationOptions, frames_from_manifest, recalibrate
    from training.build_bank import describe_toyworld_clip

    torch.manual_seed(0)
    vocab = tiny_vocabulary()
    tsm = create_model("tiny_tsm_fac", **TINY_OVERRIDES, text={"vocab_size": len(vocab)})
    tsm.vocab = vocab
    tsm.eval()
    train = frames_from_manifest(SAMPLE_MANIFEST, SIZE, split="train", max_clips=16)
    recalibrate(tsm, train.images, CalibrationOptions(steps=3, lr=1e-3, batch_size=8))
    directory = save_checkpoint(tsm, tmp_path / "tsm")
    model = load_checkpoint(directory).eval()
    assert model.calibrated_deflation is not None
    bank_dir = tmp_path / "tsm-bank"
    options = BankOptions(thumbnails=False, previews=False, progress=False, checkpoint_path=directory)
    build_bank(model, SAMPLE_MANIFEST, bank_dir, options, describe=describe_toyworld_clip)
    search = BankSearch(Bank.load(bank_dir))
    rows = [0, 20]
    result = run_lab(model, search, bank_images(search, rows, SIZE), k=3, repeats=1)
    assert result.backbone == "TSMResNet" and result.modes == list(MODES)
    x = _seen(result)
    for mode in MODES:
        emb, _ = embed_images(model, x, mode)
        for i, res in enumerate(result.images):
            np.testing.assert_allclose(res.paths[mode].embeddings["vat"], emb["vat"][i].numpy(), atol=1e-5)
            if mode != "inflated":
                cos = F.cosine_similarity(emb["repr"][i : i + 1].double(), _repr(model, x[i : i + 1]).double())
                assert res.paths[mode].cosine["repr"] == pytest.approx(float(cos), abs=1e-6)
            assert len(res.paths[mode].text_hits) == 3 and len(res.paths[mode].video_hits) == 3
    assert np.isfinite(map_frame(result)[["x", "y"]].to_numpy()).all()


def _repr(model, x: torch.Tensor) -> torch.Tensor:
    """The inflated reference representation of ``[B, S, S, 3]`` uint8 images (the video tower on a static clip)."""
    with torch.no_grad():
        return model.encode_image(x, mode="inflated")["repr"]


# ---------------------------------------------------------------------------------------------------
# The page (AppTest)
# ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def app_env(tiny, calibrated_dir, tmp_path_factory):
    pytest.importorskip("streamlit.testing.v1")
    with app_environment(calibrated_dir, tiny[1], uploads=tmp_path_factory.mktemp("lab-uploads"), clear_choices=True):
        yield calibrated_dir, tiny[1]


def _page(app_env, source: str | None = None):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(ENTRY, default_timeout=180)
    at.run()
    assert at.selectbox(key=state.MODEL_PATH).value == str(app_env[0])  # the calibrated copy
    at.switch_page(PAGE)
    at.run()
    if source is not None:
        at.radio(key="lab_source").set_value(source).run()
    return at


def _no_traceback(at) -> None:
    assert not at.exception, [e.value for e in at.exception]
    for e in at.error:
        assert "Traceback" not in e.value and 'File "' not in e.value


def _metrics(at) -> list[tuple[str, str]]:
    return [(m.label, m.value) for m in at.metric]


def _check_page_shows(at, expected) -> None:
    """The metrics and neighbour lists of every column equal the logic's (times: shown, positive)."""
    metrics = _metrics(at)
    assert len(metrics) == 2 * len(expected.modes) * len(expected.images)
    it = iter(metrics)
    for res in expected.images:
        for mode in expected.modes:
            (cos_label, cos_value), (ms_label, ms_value) = next(it), next(it)
            assert cos_label == "cosine to inflated (S_vat)" and ms_label == "ms per image"
            want = "1 (reference)" if mode == "inflated" else f"{res.paths[mode].cosine['vat']:.4f}"
            assert cos_value == want, (mode, cos_value, want)
            assert float(ms_value) > 0
    lists = [m.value for m in at.markdown if m.value.startswith("1. **")]
    want_lists = [
        [hits["clip_id"].tolist(), hits["score"].tolist()]
        for res in expected.images
        for target in ("text_hits", "video_hits")  # a row of text lists, then a row of video lists
        for hits in (getattr(res.paths[mode], target) for mode in expected.modes)
    ]
    assert len(lists) == len(want_lists)
    for shown, (ids, scores) in zip(lists, want_lists):
        lines = shown.split("\n")
        assert [line.split("**")[1] for line in lines] == ids
        assert [line.split(" \u00b7 ")[1] for line in lines] == [f"{s:.3f}" for s in scores]


def test_page_shows_the_logics_numbers_for_a_bank_frame(app_env, model, search, test_rows):
    at = _page(app_env)
    _no_traceback(at)
    assert at.title[0].value == "Deflation lab"
    assert at.multiselect(key="lab_clips").value == [search.meta.iloc[test_rows[0]]["clip_id"]]
    expected = run_lab(model, search, bank_images(search, test_rows[:1], SIZE), k=5, repeats=1)
    _check_page_shows(at, expected)
    assert f"1. {search.meta.iloc[test_rows[0]]['clip_id']} (bank frame)" in [s.value for s in at.subheader]
    chart = json.loads(at.get("plotly_chart")[0].proto.spec)
    arrows = chart["layout"]["annotations"]
    assert len(arrows) == 2
    for arrow, mode in zip(arrows, ("naive", "calibrated")):
        assert (arrow["x"], arrow["y"]) == pytest.approx(expected.images[0].paths[mode].xy, abs=1e-5)
        assert (arrow["ax"], arrow["ay"]) == pytest.approx(expected.images[0].paths["inflated"].xy, abs=1e-5)
    zoomed = json.loads(at.get("plotly_chart")[1].proto.spec)["layout"]  # the same map around the image
    assert len(zoomed["annotations"]) == 2
    for p in expected.images[0].paths.values():
        assert zoomed["xaxis"]["range"][0] < p.xy[0] < zoomed["xaxis"]["range"][1]
        assert zoomed["yaxis"]["range"][0] < p.xy[1] < zoomed["yaxis"]["range"][1]
    # two clips and k = 3: both rows of columns, and the mean table
    at.multiselect(key="lab_clips").select(search.meta.iloc[test_rows[1]]["clip_id"])
    at.slider(key="lab_k").set_value(3)
    at.run()
    _no_traceback(at)
    _check_page_shows(at, run_lab(model, search, bank_images(search, test_rows[:2], SIZE), k=3, repeats=1))
    assert "Mean over the images" in [s.value for s in at.subheader]


def test_page_without_a_calibration_shows_inflated_and_naive(app_env, tiny, search, test_rows):
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    from mmv.checkpoint import load_checkpoint

    os.environ[state.ENV_MODEL] = str(tiny[0])
    st.cache_data.clear()
    try:
        at = AppTest.from_file(ENTRY, default_timeout=180)
        at.run()
        at.switch_page(PAGE)
        at.run()
        _no_traceback(at)
        assert any("no calibration" in i.value for i in at.info)
        plain = load_checkpoint(tiny[0]).eval()
        _check_page_shows(at, run_lab(plain, search, bank_images(search, test_rows[:1], SIZE), k=5, repeats=1))
        assert len(json.loads(at.get("plotly_chart")[0].proto.spec)["layout"]["annotations"]) == 1  # naive only
    finally:
        os.environ[state.ENV_MODEL] = str(app_env[0])
        st.cache_data.clear()


def _png() -> bytes:
    from PIL import Image, ImageDraw

    im = Image.new("RGB", (96, 64), (240, 240, 240))
    ImageDraw.Draw(im).ellipse((30, 12, 70, 52), fill=(220, 30, 30))  # a red circle
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def test_page_shows_the_logics_numbers_for_an_uploaded_png(app_env, model, search, tmp_path):
    from app.logic.query_embedding import prepare_upload
    from app.logic.uploads import validate_upload

    data = _png()
    at = _page(app_env, "An upload")
    at.file_uploader(key="lab_file").set_value(("circle.png", data, "image/png")).run()
    _no_traceback(at)
    assert not at.error
    prepared = prepare_upload(validate_upload("circle.png", data, tmp_path), model.config)
    expected = run_lab(model, search, [LabImage("circle.png", prepared.image.numpy())], k=5, repeats=1)
    _check_page_shows(at, expected)
    assert "1. circle.png" in [s.value for s in at.subheader]


def test_page_bundled_stills_and_bad_uploads(app_env, model, search):
    at = _page(app_env, "Bundled stills")
    _no_traceback(at)
    assert at.multiselect(key="lab_stills").value == [BUNDLED_STILLS[1].label]
    _check_page_shows(at, run_lab(model, search, still_images(BUNDLED_STILLS[1:2]), k=5, repeats=1))
    at.radio(key="lab_source").set_value("An upload").run()
    clip = (TOYWORLD / "clips" / "000002.mp4").read_bytes()
    for name, data, says in (
        ("clip.mp4", clip, "the Deflation lab embeds still images"),
        ("broken.png", _png()[:60], "cannot be decoded"),
        ("noise.bin", b"\x00\x01" + np.random.default_rng(1).bytes(500), "unknown format"),
    ):
        at.file_uploader(key="lab_file").set_value((name, data, "application/octet-stream")).run()
        _no_traceback(at)
        assert len(at.error) == 1 and says in at.error[0].value, (name, [e.value for e in at.error])
        assert not at.metric


def test_summary_table_has_a_row_per_image_and_mode(lab):
    df = lab.summary()
    assert isinstance(df, pd.DataFrame) and len(df) == 3 * len(lab.images)
    assert df.loc[df["mode"] == "inflated", "cos_vat"].isna().all()
    assert df.loc[df["mode"] != "inflated", "cos_vat"].between(-1, 1).all()
