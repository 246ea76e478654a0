"""The app in a real browser: ``streamlit run app`` driven through Debian's Chromium with Playwright.

Checks, as a person would see them: the Spaces page renders both maps (WebGL traces carrying clip ids); a box
drawn on the S_va map fills the gallery with exactly the clips inside the box and highlights them on the S_vat
map too; a text query lists the clips the retrieval logic returns for it; uploading the bundled Big Buck Bunny
mp4 (with sound) lists results in every direction; a truncated mp4 gets a clear message. Screenshots go to each
test's temporary directory (and to docs/screenshots/ with ``MMV_SAVE_SCREENSHOTS=1``).
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from app_helpers import REAL_CLIP, TOYWORLD
from scipy.spatial import cKDTree

from e2e.conftest import settle

QUERY = "a red circle moves to the right"


@pytest.fixture(scope="module")
def search(app_paths):
    from app.logic.bank_search import BankSearch
    from mmv.bank import Bank

    return BankSearch(Bank.load(app_paths[1]))


def _plots(page) -> list[dict]:
    """Per map: the traces' point counts, clip rows (custom data) and marker sizes, and the plot area's geometry.

    Read from plotly's ``_fullData`` (numpy arrays reach the browser base64-encoded; ``_fullData`` holds them
    decoded).
    """
    return page.eval_on_selector_all(
        ".js-plotly-plot",
        """els => els.map(gd => {
            const L = gd._fullLayout, r = gd.getBoundingClientRect();
            return {
                title: L.title.text, left: r.left, top: r.top, l: L._size.l, t: L._size.t, w: L._size.w,
                h: L._size.h, xr: L.xaxis.range, yr: L.yaxis.range,
                traces: gd._fullData.map(t => ({type: t.type, n: (t.x || []).length,
                    rows: t.customdata ? Array.from(t.customdata, c => Number(c[0])) : null,
                    sizes: t.customdata && typeof t.marker.size === "object" ? Array.from(t.marker.size) : null})),
            };
        })""",
    )


def _to_pixels(plot: dict, x: float, y: float) -> tuple[float, float]:
    (x0, x1), (y0, y1) = plot["xr"], plot["yr"]
    px = plot["left"] + plot["l"] + (x - x0) / (x1 - x0) * plot["w"]
    py = plot["top"] + plot["t"] + (y1 - y) / (y1 - y0) * plot["h"]
    return float(px), float(py)


def test_spaces_page_renders_both_maps(server, page, shoot, search):
    page.goto(server)
    settle(page, "S_vat (video, audio, text)")
    plots = _plots(page)
    titles = [re.sub(r"<[^>]+>", "", p["title"]) for p in plots]  # the theme makes titles bold
    assert titles == ["S_va (video, audio)", "S_vat (video, audio, text)"]
    for plot, space in zip(plots, ("va", "vat")):
        marked = [t for t in plot["traces"] if t["rows"] is not None]
        assert marked and all(t["type"] == "scattergl" for t in marked)  # WebGL
        drawn = sorted(r for t in marked for r in t["rows"])
        assert drawn == sorted(search.bank.coords(space)["row"].tolist())  # every point, with its clip id
    assert page.get_by_text(re.compile(r"points \([\d,]+ clips\)")).count() == 2
    shoot(page, "spaces")


def _pick_box(plot: dict, coords, fewest: int = 3, most: int | None = None, clear: float = 2.5):
    """A box (pixel corners) on a map holding ``fewest``..``most`` clips, no point within ``clear`` px of its edges.

    ``most`` defaults to an eighth of the clips (at least 30). Candidates are rectangles around a sample of the
    points, smallest first; returns ``(top-left, bottom-right, sorted rows inside)``
    of the first clean one; it lies inside the plot area.
    """
    px = np.array([_to_pixels(plot, x, y) for x, y in zip(coords["x"], coords["y"])])
    rows = coords["row"].to_numpy()
    most = most or max(30, coords["row"].nunique() // 8)
    left, top = plot["left"] + plot["l"] + 3, plot["top"] + plot["t"] + 3
    right, bottom = left + plot["w"] - 6, top + plot["h"] - 6
    x, y = px[:, 0], px[:, 1]
    for cx, cy in px[np.argsort(x)][:: max(1, len(px) // 300)]:
        for hx in (10, 16, 24, 36, 54):
            for hy in (10, 16, 24, 36, 54):
                x0, y0, x1, y1 = cx - hx, cy - hy, cx + hx, cy + hy
                if x0 < left or y0 < top or x1 > right or y1 > bottom:
                    continue
                grown = (x > x0 - clear) & (x < x1 + clear) & (y > y0 - clear) & (y < y1 + clear)
                inner = (x > x0 + clear) & (x < x1 - clear) & (y > y0 + clear) & (y < y1 - clear)
                clips = sorted(set(rows[inner].tolist()))
                if (grown == inner).all() and fewest <= len(clips) <= most:
                    return (float(x0), float(y0)), (float(x1), float(y1)), clips
    raise AssertionError("no clean box found on the map")


def _select_box(page, server: str, search, fewest: int = 3) -> list[int]:
    """Opens Spaces, drags a box on the S_va map around ``fewest`` or more clips, waits for the gallery's header.

    Returns the bank rows inside the box, in the order the gallery lists them.
    """
    page.set_viewport_size({"width": 1400, "height": 1700})
    page.goto(server)
    settle(page, "S_vat (video, audio, text)")
    va = _plots(page)[0]
    (ax, ay), (bx, by), expected = _pick_box(va, search.bank.coords("va"), fewest=fewest)
    page.mouse.move(ax, ay)
    page.mouse.down()
    page.mouse.move((ax + bx) / 2, (ay + by) / 2, steps=6)
    page.mouse.move(bx, by, steps=6)
    page.mouse.up()
    n = len(expected)
    settle(page, f"Gallery: {n} selected clip{'s' if n != 1 else ''}")
    return expected


def test_box_selection_fills_the_gallery_with_the_clips_inside(server, page, shoot, search):
    expected = _select_box(page, server, search)
    ids = [search.meta.iloc[r]["clip_id"] for r in expected]
    every_id = set(search.meta["clip_id"].astype(str))
    cards = page.locator('[data-testid="stMarkdownContainer"] strong').all_inner_texts()
    shown = [t for t in cards if t in every_id]
    assert shown == ids[:12]
    # The same clips are highlighted (larger markers) on the other map.
    vat = _plots(page)[1]
    big = sorted({r for t in vat["traces"] if t["sizes"] for r, s in zip(t["rows"], t["sizes"]) if s > 8})
    assert big == expected
    shoot(page, "spaces-selection")


def test_clicking_a_point_opens_the_inspector(server, page, shoot, search):
    page.set_viewport_size({"width": 1400, "height": 1800})
    page.goto(server)
    settle(page, "S_vat (video, audio, text)")
    page.get_by_text("click to inspect").click()
    page.wait_for_function(  # the maps are redrawn with dragging = panning, so a click selects a point
        "() => [...document.querySelectorAll('.js-plotly-plot')].every(gd => gd._fullLayout.dragmode === 'pan')"
    )
    settle(page)
    vat = _plots(page)[1]
    coords = search.bank.coords("vat")
    px = np.array([_to_pixels(vat, x, y) for x, y in zip(coords["x"], coords["y"])])
    gaps, _ = cKDTree(px).query(px, k=2)
    target = int(np.argmax(gaps[:, 1]))  # the most isolated point: no other point under the cursor
    row, modality = int(coords["row"].iloc[target]), str(coords["modality"].iloc[target])
    page.mouse.click(*px[target])
    clip_id = search.meta.iloc[row]["clip_id"]
    settle(page, f"Inspector: {clip_id} ({modality})")
    for space, other in search.neighbours(row, modality, 5):
        assert page.get_by_text(f"S_{space}: nearest {other}", exact=True).count() == 1
    shoot(page, "spaces-inspector")


def test_text_query_returns_the_expected_clips(server, page, shoot, search, app_paths):
    from app.logic.query_embedding import embed_query, prepare_text
    from mmv.checkpoint import load_checkpoint

    model = load_checkpoint(app_paths[0]).eval()
    expected = search.search(embed_query(model, prepare_text(QUERY, model.config))["text"], "text", "video", 10)
    page.set_viewport_size({"width": 1400, "height": 2200})
    page.goto(f"{server}/retrieval")
    settle(page, "text \u2192 video in S_vat: top 10")
    box = page.get_by_label("Text query")
    box.fill("a blue square")
    box.press("Enter")
    settle(page)
    box.fill(QUERY)
    box.press("Enter")
    settle(page, f"1. {expected['clip_id'].iloc[0]}")
    lines = page.get_by_text(re.compile(r"^\d+\. \S+ \u00b7 video \u00b7 cosine")).all_inner_texts()
    shown = [re.match(r"^\d+\. (\S+)", t).group(1) for t in lines]
    assert shown == expected["clip_id"].tolist()
    assert f"cosine {expected['score'].iloc[0]:.3f}" in lines[0]
    shoot(page, "retrieval")


def test_uploading_an_mp4_with_sound_returns_results(server, page, shoot):
    page.set_viewport_size({"width": 1400, "height": 2600})
    page.goto(f"{server}/upload")
    settle(page, "Video with sound, audio, image or text file")
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(str(REAL_CLIP))
    settle(page, "Your query on the maps")
    for direction in ("video \u2192 audio (S_va)", "video \u2192 text (S_vat)", "audio \u2192 video (S_va)",
                      "audio \u2192 text (S_vat)"):  # fmt: skip
        assert page.get_by_role("heading", name=direction).count() == 1
    results = page.get_by_text(re.compile(r"^1\. \S+ \u00b7 (video|audio|text) \u00b7 cosine"))
    assert results.count() == 4
    assert page.get_by_text("What the model sees").count() == 1
    page.locator(".js-plotly-plot").nth(1).wait_for(timeout=30_000)  # the maps are drawn last: wait for both
    assert page.locator(".js-plotly-plot").count() == 2  # the query on both maps
    shoot(page, "upload")


def test_a_truncated_mp4_gets_a_clear_message(server, page, tmp_path):
    data = (TOYWORLD / "clips" / "000002.mp4").read_bytes()
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(data[: len(data) // 2])
    page.goto(f"{server}/upload")
    settle(page, "Video with sound, audio, image or text file")
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(str(bad))
    settle(page, "is incomplete (truncated")
    body = page.inner_text("body")
    assert "Upload the complete file" in body and "Traceback" not in body


def test_no_request_leaves_the_machine(server, page):
    """Every request the pages make (scripts, fonts, the favicon, media, websockets) goes to the app's own server."""
    from urllib.parse import urlparse

    seen: list[str] = []
    page.on("request", lambda request: seen.append(request.url))
    page.on("websocket", lambda ws: seen.append(ws.url))
    for path in ("", "retrieval", "upload", "metrics", "model", "tour"):
        page.goto(f"{server}/{path}")
        settle(page)
    page.wait_for_timeout(1000)  # late requests (the favicon, fonts)
    outside = sorted(
        {
            u
            for u in seen
            if urlparse(u).scheme not in ("data", "blob") and urlparse(u).hostname not in ("127.0.0.1", "localhost")
        }
    )
    assert len(seen) > 20 and not outside, outside
