"""The app's pages driven by Streamlit's AppTest (no browser) on a tiny random model and its toy-world bank.

What is checked: each page renders without an exception; the Spaces page draws both maps, and its gallery and
inspector show the selected / clicked clip with the neighbours BankSearch computes; a text query lists exactly
the clips the retrieval logic returns, and "search from this result" makes that clip the query; every file of
the bad-upload corpus gets its clear message and no traceback; a bundled mp4 with sound gets results in
every direction; an uploaded bank clip embeds like the bank's own vector for it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from app_helpers import REAL_CLIP, TOYWORLD, app_environment, bad_corpus, tiny_model_and_bank

from app.logic import state

pytest.importorskip("streamlit.testing.v1")
from streamlit.testing.v1 import AppTest  # noqa: E402

ENTRY = str(Path(__file__).resolve().parents[1] / "app" / "streamlit_app.py")
TIMEOUT = 120


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    model_dir, bank_dir = tiny_model_and_bank(tmp_path_factory.mktemp("app"))
    with app_environment(model_dir, bank_dir, uploads=tmp_path_factory.mktemp("uploads")):
        yield model_dir, bank_dir


@pytest.fixture(scope="module")
def search(tiny):
    from app.logic.bank_search import BankSearch
    from mmv.bank import Bank

    return BankSearch(Bank.load(tiny[1]))


@pytest.fixture(scope="module")
def model(tiny):
    from mmv.checkpoint import load_checkpoint

    return load_checkpoint(tiny[0]).eval()


def _app(page: str | None = None) -> AppTest:
    at = AppTest.from_file(ENTRY, default_timeout=TIMEOUT)
    at.run()
    if page is not None:
        at.switch_page(page)
        at.run()
    return at


def _texts(at: AppTest) -> str:
    parts = [m.value for m in at.markdown] + [c.value for c in at.caption] + [s.value for s in at.subheader]
    return "\n".join(str(p) for p in parts)


def _no_traceback(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    for e in at.error:
        assert "Traceback" not in e.value and 'File "' not in e.value


def test_spaces_page_draws_both_maps(tiny, search):
    at = _app()
    _no_traceback(at)
    assert at.title[0].value == "Spaces"
    charts = at.get("plotly_chart")
    assert len(charts) == 2
    text = _texts(at)
    n_va = len(search.bank.coords("va"))
    n_vat = len(search.bank.coords("vat"))
    assert n_va == 96 and n_vat == 96 + int(search.meta["has_text"].sum())
    assert f"{n_va} points (48 clips)." in text and f"{n_vat} points (48 clips)." in text
    assert at.selectbox(key="spaces_colour").options[:2] == ["modality", "split"]
    at.selectbox(key="spaces_colour").set_value("label_shape").run()
    _no_traceback(at)


def test_gallery_and_inspector_show_the_selected_clips(tiny, search):
    at = _app()
    at.session_state[state.SELECTED_ROWS] = [1, 3]
    at.session_state[state.INSPECT] = (3, "video")
    at.run()
    _no_traceback(at)
    subheaders = [s.value for s in at.subheader]
    assert "Gallery: 2 selected clips" in subheaders
    assert "Inspector: toyworld/000003 (video)" in subheaders
    text = _texts(at)
    for row in (1, 3):
        assert f"**{search.meta.iloc[row]['clip_id']}**" in text
        description = search.meta.iloc[row]["description"]
        assert f"*{description}*" in text
    expected = search.neighbours(3, "video", 5)
    tables = at.dataframe
    assert len(tables) == len(expected) == 5  # (va: video, audio), (vat: video, audio, text)
    for table, hits in zip(tables, expected.values()):
        assert table.value["clip_id"].tolist() == hits["clip_id"].tolist()
        np.testing.assert_allclose(table.value["cosine"], hits["score"])
    at.button[0].click().run()  # "Clear selection"
    assert at.session_state[state.SELECTED_ROWS] == [] and at.session_state[state.INSPECT] is None


def test_text_query_lists_what_the_logic_returns(tiny, search, model):
    from app.logic.query_embedding import embed_query, prepare_text

    at = _app("views/retrieval.py")
    _no_traceback(at)
    query = "a red circle moves to the right"
    assert at.text_input(key="retrieval_text").value == query
    vectors = embed_query(model, prepare_text(query, model.config))["text"]
    hits = search.search(vectors, "text", "video", 10)
    shown = [m.value for m in at.markdown if m.value.startswith("**") and " \u00b7 video \u00b7 cosine" in m.value]
    assert [s.split("**")[1].split(". ", 1)[1] for s in shown] == hits["clip_id"].tolist()
    assert f"cosine **{hits['score'].iloc[0]:.3f}**" in shown[0]
    # another direction and k
    at.radio(key="retrieval_target").set_value("audio")
    at.slider(key="retrieval_k").set_value(3)
    at.run()
    _no_traceback(at)
    assert "text \u2192 audio in S_vat: top 3" in [s.value for s in at.subheader]
    # words the model does not know are reported; a query of unknown words only is refused clearly
    at.text_input(key="retrieval_text").set_value("zzzz qqqq").run()
    _no_traceback(at)
    assert "None of the words" in at.error[0].value


def test_search_from_a_result_makes_it_the_query(tiny, search):
    at = _app("views/retrieval.py")
    first = next(m.value for m in at.markdown if m.value.startswith("**1. "))
    clip_id = first.split("**")[1].split(". ", 1)[1]
    at.button(key=f"retrieval-from-{search.row_of(clip_id)}").click().run()
    _no_traceback(at)
    assert at.radio(key="retrieval_source").value == "A clip of the bank"
    assert at.selectbox(key="retrieval_clip").value == clip_id
    assert at.radio(key="retrieval_modality").value == "video"
    assert at.radio(key="retrieval_target").value == "audio"  # the first other modality
    row = search.row_of(clip_id)
    hits = search.search(search.row_vectors(row, "video"), "video", "audio", 10)
    shown = [m.value for m in at.markdown if " \u00b7 audio \u00b7 cosine" in m.value]
    assert [s.split("**")[1].split(". ", 1)[1] for s in shown] == hits["clip_id"].tolist()


def _upload(at: AppTest, name: str, data: bytes) -> AppTest:
    at.file_uploader(key="upload_file").set_value((name, data, "application/octet-stream"))
    return at.run()


def test_every_bad_upload_gets_a_clear_message(tiny, tmp_path):
    at = _app("views/upload.py")
    _no_traceback(at)
    for upload in bad_corpus(tmp_path):
        _upload(at, upload.name, upload.data)
        _no_traceback(at)
        if upload.accepted:
            assert not at.error, (upload.name, [e.value for e in at.error])
            shown = _texts(at)
            for words in upload.says:
                assert words in shown, (upload.name, words)
            assert any("\u2192" in s.value for s in at.subheader), upload.name  # results were listed
        else:
            assert len(at.error) == 1, upload.name
            for words in upload.says:
                assert words in at.error[0].value, (upload.name, at.error[0].value)


def test_search_from_an_upload_result_continues_on_the_retrieval_page(tiny, search):
    at = _app("views/upload.py")
    _upload(at, "clip.mp4", (TOYWORLD / "clips" / "000004.mp4").read_bytes())
    first = next(m.value for m in at.markdown if m.value.startswith("**1. ") and " \u00b7 text \u00b7 " in m.value)
    clip_id = first.split("**")[1].split(". ", 1)[1]
    at.button(key=f"upload-video-text-from-{search.row_of(clip_id)}").click().run()
    _no_traceback(at)
    assert at.title[0].value == "Retrieval"
    assert at.radio(key="retrieval_source").value == "A clip of the bank"
    assert at.selectbox(key="retrieval_clip").value == clip_id
    assert at.radio(key="retrieval_modality").value == "text"
    assert any(s.value.startswith("text \u2192 video in S_vat") for s in at.subheader)


def test_a_typed_text_on_the_upload_page(tiny, search, model):
    from app.logic.query_embedding import embed_query, prepare_text

    at = _app("views/upload.py")
    at.radio(key="upload_kind").set_value("Text").run()
    at.text_area(key="upload_text").set_value("a green star falls").run()
    _no_traceback(at)
    subheaders = [s.value for s in at.subheader]
    assert "text \u2192 video (S_vat)" in subheaders and "text \u2192 audio (S_vat)" in subheaders
    query = embed_query(model, prepare_text("a green star falls", model.config))["text"]
    hits = search.search(query, "text", "video", 5)
    shown = [m.value for m in at.markdown if " \u00b7 video \u00b7 cosine" in m.value]
    assert [s.split("**")[1].split(". ", 1)[1] for s in shown] == hits["clip_id"].tolist()


def test_a_bundled_mp4_with_sound_gets_results_in_every_direction(tiny, search):
    at = _app("views/upload.py")
    _upload(at, REAL_CLIP.name, REAL_CLIP.read_bytes())
    _no_traceback(at)
    assert not at.error
    subheaders = [s.value for s in at.subheader]
    for direction in ("video \u2192 audio (S_va)", "video \u2192 text (S_vat)", "audio \u2192 video (S_va)",
                      "audio \u2192 text (S_vat)"):  # fmt: skip
        assert direction in subheaders
    assert "Your query on the maps" in subheaders and len(at.get("plotly_chart")) == 2
    assert "The video is **5.3 s**; the model reads **1-s** windows." in _texts(at)
    at.radio(key="upload_mode").set_value("cut")
    at.run()
    _no_traceback(at)
    assert "Cut to one 1-s window" in _texts(at)


def test_an_uploaded_bank_clip_embeds_like_its_bank_vector(tiny, search, model, tmp_path):
    """The bank embeds one window at the clip's start; the same window of the uploaded file gives the same vector."""
    from app.logic.query_embedding import embed_query, prepare_upload
    from app.logic.uploads import validate_upload

    clip = TOYWORLD / "clips" / "000007.mp4"
    row = search.row_of("toyworld/000007")
    prepared = prepare_upload(validate_upload(clip.name, clip.read_bytes(), tmp_path), model.config, "cut", start=0)
    vectors = embed_query(model, prepared)
    for modality in ("video", "audio"):
        for space, vec in vectors[modality].items():
            np.testing.assert_allclose(vec, search.vector(space, modality, row), atol=1e-5)
        hits = search.search(vectors[modality], modality, modality, 1)
        assert hits["clip_id"].iloc[0] == "toyworld/000007" and hits["score"].iloc[0] > 0.9999
