"""Spaces: S_va and S_vat side by side; select clips on either map, inspect a point's neighbours."""

from __future__ import annotations

import streamlit as st

from app.logic import state
from app.logic.export import Param, coordinates_table
from app.logic.maps import MOUSE_MODES, build_map, clicked_point, colour_options, map_points, selected_rows
from app.widgets import clips, current, resources
from app.widgets.downloads import export_buttons
from app.widgets.view_url import publish_view, restore_view

GALLERY_SIZE = 12
NEIGHBOURS = 5


def _on_select(key: str) -> None:
    """A map's selection changed: a click opens the inspector (and selects its clip); a box or lasso selects."""
    event = st.session_state.get(key)
    rows = selected_rows(event)
    if not rows:
        return  # an emptied selection (e.g. the figure was redrawn) keeps the current one; "Clear" clears
    st.session_state[state.SELECTED_ROWS] = sorted(rows)
    click = clicked_point(event)
    st.session_state[state.INSPECT] = click if click is not None else st.session_state.get(state.INSPECT)


def _clear() -> None:
    st.session_state[state.SELECTED_ROWS] = []
    st.session_state[state.INSPECT] = None


st.title("Spaces")
st.caption(
    "Every clip of the bank placed in each embedding space by UMAP: S_va, where video and audio meet (the fine "
    "space), and S_vat, where text joins them (the coarse space). Select points with a box or a lasso on either "
    "map to highlight the same clips on both and fill the gallery; in 'click' mode, click a point to inspect its "
    "nearest neighbours in each space."
)
search = current.bank()
_, bank_path = current.paths()
meta = search.meta
selected = current.selected_rows(len(meta))
# The view in the URL (colour, lines, the exported space): a link reopens it; bad parameters are ignored.
VIEW = {
    "colour": Param("spaces_colour", "choice", colour_options(meta)),
    "links": Param("spaces_links", "choice", aliases={"1": True, "0": False}),
    "space": Param("spaces_export_space", "choice", list(search.spaces)),
}
restore_view(VIEW)

c1, c2, c3, c4 = st.columns([2, 2.2, 1.4, 1])
colour_by = c1.selectbox("Colour by", colour_options(meta), key="spaces_colour")
mouse = c2.segmented_control(
    "Mouse", list(MOUSE_MODES), default="box", key="spaces_mouse", required=True,
    format_func=lambda m: {"box": "box select", "lasso": "lasso", "click": "click to inspect"}[m],
    help="Drag a box or a lasso to select clips; or click a point to inspect its neighbours (dragging then pans).",
)  # fmt: skip
links = c3.toggle(
    "Join a clip's points", value=False, key="spaces_links",
    help="A line from each clip's video to its audio (S_va) and to its text (S_vat).",
)  # fmt: skip
c4.button("Clear selection", on_click=_clear, disabled=not selected, width="stretch")
st.caption("Symbols: \u25cf video \u00b7 \u25c6 audio \u00b7 \u25a0 text")

spaces = list(search.spaces)
columns = st.columns(len(spaces))
for space, column in zip(spaces, columns):
    with column:
        points = map_points(resources.map_coords(bank_path, space), meta, colour_by, keep_rows=selected)
        fig = build_map(points, space, selected_rows=selected, links=links, mouse=mouse or "box")
        key = f"map_{space}"
        st.plotly_chart(
            fig, key=key, on_select=lambda k=key: _on_select(k), selection_mode=("points", "box", "lasso"),
            config={"scrollZoom": True, "displaylogo": False},
        )  # fmt: skip
        st.caption(points.caption)

inspect = st.session_state.get(state.INSPECT)
if inspect is not None and 0 <= inspect[0] < len(meta):
    row, modality = inspect
    with st.container(border=True):
        st.subheader(f"Inspector: {meta.iloc[row]['clip_id']} ({modality})")
        left, right = st.columns([1, 2])
        with left:
            clips.clip_card(search, row, bank_path)
        with right:
            for (space, target), hits in search.neighbours(row, modality, NEIGHBOURS).items():
                st.markdown(f"**S_{space}: nearest {target}**")
                st.dataframe(clips.hits_table(hits), hide_index=True, width="stretch")

if selected:
    st.subheader(f"Gallery: {len(selected)} selected clip{'s' if len(selected) != 1 else ''}")
    if len(selected) > GALLERY_SIZE:
        st.caption(f"Showing the first {GALLERY_SIZE}.")
    shown = selected[:GALLERY_SIZE]
    per_row = 4
    for start in range(0, len(shown), per_row):
        cols = st.columns(per_row)
        for col, row in zip(cols, shown[start : start + per_row]):
            with col, st.container(border=True):
                clips.clip_card(search, row, bank_path)
else:
    st.info("Select points on a map (box or lasso) to see those clips here.")

st.subheader("Export")
e1, e2 = st.columns([1, 3])
export_space = e1.selectbox("Space", list(search.spaces), key="spaces_export_space", format_func=lambda s: f"S_{s}")
export_coords = resources.map_coords(bank_path, export_space)
with e2:
    st.caption(
        "The map's coordinates (one row per clip and modality: x, y, split, the colour column, whether selected), "
        "with provenance.json."
    )
    export_buttons(
        f"coordinates-{export_space}",
        lambda: {"coordinates": coordinates_table(export_coords, meta, colour_by, selected)},
        {"space": export_space, "colour": colour_by, "selected": len(selected)},
        key="spaces-export",
        label=f"S_{export_space} coordinates",
    )
publish_view(VIEW)
