"""Deflation lab: a still image embedded inflated, naively deflated and calibrated, side by side."""

from __future__ import annotations

import hashlib
import logging

import pandas as pd
import streamlit as st

from app.logic import state
from app.logic.bank_search import QueryError
from app.logic.deflation_compare import (
    BUNDLED_STILLS,
    MAX_IMAGES,
    MODE_TITLES,
    LabImage,
    LabResult,
    add_neighbours,
    bank_images,
    embed_three_ways,
    lab_figure,
    overlap,
    still_images,
    video_rows,
)
from app.logic.maps import map_points
from app.logic.query_embedding import prepare_upload
from app.logic.uploads import UploadError
from app.widgets import current, resources
from mmv.deflation import MODES

logger = logging.getLogger(__name__)
SOURCES = ("Frames of bank clips", "Bundled stills", "An upload")
#: Timed runs per image and path (the median is shown).
REPEATS = 5
KINDS = {"video": "a video", "audio": "an audio file", "text": "a text"}

EXPLANATION = """
**Inflated** is the reference: the image repeated T times as a static clip through the video network, about T
times the work of one image.

**Naive deflation** sums every 3-D kernel over time into a 2-D one and runs the image once, with the same
weights. On a static clip a temporal convolution sees the same frame under each of its taps, so on every
*interior* frame it computes exactly the summed kernel on the image. But the first and last frames of the
clip see TF-SAME **zero padding** instead of frames: their outer taps multiply zeros. Every temporal
convolution does this again, the damaged ends spread inwards layer after layer, and self-gating and the final
mean over time mix them into the whole output. The deflated network has no ends, so it lands somewhere else.
(TSM-ResNet has the same effect through its temporal shift, which moves zeros into the first and last frames.)

**Recalibration** keeps every weight of the video network and learns only the deflated network's BatchNorm
scales and offsets (γ, β), minimising the L1 distance between its output on an image and the video
network's output on the static clip (the paper's objective), on unlabelled frames. `python -m training.deflate
--checkpoint DIR --manifest M` learns them and stores them as `deflation.safetensors` next to the weights.
"""


def _fail(message: str) -> None:
    st.error(message)
    st.stop()


@st.cache_resource(max_entries=16, show_spinner=False)
def _embedded(model_path: str, key: str, _images: tuple[LabImage, ...]) -> LabResult:
    """The three embeddings and timings of a set of images (``key`` stands for the images), once per model."""
    return embed_three_ways(resources.load_model(model_path), list(_images), repeats=REPEATS)


def _images_key(images: list[LabImage]) -> str:
    h = hashlib.sha256()
    for im in images:
        h.update(im.label.encode() + str(im.image.shape).encode() + im.image.tobytes())
    return h.hexdigest()


def _bank_source(search, size: int) -> list[LabImage]:
    rows = video_rows(search)
    if not rows:
        _fail("This bank has no clip with video: choose bundled stills or upload an image.")
    ids = search.meta["clip_id"].astype(str).to_numpy()[rows].tolist()
    if "lab_clips" not in st.session_state:  # the Spaces page's selection, else the first test clip
        picked = [ids[rows.index(r)] for r in st.session_state.get(state.SELECTED_ROWS, []) if r in rows][:2]
        splits = search.meta["split"].astype(str).to_numpy()[rows] if "split" in search.meta else []
        first = next((i for i, s in zip(ids, splits) if s == "test"), ids[0])
        st.session_state["lab_clips"] = picked or [first]
    chosen = st.multiselect(
        "Clips", ids, key="lab_clips", max_selections=MAX_IMAGES,
        help="The middle frame of each clip's window, as the deflation report takes it.",
    )  # fmt: skip
    if not chosen:
        st.info("Choose one or more clips.")
        st.stop()
    try:
        return bank_images(search, [search.row_of(c) for c in chosen], size)
    except ValueError as e:
        _fail(f"No frame could be read from these clips ({e}).")
    raise AssertionError("unreachable")


def _stills_source() -> list[LabImage]:
    labels = [s.label for s in BUNDLED_STILLS]
    chosen = st.multiselect("Stills", labels, default=labels[1:2], key="lab_stills", max_selections=MAX_IMAGES,
                            help="Frames of the clips bundled in data_samples/ (it ships no photographs).")  # fmt: skip
    if not chosen:
        st.info("Choose one or more stills.")
        st.stop()
    try:
        return still_images([s for s in BUNDLED_STILLS if s.label in chosen])
    except ValueError as e:
        _fail(str(e))
    raise AssertionError("unreachable")


def _upload_source(config) -> list[LabImage]:
    uploaded = st.file_uploader("An image (jpg, png, webp, bmp, gif)", key="lab_file")
    if uploaded is None:
        st.info("Choose an image file.")
        st.stop()
    data, name = uploaded.getvalue(), uploaded.name
    try:
        valid = resources.checked_upload(hashlib.sha256(data).hexdigest(), name, data)
        if valid.kind != "image":
            raise UploadError(
                f"'{name}' is {KINDS.get(valid.kind, valid.kind)}: the Deflation lab embeds still images. "
                "Upload a JPEG, PNG, WebP, BMP or GIF (or use the Upload page for videos, sounds and texts)."
            )
        prepared = prepare_upload(valid, config)
    except UploadError as e:
        _fail(str(e))
    except Exception as e:  # never a traceback for a bad upload
        logger.exception("lab upload failed for %s", name)
        _fail(f"'{name}' cannot be used: {type(e).__name__}: {e}")
    for note in prepared.notes:
        st.caption(f"\u2139\ufe0f {note}")
    return [LabImage(name, prepared.image.numpy())]


def _hit_lines(hits, own_row: int | None, text: bool) -> str:
    if hits is None or hits.empty:
        return "_none in this bank_"
    lines = []
    for h in hits.itertuples(index=False):
        words = (h.narration or h.description) if text else h.description
        own = " (its own clip)" if own_row is not None and int(h.row) == own_row else ""
        lines.append(
            f"{h.rank}. **{h.clip_id}**{own} \u00b7 {h.score:.3f}" + (f" \u00b7 {words[:60]}" if words else "")
        )
    return "\n".join(lines)


NO_CALIBRATION = (
    "This checkpoint has no calibration (no `deflation.safetensors`): only the inflated and naive paths. "
    "Run `python -m training.deflate --checkpoint DIR --manifest M` to learn one."
)
WIDTHS = [1.1, 2, 2, 2]  # the image (or the row's name), then inflated | naive | calibrated


def _numbers(result: LabResult, index: int, mode: str) -> None:
    """A column's head: the path's name, its cosine to the inflated embedding and its time (same rows in each)."""
    res = result.images[index]
    st.markdown(f"**{MODE_TITLES[mode]}**")
    p = res.paths.get(mode)
    if p is None:
        st.info(NO_CALIBRATION)
        return
    space, ref = result.map_space or "vat", res.paths["inflated"]
    if mode == "inflated":
        st.metric(f"cosine to inflated (S_{space})", "1 (reference)")
        st.caption(f"the image repeated {result.num_frames} times through the video network")
    else:
        st.metric(f"cosine to inflated (S_{space})", f"{p.cosine[space]:.4f}")
        st.caption(" \u00b7 ".join(f"{'repr' if s == 'repr' else 'S_' + s} {c:.4f}" for s, c in p.cosine.items()))
    st.metric("ms per image", f"{p.ms_per_image:.1f}")
    speed = ref.ms_per_image / p.ms_per_image if p.ms_per_image > 0 else float("nan")
    st.caption("the reference's time" if mode == "inflated" else f"{speed:.1f}x the inflated path's speed")


def _hits(result: LabResult, index: int, mode: str, target: str) -> None:
    """A column's top-k list of ``target`` bank items (with its overlap with the inflated path's list)."""
    res = result.images[index]
    p = res.paths.get(mode)
    if p is None:
        return
    hits = p.text_hits if target == "text" else p.video_hits
    ref = res.paths["inflated"].text_hits if target == "text" else res.paths["inflated"].video_hits
    st.markdown(_hit_lines(hits, res.image.row, target == "text"))
    same = overlap(hits, ref)
    if mode != "inflated" and same is not None and hits is not None:
        st.caption(f"{same} of {len(hits)} also in the inflated list")


def _image_rows(result: LabResult, index: int, size: int) -> None:
    """One image: a row of numbers, a row of image -> text hits, a row of image -> video hits."""
    res = result.images[index]
    st.subheader(f"{index + 1}. {res.image.label}")
    cols = st.columns(WIDTHS)
    cols[0].image(res.seen, caption=f"what the model sees ({size} px)", width="stretch")
    for mode, col in zip(MODES, cols[1:]):
        with col:
            _numbers(result, index, mode)
    for target, space in (("text", "vat"), ("video", result.map_space)):
        cols = st.columns(WIDTHS)
        cols[0].markdown(f"**Image \u2192 {target}** (S_{space})")
        for mode, col in zip(MODES, cols[1:]):
            with col:
                _hits(result, index, mode, target)


st.title("Deflation lab")
st.caption(
    "A still image embedded three ways by the video model: as a static clip (inflated, the reference), by the "
    "deflated network with the video network's BatchNorm (naive), and with recalibrated BatchNorm (calibrated). "
    "Same layout in every column, so the differences stand out."
)
with st.expander("Why naive deflation differs, and what recalibration learns"):
    st.markdown(EXPLANATION)
search = current.bank()
model = current.model()
model_path, bank_path = current.paths()
if "video" not in model.config.modalities:
    _fail("This checkpoint has no video tower: there is nothing to deflate.")
size = int(model.config.video.frame_size)

source = st.radio("Images", SOURCES, horizontal=True, key="lab_source")
if source == SOURCES[0]:
    images = _bank_source(search, size)
elif source == SOURCES[1]:
    images = _stills_source()
else:
    images = _upload_source(model.config)
k = st.slider("Neighbours per list", 1, 10, 5, key="lab_k")

try:
    with st.status(f"Embedding {len(images)} image(s) three ways, {REPEATS} timed runs each\u2026") as status:
        embedded = _embedded(model_path, _images_key(images), tuple(images))
        result = add_neighbours(embedded, search, k)
        status.update(label="Embedded and searched", state="complete", expanded=False)
except (QueryError, ValueError) as e:
    _fail(str(e))
except Exception as e:
    logger.exception("deflation lab failed")
    _fail(f"The images could not be embedded: {type(e).__name__}: {e}")

st.caption(
    f"{result.backbone} video tower, T = {result.num_frames} frames of {size} px. Times: this image alone, median "
    f"of {REPEATS} runs on this server (shared with other sessions). Neighbours and map: S_{result.map_space}."
)
if result.calibration:
    info = result.calibration
    with st.expander("How this checkpoint's calibration was learnt"):
        st.markdown(
            f"{info.get('objective', 'L1')} \u00b7 {info.get('steps', '?')} Adam steps, lr {info.get('lr', '?')} "
            f"\u00b7 {info.get('num_images', '?')} training images \u00b7 final loss {info.get('final_loss', '?')}"
        )
        if isinstance(info.get("cosine"), dict) and info["cosine"]:
            st.caption("Mean cosine to the inflated output on held-out images, when it was learnt:")
            st.dataframe(pd.DataFrame(info["cosine"]).T.style.format("{:.4f}"))

for i in range(len(result.images)):
    _image_rows(result, i, size)

if len(result.images) > 1:
    st.subheader("Mean over the images")
    st.dataframe(result.mean_cosines().style.format("{:.4f}"))

st.subheader(f"The three points on the S_{result.map_space} map")
try:
    points = map_points(resources.map_coords(bank_path, result.map_space), search.meta, "modality")
    whole, near = st.columns(2)
    whole.plotly_chart(lab_figure(points, result), key="lab_map")
    near.plotly_chart(lab_figure(points, result, zoom=True), key="lab_map_zoom")
except Exception as e:
    logger.exception("lab map failed")
    st.caption(f"The map cannot be drawn ({e}).")
st.caption(
    "Each path's embedding is placed among its nearest bank points (approximate: UMAP's transform start, no "
    "refit); arrows go from the inflated point (black ring) to the naive (red cross) and calibrated (purple "
    "diamond) ones, numbered by image. Right: the same map around the images (double-click it to see all)."
)
