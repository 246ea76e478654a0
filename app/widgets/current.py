"""The model, bank and selection chosen in this session, or the page stops saying what to do.

Every page starts with :func:`bank` (and :func:`model` when it embeds queries): when the model or
the bank is missing or cannot be loaded, the page shows what to do and stops, never a traceback.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import streamlit as st

from app.logic import state
from app.logic.bank_search import BankSearch
from app.widgets import resources

if TYPE_CHECKING:
    from mmv.models.mmv import MMV

logger = logging.getLogger(__name__)


def paths() -> tuple[str, str]:
    """``(model path, bank path)`` chosen in the sidebar."""
    model = st.session_state.get(state.MODEL_PATH) or str(state.default_model())
    bank = st.session_state.get(state.BANK_PATH) or str(state.default_bank())
    return str(model), str(bank)


def _stop_with(message: str) -> None:
    st.error(message)
    st.stop()


def bank() -> BankSearch:
    """The chosen bank (loaded once), or the page stops with what to do."""
    _, bank_path = paths()
    if not state.is_bank(Path(bank_path)):
        _stop_with(state.missing_message(Path(paths()[0]), Path(bank_path)) or "No bank.")
    try:
        return resources.load_bank(bank_path)
    except Exception as e:  # a damaged bank: say so, never a traceback
        logger.exception("cannot load the bank %s", bank_path)
        _stop_with(f"The bank at `{state.display_path(bank_path)}` cannot be loaded: {e}")
    raise AssertionError("unreachable")


def selected_rows(num_rows: int) -> list[int]:
    """The bank rows selected on the Spaces page (box or lasso) that exist in a bank of ``num_rows`` clips."""
    return [r for r in st.session_state.get(state.SELECTED_ROWS, []) if 0 <= r < num_rows]


def model() -> MMV:
    """The chosen model (loaded once), or the page stops with what to do."""
    model_path, bank_path = paths()
    if not state.is_checkpoint(Path(model_path)):
        _stop_with(state.missing_message(Path(model_path), Path(bank_path)) or "No model.")
    try:
        return resources.load_model(model_path)
    except Exception as e:
        logger.exception("cannot load the model %s", model_path)
        _stop_with(f"The checkpoint at `{state.display_path(model_path)}` cannot be loaded: {e}")
    raise AssertionError("unreachable")


def model_lacks_word_list() -> bool:
    """The chosen checkpoint has a text tower but no word list (read from its files, without loading the weights)."""
    from mmv.checkpoint import VOCAB_FILE, read_checkpoint_header

    model_path = Path(paths()[0])
    if not state.is_checkpoint(model_path) or (model_path / VOCAB_FILE).is_file():
        return False
    try:
        return "text" in read_checkpoint_header(model_path)["config"].get("modalities", [])
    except (OSError, ValueError, KeyError):
        return False
