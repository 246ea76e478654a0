"""Streamlit pieces of :mod:`app.export`: download buttons with provenance, and the view kept in the URL.

* :func:`export_buttons`: a CSV and a parquet download of some tables, each a ZIP with ``provenance.json``;
  the archive is built when the button is pressed (``st.download_button``'s deferred ``data``), not on every run.
* :func:`restore_view` (call before the page's widgets) applies the URL's query parameters to the widgets'
  session-state keys, once per distinct URL: opening a shared link reopens its view, and a parameter that is
  unknown or invalid is ignored with a warning. :func:`publish_view` (after the widgets) writes the current view
  back into the URL, so the address bar always holds a link to what is shown.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pandas as pd
import streamlit as st

from app import export, resources, state, ui

_LAST_URL = "_view_url"  # the query parameters last applied or written (any page)


def restore_view(spec: Mapping[str, export.Param]) -> dict[str, Any]:
    """Applies the URL's view parameters to the widgets' session state when the URL changed; returns the values
    applied (empty when none). Warnings for ignored parameters are shown on the page."""
    try:
        params = st.query_params.to_dict()
    except Exception:  # a malformed query string: nothing to restore
        params = {}
    if not params or params == st.session_state.get(_LAST_URL):
        return {}
    values, warnings = export.read_view(params, spec)
    for key, value in values.items():
        st.session_state[key] = value
    for w in warnings:
        st.warning(w, icon=":material/link_off:")
    st.session_state[_LAST_URL] = params
    return values


def publish_view(spec: Mapping[str, export.Param]) -> dict[str, str]:
    """Writes the current widget values of ``spec`` into the URL's query parameters; returns them."""
    params = export.view_params(st.session_state, spec)
    if params != st.query_params.to_dict():
        st.query_params.from_dict(params)
    st.session_state[_LAST_URL] = params
    return params


def provenance_for(kind: str, view: Mapping[str, Any]) -> Callable[[], dict[str, Any]]:
    """A function giving :func:`app.export.provenance` of the chosen bank and checkpoint at the time it is called
    (the bank's provenance is read now, in the script's thread)."""
    model_path, bank_path = ui.paths()
    try:
        bank_prov = dict(resources.load_bank(bank_path).bank.provenance)
    except Exception:  # the page has already said the bank cannot be loaded
        bank_prov = {}
    bank, model, view = state.display_path(bank_path), state.display_path(model_path), dict(view)
    return lambda: export.provenance(kind, bank, bank_prov, model, view)


def export_buttons(kind: str, tables: Callable[[], Mapping[str, pd.DataFrame]], view: Mapping[str, Any],
                   key: str, label: str | None = None) -> None:  # fmt: skip
    """Two download buttons (CSV, parquet) for ``tables()`` with its provenance (``view``: the view's parameters)."""
    prov = provenance_for(kind, view)
    cols = st.columns([1, 1, 3])
    for col, fmt in zip(cols, export.FORMATS):
        col.download_button(
            f"{label or kind.capitalize()} \u00b7 {fmt.upper()}",
            data=lambda fmt=fmt: export.export_zip(tables(), fmt, prov()),
            file_name=export.file_name(kind, fmt),
            mime="application/zip",
            key=f"{key}-{fmt}",
            on_click="ignore",
            icon=":material/download:",
            help=f"A ZIP of the table(s) as {fmt.upper()} and provenance.json (bank, checkpoint, app version, "
            "time, the view's parameters).",
        )
