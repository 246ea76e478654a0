"""The maps of the spaces: plotly WebGL scatter figures of a bank's 2-D coordinates, and reading selections back.

Each point is one (clip, modality) vector placed by the bank's UMAP (``bank.coords(space)``). Points carry
``customdata = [row, clip_id, modality]``: plotly numbers selected points *per trace* (``point_index``
restarts at 0 in every trace), so the clip a selected point belongs to is read from its custom data, never
from its index (:func:`selected_rows`).

Colour: any ``label_*`` column, ``split`` or ``modality``; a label with more than :data:`MAX_CATEGORIES`
distinct numeric values (``label_pitch_hz``) gets a continuous colour scale. Symbol: one per modality.
Large banks are shown as a random sample of clips (all modalities of a sampled clip kept, selected clips
always kept), and :func:`map_points` says so.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

#: Marker symbol of each modality (and of an uploaded query).
SYMBOLS = {"video": "circle", "audio": "diamond", "text": "square", "query": "star"}
#: Points drawn at most per map; above it a sample of clips is drawn.
MAX_POINTS = 20_000
#: A label with more distinct values than this (and numeric) is coloured on a continuous scale.
MAX_CATEGORIES = 24
#: What dragging on a map does -> plotly's ``dragmode``.
MOUSE_MODES = {"box": "select", "lasso": "lasso", "click": "pan"}
#: The lines of each space: which modality of a clip is joined to which.
LINKS = {"va": ("video", "audio"), "vat": ("video", "text")}
_PALETTE = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
    "#393b79", "#e7969c", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd", "#e6550d", "#31a354", "#756bb1",
    "#636363", "#9c9ede", "#cedb9c", "#e7cb94",
)  # fmt: skip
#: Category values that name a colour are drawn in that colour (a map coloured by ``label_colour`` must show red
#: clips red): readable shades of each name on a white background; any other value takes the palette in order.
NAMED_COLOURS = {
    "red": "#d62728", "orange": "#ff7f0e", "yellow": "#e0b000", "green": "#2ca02c", "cyan": "#17becf",
    "blue": "#1f4fd8", "purple": "#8e44ad", "violet": "#8e44ad", "magenta": "#d6249f", "pink": "#e377c2",
    "brown": "#8c564b", "grey": "#7f7f7f", "gray": "#7f7f7f", "black": "#222222", "white": "#d9d9d9",
}  # fmt: skip


@dataclass
class MapPoints:
    """The points one map draws.

    Attributes:
        frame: ``row, clip_id, modality, x, y, colour`` (+ ``hover``), one row per drawn point.
        total_points: points of the space in the bank.
        total_clips: clips of the space in the bank.
        sampled: ``True`` when only a sample is drawn.
    """

    frame: pd.DataFrame
    total_points: int
    total_clips: int
    sampled: bool
    colour_by: str = "modality"

    @property
    def caption(self) -> str:
        """What the map shows, in words (says when it is a sample)."""
        shown = len(self.frame)
        if self.sampled:
            clips = self.frame["row"].nunique()
            return (
                f"Showing a random sample: {shown:,} of {self.total_points:,} points ({clips:,} of "
                f"{self.total_clips:,} clips); selected clips are always shown."
            )
        return f"{shown:,} points ({self.total_clips:,} clips)."


def colour_options(meta: pd.DataFrame) -> list[str]:
    """What a map can be coloured by: ``modality``, ``split``, then every ``label_*`` column."""
    labels = [c for c in meta.columns if c.startswith("label_")]
    return ["modality", *(["split"] if "split" in meta.columns else []), *labels]


def _hover(meta: pd.DataFrame, rows: np.ndarray) -> list[str]:
    sub = meta.iloc[rows]
    desc = sub["description"].astype(str).tolist() if "description" in sub else [""] * len(rows)
    split = sub["split"].astype(str).tolist() if "split" in sub else [""] * len(rows)
    return [f"{c}<br>{d}<br>{s}" if d else f"{c}<br>{s}" for c, d, s in zip(sub["clip_id"].astype(str), desc, split)]


def map_points(
    coords: pd.DataFrame,
    meta: pd.DataFrame,
    colour_by: str = "modality",
    max_points: int = MAX_POINTS,
    keep_rows: Iterable[int] = (),
    seed: int = 0,
) -> MapPoints:
    """The points of one map, sampled by clip when there are more than ``max_points``.

    Args:
        coords: ``bank.coords(space)``: ``row, clip_id, modality, x, y``.
        meta: ``bank.meta``.
        colour_by: a column of :func:`colour_options`.
        max_points: most points drawn.
        keep_rows: clips always drawn (the selection).
        seed: of the sample (the same sample on every rerun).
    """
    total_clips = int(coords["row"].nunique())
    frame = coords[["row", "clip_id", "modality", "x", "y"]].copy()
    sampled = len(frame) > max_points
    if sampled:
        per_clip = len(frame) / max(1, total_clips)
        n_clips = max(1, int(max_points // per_clip))
        clips = np.sort(frame["row"].unique())
        chosen = set(np.random.default_rng(seed).choice(clips, size=min(n_clips, len(clips)), replace=False).tolist())
        chosen |= {int(r) for r in keep_rows}
        frame = frame[frame["row"].isin(chosen)]
    frame = frame.reset_index(drop=True)
    rows = frame["row"].to_numpy(dtype=np.int64)
    if colour_by == "modality":
        frame["colour"] = frame["modality"]
    elif colour_by in meta.columns:
        frame["colour"] = meta[colour_by].to_numpy()[rows]
    else:
        raise ValueError(f"colour_by: unknown column {colour_by!r} (choose from {colour_options(meta)})")
    frame["hover"] = _hover(meta, rows)
    return MapPoints(frame, total_points=len(coords), total_clips=total_clips, sampled=sampled, colour_by=colour_by)


def point_size(n: int) -> int:
    """Marker size for a map of ``n`` points (smaller markers keep large maps readable)."""
    return 7 if n <= 1000 else 5 if n <= 10_000 else 3


def _is_continuous(values: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(values) and values.nunique() > MAX_CATEGORIES


def _custom(sub: pd.DataFrame) -> np.ndarray:
    return np.stack([sub["row"].to_numpy(), sub["clip_id"].astype(str).to_numpy(), sub["modality"].to_numpy()], 1)


def _link_trace(points: pd.DataFrame, space: str) -> Any:
    """One line per clip between its two linked modalities (``None`` gaps separate the segments)."""
    import plotly.graph_objects as go

    a, b = LINKS.get(space, ("video", "audio"))
    left = points.loc[points["modality"] == a, ["row", "x", "y"]]
    right = points.loc[points["modality"] == b, ["row", "x", "y"]]
    both = left.merge(right, on="row", suffixes=("_a", "_b"), how="inner")
    xs = np.full(3 * len(both), np.nan)
    ys = np.full(3 * len(both), np.nan)
    xs[0::3], xs[1::3] = both["x_a"].to_numpy(), both["x_b"].to_numpy()
    ys[0::3], ys[1::3] = both["y_a"].to_numpy(), both["y_b"].to_numpy()
    return go.Scattergl(
        x=xs, y=ys, mode="lines", line={"width": 0.6, "color": "rgba(120,120,120,0.35)"}, hoverinfo="skip",
        name=f"{a}\u2013{b} of a clip", showlegend=True,
    )  # fmt: skip


def build_map(
    points: MapPoints,
    space: str,
    selected_rows: Sequence[int] = (),
    links: bool = False,
    queries: pd.DataFrame | None = None,
    height: int = 520,
    mouse: str = "box",
) -> Any:
    """A plotly figure of one space.

    Args:
        points: from :func:`map_points`.
        space: ``'va'`` or ``'vat'`` (title, and which modalities ``links`` joins).
        selected_rows: clips drawn highlighted (others faded) in this map, whichever map they were selected in.
        links: draw a line between a clip's video and audio (S_va) or video and text (S_vat).
        queries: optional ``x, y, label`` rows of uploaded queries, drawn as stars (approximate placement).
        height: pixels.
        mouse: what dragging does (:data:`MOUSE_MODES`): ``'box'`` or ``'lasso'`` select; with ``'click'`` a
            drag pans and a click selects the point under it (Streamlit only lets clicks select when the drag
            mode is not a selection).

    Returns:
        A ``plotly.graph_objects.Figure`` of ``Scattergl`` traces whose points carry ``[row, clip_id, modality]``.
    """
    import plotly.graph_objects as go

    selected = set(int(r) for r in selected_rows)
    fig = go.Figure()
    if links:
        fig.add_trace(_link_trace(points.frame, space))
    scale = _colour_scale(points)
    size = point_size(len(points.frame))
    for i, (name, sub, colour) in enumerate(_marker_groups(points, continuous=scale is not None)):
        fig.add_trace(
            go.Scattergl(
                x=sub["x"], y=sub["y"], mode="markers", name=name, customdata=_custom(sub),
                marker=_marker(sub, colour, size, selected, scale, show_scale=i == 0),
                hovertext=sub["hover"], hovertemplate="%{hovertext}<br>%{customdata[2]}<extra></extra>",
            )
        )  # fmt: skip
    if queries is not None and len(queries):
        fig.add_trace(_query_trace(queries))
    title = {"va": "S_va (video, audio)", "vat": "S_vat (video, audio, text)"}.get(space, f"S_{space}")
    fig.update_layout(
        title={"text": title}, height=height, dragmode=MOUSE_MODES[mouse], margin={"l": 10, "r": 10, "t": 40, "b": 10},
        legend={"itemsizing": "constant", "font": {"size": 10}}, uirevision=space,
        xaxis={"showticklabels": False, "title": None}, yaxis={"showticklabels": False, "title": None},
    )  # fmt: skip
    return fig


def _colour_scale(points: MapPoints) -> dict[str, Any] | None:
    """The continuous colour scale of a map coloured by a many-valued numeric column, else ``None``."""
    colour = points.frame["colour"]
    if not len(colour) or not _is_continuous(colour):
        return None
    return {"colorscale": "Viridis", "cmin": float(colour.min()), "cmax": float(colour.max()),
            "colorbar": {"title": {"text": points.colour_by}}}  # fmt: skip


def _marker_groups(points: MapPoints, continuous: bool) -> list[tuple[str, pd.DataFrame, str | None]]:
    """``(trace name, points, colour)`` of each marker trace: one per modality on a continuous scale, else one per
    colour and modality (categories in a stable order, the modalities first, missing values last)."""
    df = points.frame
    modalities = [m for m in ("video", "audio", "text") if m in set(df["modality"])]
    if continuous:
        return [(m, df[df["modality"] == m], None) for m in modalities]
    order = {m: i for i, m in enumerate(("video", "audio", "text"))}
    cats = sorted(df["colour"].astype(str).unique(), key=lambda c: (c == "nan", order.get(c, len(order)), c))
    others = iter(p for p in _PALETTE if p not in NAMED_COLOURS.values())
    colours = {c: NAMED_COLOURS.get(c.lower()) or next(others, _PALETTE[0]) for c in cats}
    return [
        (m if points.colour_by == "modality" else f"{c} \u00b7 {m}", sub, colours[c])
        for c in cats
        for m in modalities
        if len(sub := df[(df["colour"].astype(str) == c) & (df["modality"] == m)])
    ]


def _marker(
    sub: pd.DataFrame, colour: str | None, size: int, selected: set[int], scale: dict[str, Any] | None, show_scale: bool
) -> dict[str, Any]:
    """The markers of one trace: its modality's symbol, its colour (or the scale), selected clips highlighted."""
    marker: dict[str, Any] = {"symbol": SYMBOLS.get(sub["modality"].iloc[0], "circle"), "size": size}
    if scale is not None:
        marker |= {"color": sub["colour"].astype(float), **scale, "showscale": show_scale}
    else:
        marker["color"] = colour
    if not selected:
        marker["opacity"] = 0.85
        return marker
    chosen = sub["row"].isin(selected)
    marker["opacity"] = np.where(chosen, 1.0, 0.25)  # the other clips faded
    marker["size"] = np.where(chosen, 11, size - 1)
    marker["line"] = {"width": np.where(chosen, 1.5, 0.0), "color": "black"}
    return marker


def _query_trace(queries: pd.DataFrame) -> Any:
    """Uploaded queries as gold stars with their labels (approximate placement)."""
    import plotly.graph_objects as go

    return go.Scatter(
        x=queries["x"], y=queries["y"], mode="markers+text", name="your query (approximate)",
        text=queries["label"], textposition="top center", hoverinfo="text",
        marker={"symbol": "star", "size": 18, "color": "gold", "line": {"width": 1.5, "color": "black"}},
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------------
# Selections
# ---------------------------------------------------------------------------------------------------


def _points(event: Any) -> list[dict]:
    if event is None:
        return []
    selection = event.get("selection") if isinstance(event, dict) else getattr(event, "selection", None)
    if selection is None:
        return []
    points = selection.get("points") if isinstance(selection, dict) else getattr(selection, "points", None)
    return list(points or [])


def _custom_of(point: dict) -> list | None:
    for key in ("customdata", "custom_data"):
        value = point.get(key)
        if value is not None and len(value) >= 3:
            return list(value)
    return None


def selected_rows(event: Any) -> list[int]:
    """Bank rows (clips) of the points a plotly selection event holds, in order, without repeats.

    Points without custom data (the link lines, a query star) are ignored.
    """
    out: dict[int, None] = {}
    for p in _points(event):
        custom = _custom_of(p)
        if custom is not None:
            out[int(custom[0])] = None
    return list(out)


def is_click(event: Any) -> bool:
    """``True`` for a single-point click (no box or lasso in the event)."""
    if event is None:
        return False
    selection = event.get("selection") if isinstance(event, dict) else getattr(event, "selection", None)
    if not selection:
        return False
    box = selection.get("box") or []
    lasso = selection.get("lasso") or []
    return not box and not lasso and len(_points(event)) == 1


def clicked_point(event: Any) -> tuple[int, str] | None:
    """``(row, modality)`` of a clicked point, or ``None`` when the event is not a single click."""
    if not is_click(event):
        return None
    custom = _custom_of(_points(event)[0])
    return None if custom is None else (int(custom[0]), str(custom[2]))
