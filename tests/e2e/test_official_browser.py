"""Real video on a converted official checkpoint, in Chromium: the README's folder -> bank -> app path.

The checkpoint is the official ``fac_s3d`` reference model (the released S3D-G configuration: space-to-depth stem,
audio ResNet-50, text tower, FAC heads; parameters from the parity recipe, a 512-row word table) written as a
released ``.pkl`` and converted by ``training.convert_official`` without a word list, as a user converting
``mmv_s3d.pkl`` would. ``training.prepare folder`` and ``training.build_bank`` turn a folder (the bundled Big Buck
Bunny clip without sound plus its ``.srt``, and a toy-world clip with sound) into a bank, and the app serves them.
Checked: the maps show both clips, uploading the real clip returns results in the video/audio directions, a text
query says plainly why text is unavailable and how to enable it, and the server logs no traceback.
"""

from __future__ import annotations

import re

import pytest
from app_helpers import REAL_CLIP
from official_helpers import official_model_and_bank

from e2e.conftest import served_app, settle


@pytest.fixture(scope="module")
def official_app(playwright_api, tmp_path_factory):
    model, bank = official_model_and_bank(tmp_path_factory.mktemp("official-path"))
    with served_app(model, bank, tmp_path_factory.mktemp("official-server") / "streamlit.log") as url:
        yield url


def test_the_maps_show_the_folder_clips(official_app, page, shoot):
    page.goto(official_app)
    settle(page, "S_va (video, audio)")
    rows = page.eval_on_selector_all(
        ".js-plotly-plot",
        "els => els.map(gd => gd._fullData.filter(t => t.customdata).reduce((n, t) => n + t.x.length, 0))",
    )
    assert rows and rows[0] == 4  # two clips, each with a video and an audio point in S_va
    shoot(page, "official_spaces")


def test_uploading_the_real_clip_returns_results(official_app, page, shoot):
    page.set_viewport_size({"width": 1400, "height": 2600})
    page.goto(f"{official_app}/upload")
    settle(page, "Video with sound, audio, image or text file")
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(str(REAL_CLIP))
    settle(page, "Your query on the maps")
    assert page.get_by_role("heading", name="video \u2192 audio (S_va)").count() == 1
    first = page.get_by_text(re.compile(r"^1\. (big_buck_bunny|toy_clip)\.mp4 \u00b7 (video|audio) \u00b7 cosine"))
    assert first.count() >= 1
    body = page.inner_text("body")
    assert "Traceback" not in body
    shoot(page, "official_upload")


def test_a_text_query_says_how_to_enable_text(official_app, page):
    page.goto(f"{official_app}/retrieval")
    settle(page)
    body = page.inner_text("body")
    assert "word list" in body and "--vocab" in body
    assert "Traceback" not in body
