"""Upload: a video with sound, an audio file, an image or a text as the query; results in every direction."""

from __future__ import annotations

import hashlib
import logging

import numpy as np
import pandas as pd
import streamlit as st

from app.logic.bank_search import QueryError
from app.logic.clip_media import log_mel_of, spectrogram_image
from app.logic.maps import build_map, map_points
from app.logic.query_embedding import WINDOW_MODES, default_num_windows, frame_strip, image_mode_note, window_seconds
from app.logic.uploads import SUPPORTED, UploadError, UploadLimits
from app.widgets import clips, current, resources

logger = logging.getLogger(__name__)
LIMITS = UploadLimits()


def _width(pixels: int) -> int | str:
    """An image's display width: ``pixels``, or the container's width when that is narrower."""
    return "stretch" if pixels >= 900 else int(pixels)


def _fail(message: str) -> None:
    st.error(message)
    st.stop()


st.title("Upload")
st.caption(
    f"Search the bank with your own query: {SUPPORTED}. Files up to {LIMITS.max_bytes // 2**20} MB and "
    f"{LIMITS.max_seconds:.0f} s. The file is decoded exactly as the bank's clips were, and shown below as the "
    "model sees it."
)
clips.follow_search_from()  # "Search from this" on a result below: continue on the Retrieval page
search = current.bank()
model = current.model()
model_path, bank_path = current.paths()
config = model.config

kind = st.radio("Query", ("A file", "Text"), horizontal=True, key="upload_kind")
if kind == "Text":
    text = st.text_area("Text query", key="upload_text", max_chars=LIMITS.max_text_chars, placeholder="a blue star")
    if not text.strip():
        st.info("Type a text to search with.")
        st.stop()
    data, name = text.encode("utf-8"), "query.txt"
else:
    uploaded = st.file_uploader("Video with sound, audio, image or text file", key="upload_file")
    if uploaded is None:
        st.info("Choose a file. " + image_mode_note(model))
        st.stop()
    data, name = uploaded.getvalue(), uploaded.name

digest = hashlib.sha256(data).hexdigest()
try:
    valid = resources.checked_upload(digest, name, data)
except UploadError as e:
    _fail(str(e))
except Exception as e:  # never a traceback for a bad upload
    logger.exception("upload check failed for %s", name)
    _fail(f"'{name}' cannot be used: {type(e).__name__}: {e}")

span = window_seconds(config)
mode, num_windows, start = "average", 0, 0.0
if valid.kind in ("video", "audio") and valid.duration and valid.duration > span + 1e-6:
    st.markdown(f"The {valid.kind} is **{valid.duration:.1f} s**; the model reads **{span:g}-s** windows.")
    c1, c2 = st.columns(2)
    mode = c1.radio(
        "Long clip", WINDOW_MODES, key="upload_mode", horizontal=True,
        format_func=lambda m: "average windows" if m == "average" else "cut one window",
    )  # fmt: skip
    if mode == "average":
        n0 = default_num_windows(valid.duration, span)
        num_windows = c2.slider("Windows averaged", 1, 16, n0, key="upload_windows")
    else:
        start = c2.slider("Window start (s)", 0.0, float(valid.duration - span), 0.0, 0.1, key="upload_start")

try:
    with st.status("Embedding the query\u2026", expanded=False) as status:
        prepared, vectors = resources.prepared_upload(digest, model_path, mode, num_windows, start, valid)
        status.update(label="Query embedded", state="complete")
except UploadError as e:
    _fail(str(e))
except Exception as e:
    logger.exception("upload preparation failed for %s", name)
    _fail(f"'{name}' cannot be used: {type(e).__name__}: {e}")

for note in prepared.notes:
    st.caption(f"\u2139\ufe0f {note}")
if prepared.kind == "image":
    st.caption(image_mode_note(model))

with st.expander("What the model sees", expanded=True):
    if prepared.video is not None:
        strip = frame_strip(prepared.video[0])
        st.image(strip, caption=f"{prepared.video.shape[1]} frames of the first window at {config.video.fps:g} fps, "
                 f"{config.video.frame_size} px", width=_width(3 * strip.shape[1]))  # fmt: skip
    if prepared.image is not None:
        st.image(prepared.image.numpy(), caption=f"{config.video.frame_size} px centre crop", width=256)
    if prepared.audio is not None:
        wave = prepared.audio[0].numpy()
        spec = spectrogram_image(log_mel_of(wave, config.audio))
        st.image(spec, caption="log-mel spectrogram (first window)", width=_width(2 * spec.shape[1]))
        st.audio(wave, sample_rate=prepared.sample_rate)
        st.caption(f"Resampled audio: {len(wave) / prepared.sample_rate:g} s at {prepared.sample_rate} Hz, mono.")
    if prepared.text is not None:
        st.markdown(f"Text: *{prepared.text}*")
    if prepared.windows:
        spans = ", ".join(f"{a:.2f}\u2013{b:.2f} s" for a, b in prepared.windows)
        st.caption(f"Windows: {spans}")

k = st.slider("Results per direction", 1, 20, 5, key="upload_k")
try:
    results = search.search_all(vectors, k)
except QueryError as e:
    _fail(str(e))
if not results:
    st.warning("This bank has no space where this query can be compared with anything.")
for direction, hits in results.items():
    st.subheader(direction.label)
    clips.result_list(
        search, hits, key=f"upload-{direction.query}-{direction.target}", on_search_from=clips.search_from
    )

st.subheader("Your query on the maps")
st.caption(
    "Each embedding of the query is placed among its nearest bank points (the start of UMAP's own transform, "
    "without its refinement): an approximate position, not where a refit of the map would put it."
)
columns = st.columns(len(search.spaces))
for space, column in zip(search.spaces, columns):
    with column:
        rows = [(m, v[space]) for m, v in vectors.items() if space in v and m in search.spaces[space]]
        if not rows:
            st.caption(f"The query has no embedding in S_{space}.")
            continue
        try:
            with st.spinner(f"Placing the query in S_{space}\u2026"):
                xy = resources.projected(bank_path, space, tuple(tuple(float(x) for x in v) for _, v in rows))
        except Exception as e:
            logger.exception("projection failed")
            st.caption(f"The query cannot be placed on this map ({e}).")
            continue
        queries = pd.DataFrame({"x": np.asarray(xy)[:, 0], "y": np.asarray(xy)[:, 1], "label": [m for m, _ in rows]})
        points = map_points(resources.map_coords(bank_path, space), search.meta, "modality")
        st.plotly_chart(build_map(points, space, queries=queries), key=f"upload_map_{space}")
        st.caption(points.caption)
