"""Retrieval: a text or a bank clip as the query, top-k of another modality with cosine and percentile."""

from __future__ import annotations

import streamlit as st

from app.logic.bank_search import MODALITIES, QueryError, space_for, targets_for
from app.logic.export import Param
from app.logic.query_embedding import NO_WORD_LIST, embed_query, prepare_text, tokenize_text
from app.logic.uploads import UploadError
from app.widgets import clips, current
from app.widgets.downloads import export_buttons
from app.widgets.view_url import publish_view, restore_view

SOURCES = clips.RETRIEVAL_SOURCES
EXAMPLE = "a red circle moves to the right"


st.title("Retrieval")
st.caption(
    "A query in one modality against the bank's items of another, in the space where the two meet (S_va for "
    "video and audio, S_vat when text is involved). Scores are cosines; the percentile says how the score "
    "compares with random pairs of the bank in the same space and modalities."
)
clips.follow_search_from(here=True)
search = current.bank()
meta = search.meta
# The view in the URL (source, text or clip, modalities, k): a link reopens it; bad parameters are ignored.
VIEW = {
    "source": Param("retrieval_source", "choice", aliases={"text": SOURCES[0], "clip": SOURCES[1]}),
    "q": Param("retrieval_text", "str", max_len=2000),
    "clip": Param("retrieval_clip", "choice", lambda: meta["clip_id"].astype(str).tolist()),
    "modality": Param("retrieval_modality", "choice", MODALITIES),
    "target": Param("retrieval_target", "choice", MODALITIES),
    "k": Param("retrieval_k", "int", lo=1, hi=50),
}
restore_view(VIEW)
if current.model_lacks_word_list():  # e.g. a converted official checkpoint without --vocab
    st.info(NO_WORD_LIST)
    st.session_state.setdefault("retrieval_source", SOURCES[1])
st.session_state.setdefault("retrieval_text", EXAMPLE)  # defaults set here, not as widget values, so that a value
st.session_state.setdefault("retrieval_k", 10)  # restored from the URL does not clash with a widget default

source = st.radio("Query", SOURCES, horizontal=True, key="retrieval_source")
query_vectors: dict[str, dict] = {}
exclude = None
if source == SOURCES[0]:
    query_modality = "text"
    text = st.text_input("Text query", key="retrieval_text", max_chars=2000)
else:
    ids = meta["clip_id"].astype(str).tolist()
    if st.session_state.get("retrieval_clip") not in ids:
        st.session_state["retrieval_clip"] = ids[0]
    c1, c2 = st.columns([3, 2])
    clip_id = c1.selectbox("Clip", ids, key="retrieval_clip")
    row = search.row_of(clip_id)
    available = search.modalities_of(row)
    if st.session_state.get("retrieval_modality") not in available:
        st.session_state["retrieval_modality"] = available[0]
    query_modality = c2.radio("Its", available, horizontal=True, key="retrieval_modality")
    exclude = row

targets = targets_for(search.spaces, query_modality, same_modality=True)
default_targets = [t for t in targets if t != query_modality] or targets
c1, c2 = st.columns([3, 2])
if st.session_state.get("retrieval_target") not in targets:
    st.session_state["retrieval_target"] = default_targets[0] if default_targets else None
target = c1.radio(
    "Search", targets, horizontal=True, key="retrieval_target", format_func=lambda t: f"{query_modality} \u2192 {t}"
)
k = c2.slider("Results", 1, 50, key="retrieval_k")
publish_view({u: p for u, p in VIEW.items() if u not in (("clip", "modality") if source == SOURCES[0] else ("q",))})
if target is None:
    st.warning(f"The bank has no space where {query_modality} can be compared with anything.")
    st.stop()

if source == SOURCES[0]:
    model = current.model()
    try:
        query = prepare_text(text, model.config)
        _, known, unknown = tokenize_text(model, query.text)
        query_vectors = embed_query(model, query)["text"]
    except UploadError as e:
        st.error(str(e))
        st.stop()
    if unknown:
        st.caption(f"Words the model does not know (ignored): {', '.join(unknown)}")
else:
    query_vectors = search.row_vectors(row, query_modality)
    with st.expander(f"The query: {clip_id} ({query_modality})", expanded=False):
        clips.clip_card(search, row, current.paths()[1])

space = space_for(search.spaces, query_modality, target)
own = exclude if target == query_modality else None  # the query clip is no result of its own modality
try:
    hits = search.search(query_vectors, query_modality, target, k, exclude_row=own)
except QueryError as e:
    st.error(str(e))
    st.stop()
st.subheader(f"{query_modality} \u2192 {target} in S_{space}: top {len(hits)}")
clips.result_list(search, hits, key="retrieval", on_search_from=clips.search_from)

if not hits.empty:
    query_view = {"source": source, "query": text if source == SOURCES[0] else f"{clip_id} ({query_modality})",
                  "query_modality": query_modality, "target": target, "space": space, "k": k}  # fmt: skip
    with st.expander("Export these results", icon=":material/download:"):
        export_buttons("neighbours", lambda: {"neighbours": hits}, query_view, key="retrieval-export",
                       label="Neighbours")  # fmt: skip
