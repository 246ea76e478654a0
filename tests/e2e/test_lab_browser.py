"""The Deflation lab in Chromium: upload a PNG, see the three columns' numbers, and the arrows on the S_vat map.

The page needs a checkpoint with a calibration to show all three columns, so this module serves its own app:
the e2e model (``app_paths``) when it has a ``deflation.safetensors`` (the demo's does), else a copy of it
recalibrated for a few steps by ``python -m training.deflate``'s ``main``, with the same bank. The numbers the
browser shows are compared with :func:`app.logic.deflation_compare.run_lab` on the same image in this process.
Screenshot: ``deflation_lab``.
"""

from __future__ import annotations

import io
import shutil

import pytest
from app_helpers import SAMPLE_MANIFEST

from e2e.conftest import served_app, settle


@pytest.fixture(scope="module")
def lab_app(app_paths, tmp_path_factory):
    """``(url, model dir, bank dir)`` of an app whose model has a calibration."""
    model_dir, bank_dir = app_paths
    if not (model_dir / "deflation.safetensors").is_file():
        from training.deflate import main

        copy = tmp_path_factory.mktemp("lab-e2e") / "model"
        shutil.copytree(model_dir, copy)
        args = ["--checkpoint", str(copy), "--manifest", str(SAMPLE_MANIFEST), "--steps", "4", "--lr", "1e-3",
                "--batch-size", "8", "--quiet"]  # fmt: skip
        assert main(args) == 0
        model_dir = copy
    with served_app(model_dir, bank_dir, tmp_path_factory.mktemp("lab-e2e-server") / "streamlit.log") as url:
        yield url, model_dir, bank_dir


def _png_bytes() -> bytes:
    from PIL import Image, ImageDraw

    im = Image.new("RGB", (160, 120), (235, 235, 235))
    ImageDraw.Draw(im).regular_polygon((80, 60, 38), 3, fill=(30, 60, 220))  # a blue triangle
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def test_uploaded_image_shows_the_three_columns_numbers(lab_app, page, shoot, tmp_path):
    from app.logic.bank_search import BankSearch
    from app.logic.deflation_compare import LabImage, run_lab
    from app.logic.query_embedding import prepare_upload
    from app.logic.uploads import validate_upload
    from mmv.bank import Bank
    from mmv.checkpoint import load_checkpoint
    from mmv.deflation import MODES

    url, model_dir, bank_dir = lab_app
    data = _png_bytes()
    png = tmp_path / "triangle.png"
    png.write_bytes(data)
    model = load_checkpoint(model_dir).eval()
    prepared = prepare_upload(validate_upload(png.name, data, tmp_path / "uploads"), model.config)
    expected = run_lab(model, BankSearch(Bank.load(bank_dir)), [LabImage(png.name, prepared.image.numpy())], repeats=1)

    page.set_viewport_size({"width": 1400, "height": 3000})
    page.goto(f"{url}/deflation_lab")
    settle(page, "Deflation lab")
    page.get_by_text("An upload", exact=True).click()
    settle(page, "Choose an image file.")
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(str(png))
    settle(page, "The three points on the S_vat map")
    page.wait_for_function(  # the map is drawn last: wait for its arrows
        "() => { const gd = document.querySelector('.js-plotly-plot');"
        " return gd && gd._fullLayout && (gd._fullLayout.annotations || []).length === 2; }",
        timeout=30_000,
    )
    page.wait_for_timeout(500)  # WebGL traces paint after the layout

    assert page.get_by_role("heading", name="1. triangle.png").count() == 1
    labels = page.locator('[data-testid="stMetricLabel"]').all_inner_texts()
    values = page.locator('[data-testid="stMetricValue"]').all_inner_texts()
    assert labels == ["cosine to inflated (S_vat)", "ms per image"] * len(MODES)
    paths = expected.images[0].paths
    for mode, cos, ms in zip(MODES, values[0::2], values[1::2]):
        if mode == "inflated":
            assert cos == "1 (reference)"
        else:
            assert float(cos) == pytest.approx(paths[mode].cosine["vat"], abs=1.5e-4), mode
        assert float(ms) > 0
    top = [paths[m].text_hits["clip_id"].iloc[0] for m in MODES]  # each column's first image -> text hit
    for clip in top:
        assert page.get_by_text(clip).count() >= 1
    # The map: two arrows (inflated -> naive, inflated -> calibrated) at the logic's points.
    arrows = page.eval_on_selector(
        ".js-plotly-plot", "gd => gd._fullLayout.annotations.map(a => [a.x, a.y, a.ax, a.ay])"
    )
    assert len(arrows) == 2
    for arrow, mode in zip(arrows, ("naive", "calibrated")):
        assert arrow == pytest.approx([*paths[mode].xy, *paths["inflated"].xy], abs=1e-4)
    body = page.inner_text("body")
    assert "Traceback" not in body
    shoot(page, "deflation_lab")
