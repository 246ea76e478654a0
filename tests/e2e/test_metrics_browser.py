"""The Metrics page and the view in the URL in a real browser (``streamlit run app`` in Chromium, Playwright).

Checks, as a person would see them: a box drawn on the Spaces map selects clips; on the Metrics page the scope
"Selection from Spaces" says as many clips as were selected and the metrics table changes from the test split's
to exactly the numbers ``app.logic.bank_metrics`` computes on those clips; the "Metrics · CSV" download is a ZIP
whose table equals them, with its provenance; a URL with query parameters reopens the Retrieval and Spaces views it
names, and a bad parameter is ignored with a warning; the coordinates and neighbours downloads hold what the
page shows. Screenshots: ``metrics``, ``metrics-url``.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlparse

import numpy as np
import pytest

from app.logic import bank_metrics as metrics
from app.logic import export
from e2e.conftest import settle
from e2e.test_app_browser import _select_box

TABLE_JS = """el => ({
    head: [...el.querySelectorAll('thead th')].map(c => c.innerText.trim()),
    rows: [...el.querySelectorAll('tbody tr')].map(tr => [...tr.children].map(c => c.innerText.trim())),
})"""


@pytest.fixture(scope="module")
def search(app_paths):
    from app.logic.bank_search import BankSearch
    from mmv.bank import Bank

    return BankSearch(Bank.load(app_paths[1]))


def _metrics_table(page) -> dict[str, dict[str, float]]:
    """The first table of the page (R@k per direction) as ``{direction: {column: value}}``."""
    t = page.locator('[data-testid="stTable"] table').first.evaluate(TABLE_JS)
    head = t["head"][1:] if len(t["head"]) == len(t["rows"][0]) else t["head"]
    out = {}
    for cells in t["rows"]:
        values = dict(zip(head[-(len(cells) - 1) :], cells[1:]))
        out[cells[0]] = {k: v for k, v in values.items()}
    return out


def _expected(search, rows) -> dict[str, dict[str, float]]:
    t = metrics.evaluate(search, np.asarray(rows)).table
    return {
        r.label: {"queries": r.queries, "R@1 %": round(100 * r.r1, 1), "R@10 %": round(100 * r.r10, 1), "MedR": r.medr}
        for r in t.itertuples()
    }


def _matches(shown: dict, expected: dict) -> None:
    assert list(shown) == list(expected)
    for label, values in expected.items():
        for col, value in values.items():
            assert float(shown[label][col]) == pytest.approx(float(value), abs=1e-9), (label, col)


def test_selecting_clips_changes_the_metrics(server, page, shoot, search, tmp_path):
    expected_rows = _select_box(page, server, search, fewest=6)
    n = len(expected_rows)

    page.get_by_role("link", name="Metrics").click()  # the sidebar's navigation: same session, same selection
    test_rows = metrics.scope_rows(search.meta, "test").rows
    settle(page, f"Scope: {len(test_rows)} clips")
    before = _metrics_table(page)
    _matches(before, _expected(search, test_rows))

    page.get_by_text(f"Selection from Spaces ({n} clips)").click()
    settle(page, f"Scope: {n} clips")
    after = _metrics_table(page)
    _matches(after, _expected(search, expected_rows))
    assert after != before
    assert max(int(v["queries"]) for v in after.values()) == n
    assert parse_qs(urlparse(page.url).query)["scope"] == ["selection"]
    page.set_viewport_size({"width": 1400, "height": 3300})  # the whole page in the screenshot
    settle(page)
    shoot(page, "metrics")

    with page.expect_download() as info:
        page.get_by_role("button", name="Metrics \u00b7 CSV").click()
    path = tmp_path / "metrics.zip"
    info.value.save_as(path)
    tables, prov = export.read_export(path.read_bytes())
    assert prov["kind"] == "metrics" and prov["view"]["scope"] == "selection" and prov["view"]["clips"] == n
    assert prov["bank"]["checkpoint"]["sha256"] == search.bank.provenance["checkpoint"]["sha256"]
    table = tables["metrics"]
    ref = metrics.evaluate(search, np.asarray(expected_rows)).table
    assert table["direction"].tolist() == ref["direction"].tolist()
    for col in ("queries", "candidates", "r1", "r5", "r10", "medr", "meanr"):
        np.testing.assert_array_equal(table[col].to_numpy(dtype=float), ref[col].to_numpy(dtype=float))


def test_a_url_reopens_the_view(server, page, shoot, search, tmp_path, playwright_api):
    expect = playwright_api.expect
    page.set_viewport_size({"width": 1400, "height": 1500})
    page.goto(f"{server}/retrieval?source=text&q=a+blue+square&target=audio&k=3")
    settle(page, "text \u2192 audio in S_vat: top 3")
    # A text box whose value the script set (here from the URL, through st.session_state) mounts empty and is
    # filled by a later render of Streamlit's frontend (useUpdateUiValue's effect), which can trail the end of
    # the run by more than settle()'s grace on a loaded machine: wait for the value, do not read it once.
    expect(page.get_by_label("Text query")).to_have_value("a blue square")
    assert "URL parameter" not in page.inner_text("body"), page.inner_text("body")[:3000]  # every parameter valid
    query = parse_qs(urlparse(page.url).query)
    assert query == {"source": ["text"], "q": ["a blue square"], "target": ["audio"], "k": ["3"]}
    shoot(page, "metrics-url")
    page.get_by_text("Export these results").click()  # the neighbours shown, as a download
    with page.expect_download() as info:
        page.get_by_role("button", name="Neighbours \u00b7 CSV").click()
    info.value.save_as(tmp_path / "neighbours.zip")
    tables, prov = export.read_export((tmp_path / "neighbours.zip").read_bytes())
    shown = page.get_by_text(re.compile(r"^\d+\. \S+ \u00b7 audio \u00b7 cosine")).all_inner_texts()
    assert tables["neighbours"]["clip_id"].tolist() == [re.match(r"^\d+\. (\S+)", t).group(1) for t in shown]
    assert prov["view"] | {"k": 3} == {"source": "Text", "query": "a blue square", "query_modality": "text",
                                       "target": "audio", "space": "vat", "k": 3}  # fmt: skip

    page.goto(f"{server}/?colour=label_shape&links=1&nonsense=%3Cb%3E")
    settle(page, "S_vat (video, audio, text)")
    settle(page, "S_va (video, audio)")  # the legends below are the S_va map's: drawn apart from the S_vat map
    assert "Unknown URL parameter nonsense ignored" in page.inner_text("body")
    assert parse_qs(urlparse(page.url).query) == {"colour": ["label_shape"], "links": ["1"], "space": ["va"]}
    legends = page.eval_on_selector_all(".js-plotly-plot", "els => els.map(gd => gd._fullData.map(t => t.name))")
    shapes = set(search.meta["label_shape"].astype(str))
    assert any(name.split(" \u00b7 ")[0] in shapes for name in legends[0] if name)  # coloured by shape
    assert any("\u2013" in name for name in legends[0] if name)  # the lines joining a clip's points
    with page.expect_download() as info:  # the map's coordinates
        page.get_by_role("button", name="S_va coordinates \u00b7 PARQUET").click()
    info.value.save_as(tmp_path / "coords.zip")
    tables, prov = export.read_export((tmp_path / "coords.zip").read_bytes())
    coords = search.bank.coords("va")
    np.testing.assert_array_equal(tables["coordinates"][["x", "y"]].to_numpy(), coords[["x", "y"]].to_numpy())
    assert (
        tables["coordinates"]["label_shape"].tolist() == search.meta["label_shape"].to_numpy()[coords["row"]].tolist()
    )
    assert prov["kind"] == "coordinates-va" and prov["view"]["colour"] == "label_shape"

    page.goto(f"{server}/metrics?scope=everything&k=0")
    settle(page, "Scope: ")
    body = page.inner_text("body")
    assert "scope=everything is not one of test, selection" in body and "k=0 is outside 1\u2013100" in body
    assert "Traceback" not in body
