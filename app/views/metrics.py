"""Metrics: retrieval R@k and median rank on the test split or the Spaces selection, ranks, hubs, alignment."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from app.logic import bank_metrics, state
from app.logic.clip_media import thumbnail
from app.logic.export import Param
from app.widgets import current, resources
from app.widgets.downloads import export_buttons
from app.widgets.view_url import publish_view, restore_view

SCOPES = ("test", "selection")
NONE = "(none)"
WORST = 6

st.title("Metrics")
st.caption(
    "Zero-shot retrieval measured on the bank itself, with the evaluation's ranking (mmv.eval.ranking): each "
    "clip's text, video or audio is a query, the clips of the scope are the candidates, and the rank is where its "
    "own pair came. R@k is the share of queries whose pair is in the top k; ties count against the query. Scope: "
    "the test split, or the clips selected on the Spaces page (retrieval among those clips only)."
)
search = current.bank()
model_path, bank_path = current.paths()
meta = search.meta
selection = current.selected_rows(len(meta))
n_test = int((meta["split"].astype(str) == "test").sum()) if "split" in meta.columns else 0


@st.cache_data(ttl=30, show_spinner=False)
def _bank_choices() -> list[str]:
    return [str(p) for p in state.find_banks()]


def _compare_options() -> list[str]:
    out = [NONE, bank_path]
    return out + [b for b in _bank_choices() if b not in out]


SPEC = {
    "scope": Param("metrics_scope", "choice", SCOPES),
    "k": Param("metrics_k", "int", lo=1, hi=100),
    "compare": Param("metrics_compare", "str", max_len=1000, omit=NONE),
}
restore_view(SPEC)
st.session_state.setdefault("metrics_scope", "test")
st.session_state.setdefault("metrics_k", bank_metrics.HUB_K)
if st.session_state.get("metrics_scope") not in SCOPES:
    st.session_state["metrics_scope"] = "test"

c1, c2 = st.columns([3, 2])
SCOPE_LABELS = {
    "test": f"Test split ({n_test:,} clips)",
    "selection": f"Selection from Spaces ({len(selection):,} clips)",
}
scope_name = c1.radio(
    "Clips", SCOPES, key="metrics_scope", horizontal=True, format_func=SCOPE_LABELS.get,
    help="The Spaces page's box or lasso selection (this session's).",
)  # fmt: skip
k = c2.slider("k of the hub lists", 1, 100, key="metrics_k", help="A hub is an item in unusually many top-k lists.")
scope = bank_metrics.scope_rows(meta, scope_name, selection)
view = {"scope": scope_name, "k": k, "clips": len(scope.rows)}


@st.cache_data(max_entries=32, show_spinner=False)
def _evaluate(path: str, rows: tuple[int, ...], k: int) -> dict[str, pd.DataFrame]:
    found = resources.load_bank(path)
    ev = bank_metrics.evaluate(found, np.array(rows, dtype=np.int64), k)
    summary, hubs = bank_metrics.hubs(ev)
    aligned = bank_metrics.alignment(found, np.array(rows, dtype=np.int64))
    return {"metrics": ev.table, "ranks": ev.ranks, "hub_summary": summary, "hubs": hubs, "alignment": aligned}


@st.cache_data(max_entries=16, show_spinner=False)
def _compare(path_a: str, path_b: str, rows: tuple[int, ...], k: int) -> tuple[pd.DataFrame, int]:
    return bank_metrics.compare_banks(resources.load_bank(path_a), resources.load_bank(path_b), np.array(rows), k)


if len(scope.rows) == 0:
    if scope_name == "selection":
        st.info(
            "Scope: 0 clips. No clip is selected: select clips with a box or a lasso on the Spaces page, then come "
            "back here (the selection is kept for this session)."
        )
    else:
        st.warning("Scope: 0 clips. The bank has no clip in a `test` split; use a selection from the Spaces page.")
    publish_view(SPEC)
    st.stop()

st.markdown(f"**Scope: {len(scope.rows):,} clips** ({'test split' if scope_name == 'test' else 'selection'})")
if scope.note:
    st.caption(f"Ranked on {scope.note}.")
with st.spinner("Ranking every direction\u2026"):
    out = _evaluate(bank_path, tuple(int(r) for r in scope.rows), int(k))
table = out["metrics"]
if table.empty:
    st.warning("No direction has both queries and candidates among these clips (e.g. no clip with text).")
    publish_view(SPEC)
    st.stop()


def _shown(t: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "direction": t["label"], "space": "S_" + t["space"], "queries": t["queries"], "candidates": t["candidates"],
        "R@1 %": (100 * t["r1"]).round(1), "R@5 %": (100 * t["r5"]).round(1), "R@10 %": (100 * t["r10"]).round(1),
        "MedR": t["medr"], "MeanR": t["meanr"].round(2),
    })  # fmt: skip


st.subheader("Retrieval per direction")
PCT = {"R@1 %": "{:.1f}", "R@5 %": "{:.1f}", "R@10 %": "{:.1f}", "MedR": "{:g}", "MeanR": "{:.2f}"}
st.table(_shown(table).set_index("direction").style.format(PCT))

st.subheader("Where each ground-truth pair ranked")
ranks = out["ranks"]
labels = table["label"].tolist()
chosen = st.multiselect("Directions", labels, default=labels[:2], key="metrics_hist_dirs")
fig = go.Figure()
for label in chosen:
    r = ranks.loc[ranks["label"] == label, "rank"]
    fig.add_trace(go.Histogram(x=r, name=label, xbins={"start": 0.5, "size": 1}, opacity=0.75))
fig.update_layout(barmode="overlay", height=320, margin={"l": 10, "r": 10, "t": 20, "b": 10},
                  xaxis_title="rank of the correct item (1 = first)", yaxis_title="queries")  # fmt: skip
st.plotly_chart(fig, key="metrics_rank_hist")

st.subheader("Hubs")
st.caption(
    f"How often each candidate appears in the queries' top-{k} lists (its k-occurrence). The mean is always "
    f"Q\u00b7k/N; a hub is in at least {bank_metrics.HUB_FACTOR:g}\u00d7 as many lists. A high skewness of the counts "
    "means a few items answer many queries, whatever they ask (the z-score says how far from the mean each is)."
)
summary = out["hub_summary"]
st.table(
    summary.drop(columns=["direction"]).set_index("label").style.format({"expected": "{:.2f}", "skewness": "{:.2f}"})
)
hubs = out["hubs"]
if hubs.empty:
    st.caption("No hub in this scope.")
else:
    st.dataframe(hubs.drop(columns=["direction"]).round(3), hide_index=True, width="stretch")

st.subheader("Pair alignment")
aligned = out["alignment"]
if aligned.empty:
    st.caption("No clip of the scope has both modalities of a pair.")
else:
    st.caption(
        "Per clip, the cosine of its own pair (video\u00b7audio in S_va, video\u00b7text in S_vat) against a "
        "baseline of shuffled pairs: each clip's video with another clip's partner (random derangement, seed 0). "
        "AUC: the chance that a clip's own pair beats a shuffled one (0.5 = chance)."
    )
    st.table(bank_metrics.alignment_summary(aligned).set_index("space").style.format(precision=3))
    spaces = list(dict.fromkeys(aligned["space"]))
    for space, col in zip(spaces, st.columns(len(spaces))):
        g = aligned[aligned["space"] == space]
        f = go.Figure()
        f.add_trace(go.Histogram(x=g["cosine"], name=f"own pair ({g['pair'].iloc[0]})", opacity=0.7, nbinsx=30))
        f.add_trace(go.Histogram(x=g["shuffled"], name="shuffled pairs", opacity=0.7, nbinsx=30))
        f.update_layout(
            barmode="overlay", height=300, title={"text": f"S_{space}"}, xaxis_title="cosine",
            margin={"l": 10, "r": 10, "t": 40, "b": 10},
            legend={"orientation": "h", "yanchor": "bottom", "y": 1.0, "xanchor": "right", "x": 1.0},
        )  # fmt: skip
        col.plotly_chart(f, key=f"metrics_align_{space}")
    st.markdown("**Worst-aligned clips**")
    worst = bank_metrics.worst_aligned(aligned, WORST)
    for space in spaces:
        w = worst[worst["space"] == space]
        st.caption(f"S_{space} ({w['pair'].iloc[0]})")
        for col, rec in zip(st.columns(WORST), w.itertuples(index=False)):
            with col:
                thumb = thumbnail(search.bank, int(rec.row))
                if thumb is not None:
                    st.image(str(thumb), width="stretch")
                st.caption(
                    f"{rec.clip_id} \u00b7 cosine {rec.cosine:.3f}, above {rec.percentile:.0f}% of shuffled pairs"
                )

st.subheader("Compare with another bank")
options = _compare_options()
if st.session_state.get("metrics_compare") not in (None, *options):
    options.append(st.session_state["metrics_compare"])  # a path from the URL or typed earlier
other = st.selectbox(
    "Bank B", options, key="metrics_compare", format_func=lambda p: p if p == NONE else state.display_path(p),
    accept_new_options=True, help="Another bank of the same clips (e.g. built from another checkpoint); the deltas "
    "are B \u2212 A on the clips of the scope both banks have, matched by clip id.",
)  # fmt: skip
deltas = None
if other and other != NONE:
    if not state.is_bank(Path(other)):
        st.warning(f"No bank at `{state.display_path(other)}`.")
    else:
        try:
            with st.spinner("Ranking bank B\u2026"):
                deltas, matched = _compare(bank_path, str(other), tuple(int(r) for r in scope.rows), int(k))
        except Exception as e:  # a damaged or foreign bank: say so
            st.warning(f"Bank B cannot be compared: {e}")
        if deltas is not None:
            st.caption(f"{matched:,} of the scope's {len(scope.rows):,} clips are in both banks. Recalls in points.")
            if deltas.empty:
                st.warning("The two banks share no direction on these clips.")
            else:
                shown = pd.DataFrame({"direction": deltas["label"], "queries": deltas["queries"]})
                for m, name in (("r1", "R@1"), ("r5", "R@5"), ("r10", "R@10")):
                    shown[f"{name} A"] = (100 * deltas[f"{m}_a"]).round(1)
                    shown[f"{name} B"] = (100 * deltas[f"{m}_b"]).round(1)
                    shown[f"\u0394{name}"] = (100 * deltas[f"{m}_delta"]).round(1)
                shown["\u0394MedR"] = deltas["medr_delta"]
                st.table(shown.set_index("direction").style.format(precision=1))

st.subheader("Export")
tables = {k_: out[k_] for k_ in ("metrics", "ranks", "hub_summary", "hubs", "alignment")}
if deltas is not None and not deltas.empty:
    tables["compare"] = deltas
    view["compare"] = state.display_path(other)
export_buttons("metrics", lambda: tables, view, key="metrics-export", label="Metrics")
publish_view(SPEC)
