"""The view kept in the URL: a shared link reopens what its sender saw.

:func:`restore_view` (call before the page's widgets) applies the URL's query parameters to the widgets'
session-state keys, once per distinct URL: opening a shared link reopens its view, and a parameter that is
unknown or invalid is ignored with a warning. :func:`publish_view` (after the widgets) writes the current view
back into the URL, so the address bar always holds a link to what is shown. What the parameters mean and which
values are valid is :mod:`app.logic.export`'s (:class:`~app.logic.export.Param`, ``read_view``, ``view_params``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import streamlit as st

from app.logic import export

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
