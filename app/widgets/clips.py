"""Clips on a page: players, clip cards, result lists, and "Search from this" (a result becomes a Retrieval query).

Layout only; what is shown comes from :mod:`app.logic.bank_search` and :mod:`app.logic.clip_media`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from app.logic import state
from app.logic.bank_search import BankSearch, targets_for
from app.logic.clip_media import audio_config, clip_audio, clip_media, log_mel_of, spectrogram_image, thumbnail
from app.widgets import current, resources

RETRIEVAL_PAGE = "views/retrieval.py"
RETRIEVAL_SOURCES = ("Text", "A clip of the bank")
_GOTO_RETRIEVAL = "goto_retrieval"


def search_from(row: int, modality: str) -> None:
    """Button callback: a result becomes the Retrieval page's query (its widgets' state is set before they are drawn).

    The query is the clip's ``modality``; the target is the first other modality it can be compared with. From
    another page, the next run switches to the Retrieval page (:func:`follow_search_from`).
    """
    search = current.bank()
    st.session_state["retrieval_source"] = RETRIEVAL_SOURCES[1]
    st.session_state["retrieval_clip"] = str(search.meta.iloc[row]["clip_id"])
    st.session_state["retrieval_modality"] = modality
    others = [t for t in targets_for(search.spaces, modality) if t != modality]
    st.session_state["retrieval_target"] = others[0] if others else modality
    st.session_state[state.PLAYING] = None
    st.session_state[_GOTO_RETRIEVAL] = True


def follow_search_from(here: bool = False) -> None:
    """Goes to the Retrieval page when "Search from this" was pressed (``here``: already on it, only forget it)."""
    if st.session_state.pop(_GOTO_RETRIEVAL, False) and not here:
        st.switch_page(RETRIEVAL_PAGE)


@st.cache_data(max_entries=256, show_spinner=False)
def spectrogram(bank_path: str, row: int) -> np.ndarray | None:
    """The clip's log-mel spectrogram image (cached per bank and row), or ``None`` without sound."""
    search = resources.load_bank(bank_path)
    cfg = audio_config(search.bank)
    wave = clip_audio(search.bank, row, cfg)
    return None if wave is None else spectrogram_image(log_mel_of(wave, cfg))


def play(search: BankSearch, row: int) -> None:
    """A player for the clip: video with sound (or audio only), from its preview or its source window."""
    media = clip_media(search.bank, row)
    if media.path is None or not media.path.is_file():
        st.caption("No playable media for this clip.")
        return
    kwargs: dict[str, Any] = {"start_time": int(media.start)}
    if media.end is not None:
        kwargs["end_time"] = int(np.ceil(media.end))
    if media.is_video:
        st.video(str(media.path), **kwargs)
    else:
        st.audio(str(media.path), **kwargs)


def clip_card(search: BankSearch, row: int, bank_path: str, show_player: bool = True) -> None:
    """One clip of the gallery: player (or thumbnail), spectrogram, description and narration."""
    rec = search.meta.iloc[int(row)]
    st.markdown(f"**{rec['clip_id']}** \u00b7 {rec.get('split', '')}")
    if show_player:
        play(search, row)
    else:
        thumb = thumbnail(search.bank, row)
        if thumb is not None:
            st.image(str(thumb), width="stretch")
    spec = spectrogram(bank_path, int(row))
    if spec is not None:
        st.image(spec, caption="log-mel spectrogram (model front end)", width="stretch")
    else:
        st.caption("no sound")
    text = search.clip_text(row)
    if text["description"]:
        st.markdown(f"*{text['description']}*")
    if text["narration"]:
        st.caption(f"Narration: {text['narration']}")


def result_list(
    search: BankSearch,
    hits: pd.DataFrame,
    key: str,
    on_search_from: Callable[[int, str], None] | None = None,
) -> None:
    """Top-k results: thumbnail, clip, cosine, rank, percentile, text; a play button and "search from this".

    Args:
        search: the bank.
        hits: from :meth:`app.logic.bank_search.BankSearch.search`.
        key: unique prefix for the buttons of this list.
        on_search_from: called with ``(row, modality)`` when "search from this result" is pressed (as a
            button callback, so it may set widget state before the page reruns).
    """
    if hits.empty:
        st.info("No result in this direction (the bank has no vectors of this modality in this space).")
        return
    playing = st.session_state.get(state.PLAYING)
    for hit in hits.itertuples(index=False):
        row = int(hit.row)
        cols = st.columns([0.8, 4, 1.2])
        with cols[0]:
            thumb = thumbnail(search.bank, row)
            if thumb is not None:
                st.image(str(thumb), width="stretch")
        with cols[1]:
            st.markdown(
                f"**{hit.rank}. {hit.clip_id}** \u00b7 {hit.modality} \u00b7 cosine **{hit.score:.3f}** \u00b7 "
                f"better than {hit.percentile:.1f}% of random pairs"
            )
            if hit.description:
                st.caption(hit.description)
            if hit.narration and hit.modality == "text":
                st.caption(f"Narration: {hit.narration}")
        with cols[2]:
            this = (key, row)
            label = "Hide" if playing == this else "\u25b6 Play"
            if st.button(label, key=f"{key}-play-{row}", width="stretch"):
                st.session_state[state.PLAYING] = None if playing == this else this
                st.rerun()
            if on_search_from is not None:
                st.button(
                    "Search from this",
                    key=f"{key}-from-{row}",
                    on_click=on_search_from,
                    args=(row, str(hit.modality)),
                    width="stretch",
                    help=f"Use this clip's {hit.modality} as the query",
                )
        if playing == (key, row):
            play(search, row)


def hits_table(hits: pd.DataFrame) -> pd.DataFrame:
    """A compact table of hits for ``st.dataframe``."""
    cols = ["rank", "clip_id", "score", "percentile", "description"]
    return hits[[c for c in cols if c in hits.columns]].rename(
        columns={"score": "cosine", "percentile": "pct vs random"}
    )
