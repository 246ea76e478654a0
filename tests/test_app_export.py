"""Exports and the view in the URL (``app/logic/export.py``), and the Metrics page driven by AppTest.

What is checked: a CSV or parquet export read back equals the data, and its provenance names the bank (with the
checkpoint it was built from), the checkpoint chosen, the app's version and commit, the time and the view; URL
parameters become widget values and back, bad ones are ignored with a warning; on the tiny model's toy-world
bank the Metrics page shows exactly the numbers ``app.logic.bank_metrics`` computes, for the test split and for a
selection; Spaces and Retrieval reopen the view a URL names and write their view into the URL.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from app_helpers import app_environment, tiny_model_and_bank

from app.logic import bank_metrics as metrics
from app.logic import export, state
from app.logic.export import Param

pytest.importorskip("streamlit.testing.v1")
from streamlit.testing.v1 import AppTest  # noqa: E402

ENTRY = str(Path(__file__).resolve().parents[1] / "app" / "streamlit_app.py")
TIMEOUT = 120
METRICS_PAGE = "views/metrics.py"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    model_dir, bank_dir = tiny_model_and_bank(tmp_path_factory.mktemp("app"))
    with app_environment(model_dir, bank_dir):
        yield model_dir, bank_dir


@pytest.fixture(scope="module")
def search(tiny):
    from app.logic.bank_search import BankSearch
    from mmv.bank import Bank

    return BankSearch(Bank.load(tiny[1]))


# ---------------------------------------------------------------------------------------------------
# Export files
# ---------------------------------------------------------------------------------------------------


def _table() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "row": np.arange(7, dtype=np.int64),
            "clip_id": [f"toyworld/{i:06d}" for i in range(7)],
            "score": rng.standard_normal(7),  # float64: every bit must come back
            "text": [
                "a red circle",
                'with "quotes", commas',
                "caf\u00e9 \u2192 cr\u00e8me",
                "",
                "line\nbreak",
                "x",
                "42",
            ],  # fmt: skip
            "selected": [True, False, True, False, False, True, False],
        }
    )


@pytest.mark.parametrize("fmt", export.FORMATS)
def test_an_export_reads_back_equal_with_its_provenance(fmt):
    df = _table()
    when = datetime(2024, 5, 6, 7, 8, 9, tzinfo=timezone.utc)
    bank_prov = {"format": "mmv-bank", "created": "2024-01-01T00:00:00+00:00", "timings": {"embed": 3.0},
                 "checkpoint": {"path": "/m/model", "sha256": "ab" * 32}, "parameters": {"num_windows": 1}}  # fmt: skip
    view = {"space": "vat", "query": "a red circle", "k": np.int64(10), "colour": "label_shape"}
    prov = export.provenance("neighbours", "models/demo/bank", bank_prov, "models/demo/model", view, now=when)
    data = export.export_zip({"neighbours": df, "other": df.head(2)}, fmt, prov)
    names = zipfile.ZipFile(io.BytesIO(data)).namelist()
    assert sorted(names) == sorted([f"neighbours.{fmt}", f"other.{fmt}", "provenance.json"])
    tables, back = export.read_export(data)
    pd.testing.assert_frame_equal(tables["neighbours"], df, check_exact=True)
    pd.testing.assert_frame_equal(tables["other"], df.head(2), check_exact=True)
    assert back["kind"] == "neighbours" and back["format"] == fmt
    assert back["created"] == "2024-05-06T07:08:09+00:00"
    assert back["view"] == {"space": "vat", "query": "a red circle", "k": 10, "colour": "label_shape"}
    assert back["checkpoint"] == "models/demo/model"
    assert back["bank"]["path"] == "models/demo/bank"
    assert back["bank"]["checkpoint"] == {"path": "/m/model", "sha256": "ab" * 32}
    assert back["bank"]["parameters"] == {"num_windows": 1} and "timings" not in back["bank"]
    from mmv import __version__

    assert back["app"]["mmv_version"] == __version__
    commit = back["app"]["git_commit"]
    if (Path(export.ROOT) / ".git").exists():
        assert re.fullmatch(r"[0-9a-f]{40}", commit)
    assert back["tables"]["neighbours"] == {"file": f"neighbours.{fmt}", "rows": 7, "columns": list(df.columns)}
    if fmt == "parquet":  # the parquet file carries the provenance itself
        import pyarrow.parquet as pq

        raw = zipfile.ZipFile(io.BytesIO(data)).read("neighbours.parquet")
        meta = pq.read_schema(io.BytesIO(raw)).metadata
        assert json.loads(meta[export.PARQUET_KEY]) == back


def test_lists_are_exported_as_json_and_unknown_formats_refused():
    df = pd.DataFrame({"captions": [["a", "b"], []], "n": [1, 2]})
    tables, _ = export.read_export(export.export_zip({"t": df}, "csv", {"kind": "x"}))
    assert [json.loads(v) for v in tables["t"]["captions"]] == [["a", "b"], []]
    with pytest.raises(ValueError, match="format"):
        export.table_bytes(df, "xlsx")
    assert re.fullmatch(r"mmv-metrics-\d{8}-\d{6}-csv\.zip", export.file_name("metrics", "csv"))


def test_coordinates_table_of_a_bank(search):
    coords = search.bank.coords("vat")
    t = export.coordinates_table(coords, search.meta, "label_shape", selected=[1, 3])
    assert list(t.columns) == ["row", "clip_id", "modality", "x", "y", "split", "label_shape", "selected"]
    assert len(t) == len(coords)
    np.testing.assert_array_equal(t[["x", "y"]].to_numpy(), coords[["x", "y"]].to_numpy())
    assert set(t.loc[t["selected"], "row"]) == {1, 3}
    assert (t["label_shape"].to_numpy() == search.meta["label_shape"].to_numpy()[t["row"]]).all()
    tables, _ = export.read_export(export.export_zip({"coordinates": t}, "parquet", {"kind": "coordinates"}))
    pd.testing.assert_frame_equal(tables["coordinates"], t)


# ---------------------------------------------------------------------------------------------------
# The view in the URL
# ---------------------------------------------------------------------------------------------------

SPEC = {
    "source": Param("src", "choice", aliases={"text": "Text", "clip": "A clip of the bank"}),
    "q": Param("text", "str", max_len=20),
    "colour": Param("colour", "choice", lambda: ["modality", "split", "label_shape"]),
    "k": Param("k", "int", lo=1, hi=50),
    "links": Param("links", "choice", aliases={"1": True, "0": False}),
    "compare": Param("cmp", "str", omit="(none)"),
}


def test_query_params_become_the_view_and_back():
    params = {"source": "clip", "q": "a red circle", "colour": "label_shape", "k": "7", "links": "1"}
    values, warnings = export.read_view(params, SPEC)
    assert warnings == []
    assert values == {"src": "A clip of the bank", "text": "a red circle", "colour": "label_shape", "k": 7,
                      "links": True}  # fmt: skip
    assert export.view_params(values, SPEC) == params
    assert export.view_params({"cmp": "(none)", "k": 3, "text": ""}, SPEC) == {"k": "3"}
    assert export.read_view({"k": ["3", "9"]}, SPEC)[0] == {"k": 9}  # repeated: the last one counts


def test_bad_query_params_are_ignored_with_a_warning():
    bad = {"k": "abc", "colour": "purple", "q": "x" * 21, "links": "yes", "foo": "1", "scope": "test"}
    values, warnings = export.read_view(bad | {"source": "text"}, SPEC)
    assert values == {"src": "Text"}
    text = "\n".join(warnings)
    assert len(warnings) == 5  # scope belongs to the Metrics page: skipped silently
    for words in ("`k=abc` is not a whole number", "`colour=purple` is not one of modality, split", "longer than 20",
                  "`links=yes`", "Unknown URL parameter `foo`"):  # fmt: skip
        assert words in text
    assert export.read_view({"k": "0"}, SPEC)[1] == ["URL parameter `k=0` is outside 1\u201350: ignored."]
    assert export.read_view({}, SPEC) == ({}, [])


# ---------------------------------------------------------------------------------------------------
# The pages (AppTest)
# ---------------------------------------------------------------------------------------------------


def _app(page: str | None = None, params: dict | None = None, selected: list[int] | None = None) -> AppTest:
    at = AppTest.from_file(ENTRY, default_timeout=TIMEOUT)
    if selected is not None:
        at.session_state[state.SELECTED_ROWS] = selected
    at.run()
    if page is not None:
        at.switch_page(page)
        if params:
            at.query_params.update(params)
        at.run()
    return at


def _no_exception(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    for e in at.error:
        assert "Traceback" not in e.value


def _shown_metrics(at: AppTest) -> pd.DataFrame:
    table = at.table[0].value  # the first table: R@k per direction
    return table


def _expected(search, rows) -> pd.DataFrame:
    t = metrics.evaluate(search, rows).table
    return pd.DataFrame(
        {"queries": t["queries"].to_numpy(), "candidates": t["candidates"].to_numpy(),
         "R@1 %": (100 * t["r1"]).round(1).to_numpy(), "R@10 %": (100 * t["r10"]).round(1).to_numpy(),
         "MedR": t["medr"].to_numpy()},
        index=t["label"].to_numpy(),
    )  # fmt: skip


def _compare(shown: pd.DataFrame, expected: pd.DataFrame) -> None:
    assert shown.index.tolist() == expected.index.tolist()
    for col in expected.columns:
        np.testing.assert_allclose(shown[col].astype(float), expected[col].astype(float), err_msg=col)


def test_metrics_page_shows_the_logics_numbers_on_the_test_split(tiny, search):
    at = _app(METRICS_PAGE)
    _no_exception(at)
    assert at.title[0].value == "Metrics"
    rows = metrics.scope_rows(search.meta, "test").rows
    assert at.radio(key="metrics_scope").value == "test"
    assert f"**Scope: {len(rows)} clips** (test split)" in [m.value for m in at.markdown]
    _compare(_shown_metrics(at), _expected(search, rows))
    hub_summary = at.table[1].value
    summary, _ = metrics.hubs(metrics.evaluate(search, rows))
    np.testing.assert_allclose(hub_summary["expected"].astype(float), summary["expected"].round(2))
    aligned = metrics.alignment_summary(metrics.alignment(search, rows))
    np.testing.assert_allclose(at.table[2].value["auc"].astype(float), aligned["auc"].round(3))
    assert len(at.get("plotly_chart")) == 1 + 2  # rank histogram, alignment per space
    assert at.query_params.get("scope") == "test" and at.query_params.get("k") == "10"


def test_metrics_page_on_the_selection_and_compared_with_itself(tiny, search):
    selected = [0, 2, 3, 5, 9, 11, 14, 20, 21, 30, 33, 40]
    at = _app(METRICS_PAGE, selected=selected)
    at.radio(key="metrics_scope").set_value("selection").run()
    _no_exception(at)
    assert f"**Scope: {len(selected)} clips** (selection)" in [m.value for m in at.markdown]
    expected = _expected(search, np.array(selected))
    _compare(_shown_metrics(at), expected)
    assert (expected["candidates"] <= len(selected)).all() and expected["queries"].max() == len(selected)
    assert not _expected(search, metrics.scope_rows(search.meta, "test").rows)["queries"].equals(expected["queries"])
    at.selectbox(key="metrics_compare").set_value(str(tiny[1])).run()
    _no_exception(at)
    deltas = at.table[-1].value
    assert deltas.index.tolist() == expected.index.tolist()
    for col in ("\u0394R@1", "\u0394R@5", "\u0394R@10", "\u0394MedR"):
        np.testing.assert_array_equal(deltas[col].astype(float), 0.0)
    assert at.query_params.get("scope") == "selection" and at.query_params.get("compare") == str(tiny[1])


def test_metrics_page_says_when_the_selection_is_empty(tiny):
    at = _app(METRICS_PAGE, params={"scope": "selection", "k": "banana"})
    _no_exception(at)
    assert at.radio(key="metrics_scope").value == "selection"  # from the URL
    assert any("No clip is selected" in i.value for i in at.info)
    assert any("`k=banana` is not a whole number" in w.value for w in at.warning)


def test_retrieval_reopens_the_view_in_the_url(tiny, search):
    params = {"source": "text", "q": "a blue square", "target": "audio", "k": "3"}
    at = _app("views/retrieval.py", params=params)
    _no_exception(at)
    assert not at.warning
    assert at.text_input(key="retrieval_text").value == "a blue square"
    assert "text \u2192 audio in S_vat: top 3" in [s.value for s in at.subheader]
    assert at.query_params == params
    at.slider(key="retrieval_k").set_value(5).run()  # a change goes into the URL
    assert at.query_params["k"] == "5" and at.text_input(key="retrieval_text").value == "a blue square"
    clip = str(search.meta["clip_id"].iloc[4])
    at2 = _app("views/retrieval.py", params={"source": "clip", "clip": clip, "modality": "audio", "k": "4"})
    _no_exception(at2)
    assert at2.selectbox(key="retrieval_clip").value == clip and at2.radio(key="retrieval_modality").value == "audio"
    assert "audio \u2192 video in S_va: top 4" in [s.value for s in at2.subheader]
    assert at2.query_params == {"source": "clip", "clip": clip, "modality": "audio", "target": "video", "k": "4"}


def test_bad_url_parameters_never_crash_a_page(tiny):
    at = _app("views/retrieval.py", params={"k": "-3", "target": "smell", "clip": "no/such", "zz": "1"})
    _no_exception(at)
    warnings = "\n".join(w.value for w in at.warning)
    assert "`k=-3` is outside 1\u201350" in warnings and "`target=smell`" in warnings and "`zz`" in warnings
    assert "`clip=no/such`" in warnings
    assert at.slider(key="retrieval_k").value == 10 and "text \u2192 video in S_vat: top 10" in [
        s.value for s in at.subheader
    ]
    at = AppTest.from_file(ENTRY, default_timeout=TIMEOUT)
    at.query_params.update({"colour": "label_shape", "links": "1", "space": "vat"})
    at.run()
    _no_exception(at)
    assert at.selectbox(key="spaces_colour").value == "label_shape" and at.toggle(key="spaces_links").value is True
    assert at.selectbox(key="spaces_export_space").value == "vat"
    at = AppTest.from_file(ENTRY, default_timeout=TIMEOUT)
    at.query_params.update({"colour": "<script>", "space": "xyz"})
    at.run()
    _no_exception(at)
    assert at.selectbox(key="spaces_colour").value == "modality" and len(at.warning) == 2
    assert at.query_params == {"colour": "modality", "links": "0", "space": "va"}
