"""Download buttons for :mod:`app.logic.export`: a CSV and a parquet ZIP of some tables, with their provenance.

The archive is built when the button is pressed (``st.download_button``'s deferred ``data``), not on every run.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pandas as pd
import streamlit as st

from app.logic import export, state
from app.widgets import current, resources


def provenance_for(kind: str, view: Mapping[str, Any]) -> Callable[[], dict[str, Any]]:
    """A function giving :func:`app.logic.export.provenance` of the chosen bank and checkpoint at the time it is
    called (the bank's provenance is read now, in the script's thread)."""
    model_path, bank_path = current.paths()
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
