"""Everything the app loads once and shares between sessions and pages (``st.cache_resource``).

The model and the bank are loaded once per path for the life of the server. Prepared uploads are kept in
a bounded cache (:data:`UPLOAD_CACHE_ENTRIES` entries, least recently used dropped), keyed by the file's
hash and the chosen options, so a rerun of the page does not decode the file again. The pages call these
functions; the logic behind them lives in ``app/logic/`` (:mod:`~app.logic.bank_search`,
:mod:`~app.logic.query_embedding`, ...).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import streamlit as st

from app.logic import state

if TYPE_CHECKING:
    from app.logic.bank_search import BankSearch
    from mmv.models.mmv import MMV

logger = logging.getLogger(__name__)
UPLOAD_CACHE_ENTRIES = 8


def load_log() -> logging.Logger:
    """The logger of loads: one INFO line on stderr per model or bank actually loaded (``loaded the model <path>``).

    The load test (``tests/e2e/test_load.py``) counts these lines in the server's log: however many sessions ask
    at once, each path must be loaded once per server.
    """
    log = logging.getLogger("mmv.app.loads")
    if not log.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s: %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False
    return log


def load_model(path: str) -> MMV:
    """The checkpoint at ``path`` in eval mode (safetensors; nothing is unpickled), loaded once per directory
    however the path is spelt (relative or absolute: :func:`~app.logic.state.same_place`)."""
    return _load_model(state.same_place(path))


@st.cache_resource(show_spinner="Loading the model\u2026", max_entries=4)
def _load_model(path: str) -> MMV:
    import torch

    from mmv.checkpoint import load_checkpoint

    # One intra-op thread by default (MMV_APP_THREADS overrides): the server runs one script thread per session, and
    # on a small shared machine OpenMP threads that spin while waiting for a core made an upload's forward pass
    # 10-100x slower (measured: 0.07 s with 1 thread, 0.5-8 s with 2, on 2 busy cores).
    torch.set_num_threads(max(1, int(os.environ.get("MMV_APP_THREADS", "1"))))
    model = load_checkpoint(path)
    model.eval()
    load_log().info("loaded the model %s", path)
    return model


def load_bank(path: str) -> BankSearch:
    """The bank at ``path`` as a :class:`~app.logic.bank_search.BankSearch` (its caches live as long as it does),
    loaded once per directory however the path is spelt."""
    return _load_bank(state.same_place(path))


@st.cache_resource(show_spinner="Loading the embedding bank\u2026", max_entries=4)
def _load_bank(path: str) -> BankSearch:
    from app.logic.bank_search import BankSearch
    from mmv.bank import Bank

    search = BankSearch(Bank.load(path))
    load_log().info("loaded the bank %s", path)
    return search


@st.cache_resource(max_entries=16)
def map_coords(bank_path: str, space: str) -> Any:
    """``bank.coords(space)`` (computed once per bank and space)."""
    return load_bank(bank_path).bank.coords(space)


@st.cache_resource(max_entries=UPLOAD_CACHE_ENTRIES, show_spinner="Checking the file\u2026")
def checked_upload(digest: str, name: str, _data: bytes) -> Any:
    """:func:`app.logic.uploads.validate_upload` of a file (``_data`` is not hashed: ``digest`` stands for it).

    Raises :class:`app.logic.uploads.UploadError` (not cached) for a file the app cannot use.
    """
    from app.logic.uploads import validate_upload

    state.prune_uploads()
    valid = validate_upload(name, _data, state.UPLOAD_DIR)
    if valid.path is not None:
        state.touch(Path(valid.path).parent)
    return valid


@st.cache_resource(show_spinner=False, max_entries=UPLOAD_CACHE_ENTRIES)
def prepared_upload(digest: str, model_path: str, window_mode: str, num_windows: int, start: float, _valid: Any) -> Any:
    """``(PreparedQuery, {modality: {space: vector}})`` of a checked upload, for one model and window choice."""
    from app.logic.query_embedding import embed_query, prepare_upload

    model = load_model(model_path)
    prepared = prepare_upload(_valid, model.config, window_mode, num_windows or None, start)
    return prepared, embed_query(model, prepared)


@st.cache_resource(max_entries=64)
def projected(bank_path: str, space: str, vectors: tuple[tuple[float, ...], ...]) -> Any:
    """``bank.project(space, vectors)``: the query placed among its nearest bank points (no UMAP refit, no numba)."""
    import numpy as np

    return load_bank(bank_path).bank.project(space, np.asarray(vectors, dtype=np.float32))
