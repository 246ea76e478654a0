"""Model: the model card of the chosen checkpoint (config, embedding graph, parameters, training) and its curves."""

from __future__ import annotations

import logging
from pathlib import Path

import streamlit as st

from app.logic import state
from app.logic.model_card import curves_figure, graph_dot, load_card, metric_table, read_metrics, scalar_groups
from app.widgets import current

logger = logging.getLogger(__name__)


@st.cache_data(ttl=30, show_spinner=False, max_entries=8)
def _metrics(run_dir: str, stamp: float):
    """The run's scalars (re-read when ``metrics.csv`` changes: ``stamp`` is its modification time)."""
    return read_metrics(run_dir)


st.title("Model")
st.caption(
    "The card of the checkpoint chosen in the sidebar: what it is (preset, towers, embedding graph), how big "
    "(parameters per tower and head, counted on the loaded model), how it was trained (data, steps, optimiser) "
    "and how well (retrieval metrics at the end of training), with the run's training curves."
)
model_path, _ = current.paths()
model = current.model()
try:
    card = load_card(model_path, model)
except Exception as e:  # a checkpoint that loads but whose files say odd things: say so, never a traceback
    logger.exception("model card of %s", model_path)
    st.error(f"The card of `{state.display_path(model_path)}` cannot be read: {e}")
    st.stop()
cfg = card.config

c = st.columns(4)
c[0].metric("Preset", cfg.name)
c[1].metric("Embedding graph", cfg.graph)
c[2].metric("Parameters", f"{card.total:,}", help=f"{card.trainable:,} trainable")
steps = next((v for k, v in card.training if k == "steps"), "\u2014")
c[3].metric("Training steps", steps)
st.caption(
    f"`{state.display_path(card.path)}` \u00b7 mmv {card.header.get('mmv_version', '?')} \u00b7 torch "
    f"{card.header.get('torch_version', '?')} \u00b7 modalities: {', '.join(cfg.modalities)}"
)

left, right = st.columns([2, 3])
with left:
    st.subheader("Configuration")
    st.dataframe(card.settings, hide_index=True, width="stretch", key="model_settings",
                 height=35 * (len(card.settings) + 1) + 3)  # every row, no inner scroll bar  # fmt: skip
with right:
    st.subheader("Embedding graph")
    st.graphviz_chart(graph_dot(cfg), width="stretch")
    st.caption(
        {
            "shared": "Shared: every modality is projected into one space, where all pairs are compared.",
            "disjoint": "Disjoint: a separate space for each pair of modalities, with its own heads.",
        }.get(
            cfg.graph,
            "Fine and coarse (FAC): video and audio meet in the fine S_va; the video continues from S_va to the "
            "coarse S_vat, where text joins it. Audio takes the video's path to S_vat only at evaluation: no loss "
            "ever pairs audio with text.",
        )
    )

st.subheader("Parameters")
params = card.parameters.rename(columns={"share": "share (%)"})
st.dataframe(
    params,
    hide_index=True,
    width="stretch",
    key="model_parameters",
    column_config={
        "parameters": st.column_config.NumberColumn(format="localized"),
        "trainable": st.column_config.NumberColumn(format="localized"),
        "share (%)": st.column_config.NumberColumn(format="%.1f"),
    },
)
st.caption(f"Total {card.total:,} parameters, {card.trainable:,} trainable (buffers such as BatchNorm statistics "
           "and the mel filter bank are not counted).")  # fmt: skip

st.subheader("Training")
if card.training:
    st.table({k: v for k, v in card.training})
else:
    st.info("The checkpoint says nothing about its training (no metadata from `training.main`).")
if card.deflation:
    d = card.deflation
    cos = d.get("cosine") if isinstance(d.get("cosine"), dict) else {}
    gap = ", ".join(
        f"{mode} {cos[mode]['vat']:.3f}" for mode in ("naive", "calibrated") if isinstance(cos.get(mode), dict)
        and isinstance(cos[mode].get("vat"), (int, float))
    )  # fmt: skip
    st.caption(
        f"Image network: recalibrated deflation ({d.get('steps', '?')} steps on {d.get('num_images', '?')} images)"
        + (f"; S_vat cosine to the inflated clip on held-out images: {gap}." if gap else ".")
    )
else:
    st.caption("Image network: naive deflation (no `deflation.safetensors` with this checkpoint).")

table = metric_table(card.final_metrics)
st.subheader("Retrieval at the end of training")
if table.empty:
    st.info("No evaluation metrics were stored with this checkpoint.")
else:
    st.dataframe(
        table,
        width="stretch",
        key="model_metrics",
        column_config={k: st.column_config.NumberColumn(format="%.1f") for k in ("R@1", "R@5", "R@10")},
    )
    st.caption("R@k in % of the evaluation's queries; MedR: median rank of the true match (lower is better).")

st.subheader("Training curves")
run_dir = card.run_dir
if run_dir is None:
    st.info(
        "No training run beside this checkpoint: curves are read from `metrics.csv` (or `tensorboard/`) in the "
        "run directory that `training.main` exports `model/` into."
    )
    st.stop()
csv = Path(run_dir) / "metrics.csv"
frame, source = _metrics(str(run_dir), csv.stat().st_mtime if csv.is_file() else 0.0)
if frame is None:
    st.info(f"The run at `{state.display_path(run_dir)}` has no metrics.csv nor TensorBoard scalars.")
    st.stop()
groups = scalar_groups(frame)
st.caption(f"{len(frame):,} logged steps from `{state.display_path(Path(run_dir) / source)}`.")
c1, c2 = st.columns([4, 1])
train_cols = groups["losses"] + groups["training"]
chosen = c1.multiselect("Scalars", train_cols, default=groups["losses"] or train_cols[:1], key="model_scalars")
log_y = c2.toggle("log scale", key="model_log_y")
if chosen:
    st.plotly_chart(curves_figure(frame, chosen, "Training", log_y=log_y), key="model_curves")

if groups["evaluation"]:
    st.subheader("Evaluation over steps")
    r10 = [c for c in groups["evaluation"] if c.endswith("_r10") and "_attr" not in c]
    chosen_eval = st.multiselect("Metrics", groups["evaluation"], default=r10 or groups["evaluation"][:1],
                                 key="model_eval_scalars")  # fmt: skip
    evals = frame.dropna(subset=groups["evaluation"], how="all")
    if chosen_eval:
        st.plotly_chart(curves_figure(evals, chosen_eval, "Evaluation"), key="model_eval_curves")
    if len(evals) == 1:
        st.caption(f"The run evaluated once, at step {int(evals['step'].iloc[0]):,}.")
