"""The model card of a checkpoint: its config, embedding graph, parameter counts, training run and curves.

The Model page (``app/views/model.py``) lays this out. Sources, cheapest first:

* ``<checkpoint>/config.json`` (:func:`mmv.checkpoint.read_checkpoint_header`): the :class:`mmv.config.MMVConfig`
  and the metadata ``training.main`` stores when it exports a run's model (``steps``, ``data``,
  ``final_metrics``, ``run_config``).
* the loaded model: parameters counted per tower and per head (:func:`parameter_counts`).
* the **run directory**: ``training.main`` exports the model to ``<run>/model``, so a checkpoint whose parent
  holds ``metrics.csv``, ``summary.json``, ``config.yaml`` or ``tensorboard/`` is a run's
  (:func:`find_run_dir`). Curves come from ``metrics.csv`` (:mod:`training.logs`: one row per logged step,
  ``eval/*`` columns on evaluation steps) or, without it, from the TensorBoard event files (``train/<key>`` and
  ``eval/<key>`` scalars; read with ``tensorboard``'s ``EventAccumulator``, a runtime dependency already).

The embedding graph is drawn as Graphviz DOT (:func:`graph_dot`), which ``st.graphviz_chart`` renders in the
browser (no graphviz binary needed). Its edges (:func:`graph_edges`) follow the heads the config builds:
modality → space for a head on a tower, space → space for FAC's ``va_vat`` head on S_va.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    from mmv.models.mmv import MMV

#: Files that mark a training run's directory (``training.main`` writes them beside ``model/``).
RUN_FILES = ("metrics.csv", "summary.json", "config.yaml", "tensorboard")
#: Towers of an :class:`mmv.models.mmv.MMV`: ``(attribute, label)``.
TOWERS = (
    ("video", "video tower"),
    ("audio_frontend", "audio front end (log-mel)"),
    ("audio", "audio tower"),
    ("text", "text tower"),
)
MODALITY_NAMES = {"v": "video", "a": "audio", "t": "text"}
_METRIC = re.compile(r"^(?:eval/)?([vat])2([vat])(_attr)?_(r1|r5|r10|medr)$")
_METRIC_COLUMNS = {"r1": "R@1", "r5": "R@5", "r10": "R@10", "medr": "MedR"}


# ---------------------------------------------------------------------------------------------------
# Config and graph
# ---------------------------------------------------------------------------------------------------


def config_summary(config: Any) -> pd.DataFrame:
    """The settings that tell models apart, one row each: ``part``, ``setting``, ``value`` (all strings).

    Args:
        config: an :class:`mmv.config.MMVConfig`.
    """
    rows: list[tuple[str, str, Any]] = [
        ("model", "preset", config.name),
        ("model", "modalities", ", ".join(config.modalities)),
        ("model", "graph", config.graph),
    ]
    if "video" in config.modalities:
        v = config.video
        rows.append(("video", "backbone", {"s3d": "S3D-G", "tsm_resnet": f"TSM-ResNet{v.depth}"}[v.backbone]))
        rows.append(("video", "clip", f"{v.num_frames} frames x {v.frame_size} px at {v.fps:g} fps"))
        rows.append(("video", "width multiplier", f"{v.width_mult:g}"))
        if v.backbone == "s3d":
            rows.append(("video", "final endpoint", v.s3d_final_endpoint))
        else:
            rows.append(("video", "shifted channels", f"{v.shift_fraction:g} each way"))
    if "audio" in config.modalities:
        a = config.audio
        rows.append(("audio", "backbone", f"ResNet{a.depth} (width x{a.width_mult:g})"))
        rows.append(("audio", "input", f"{a.duration:g} s at {a.sample_rate} Hz"))
        rows.append(
            ("audio", "log-mel", f"{a.n_mels} bins, {a.fmin:g}-{a.fmax:g} Hz, FFT {a.n_fft}, hop {a.hop_length}")
        )
    if "text" in config.modalities:
        t = config.text
        rows.append(("text", "vocabulary", f"{t.vocab_size:,} words of {t.word_dim} dims"))
        rows.append(("text", "sentence", f"{t.sentence_dim} dims, max over {t.max_words} words"))
        rows.append(("text", "word vectors", "frozen" if t.freeze_word_vectors else "trained"))
    for role in required_roles(config):
        head = config.heads[role] if role in config.heads else None
        if head is not None:
            rows.append(("heads", role, f"{head.mode} -> {head.dim}" + (" + BN" if head.bn_after else "")))
    return pd.DataFrame([(p, s, str(v)) for p, s, v in rows], columns=["part", "setting", "value"])


def required_roles(config: Any) -> list[str]:
    """The head roles a model of this config holds (``text_audio`` is built beside disjoint's ``audio_text``)."""
    roles = list(config.required_heads())
    if config.graph == "disjoint" and "audio_text" in roles:
        roles.append("text_audio")
    return roles


@dataclass(frozen=True)
class Edge:
    """One projection head as an arrow of the embedding graph: ``source`` (modality or space) -> ``target`` space."""

    source: str
    target: str
    head: str


_DISJOINT = {
    "video_va": ("video", "S_va"),
    "audio_va": ("audio", "S_va"),
    "va_vat": ("video", "S_vt"),
    "text_vat": ("text", "S_vt"),
    "audio_text": ("audio", "S_at"),
    "text_audio": ("text", "S_at"),
}
_FAC = {
    "video_va": ("video", "S_va"),
    "audio_va": ("audio", "S_va"),
    "va_vat": ("S_va", "S_vat"),  # the coarse head reads the fine space: audio reaches S_vat through it
    "text_vat": ("text", "S_vat"),
}
_SHARED = {"video_va": ("video", "S"), "audio_va": ("audio", "S"), "text_vat": ("text", "S")}


def graph_edges(config: Any) -> list[Edge]:
    """The arrows of the embedding graph, one per head, in the order the config builds the heads.

    ``shared``: every modality into one space ``S`` (the bank's ``va`` and ``vat`` are the same embedding).
    ``disjoint``: video and audio into ``S_va``, video and text into ``S_vt`` (the bank's ``vat``), and with
    ``use_audio_text`` audio and text into ``S_at``. ``fac*``: video and audio into the fine ``S_va``, then
    ``S_va`` into the coarse ``S_vat`` (``va_vat``), and text into ``S_vat``.
    """
    table = _SHARED if config.graph == "shared" else _DISJOINT if config.graph == "disjoint" else _FAC
    return [Edge(*table[role], role) for role in required_roles(config)]


def _space_label(config: Any, space: str, edges: list[Edge]) -> str:
    into = [e for e in edges if e.target == space]
    dim = config.heads[into[0].head].dim if into and into[0].head in config.heads else None
    meets = sorted({e.source for e in into if e.source in MODALITY_NAMES.values()})
    if config.graph.startswith("fac") and space == "S_vat":
        meets = sorted({*meets, "video", *(["audio"] if "audio" in config.modalities else [])})
    name = "S (S_va = S_vat)" if space == "S" else space
    return f"{name}\\n{dim}-d: {', '.join(meets)}" if dim else name


def graph_dot(config: Any) -> str:
    """The embedding graph as Graphviz DOT: modality boxes on the left, space ellipses, one arrow per head.

    Arrows are labelled with the head's role and shape (``mlp@512 -> 512``). In FAC, the ``S_va -> S_vat`` arrow
    says it carries video in training and audio also at evaluation (audio and text are never paired by a loss).
    """
    edges = graph_edges(config)
    spaces = list(dict.fromkeys(e.target for e in edges))
    lines = [
        "digraph mmv {",
        '  rankdir=LR; bgcolor="transparent";',
        '  node [fontname="Helvetica", fontsize=12]; edge [fontname="Helvetica", fontsize=10];',
    ]
    colours = {"video": "#4C78A8", "audio": "#F58518", "text": "#54A24B"}
    for m in config.modalities:
        lines.append(f'  "{m}" [shape=box, style="rounded,filled", fillcolor="{colours[m]}", fontcolor="white"];')
    for s in spaces:
        lines.append(
            f'  "{s}" [shape=ellipse, style=filled, fillcolor="#EEEEEE", label="{_space_label(config, s, edges)}"];'
        )
    for e in edges:
        head = config.heads.get(e.head)
        label = e.head if head is None else f"{e.head}\\n{head.mode} -> {head.dim}"
        style = ""
        if e.source == "S_va" and "audio" in config.modalities:
            label += "\\n(audio: at evaluation)" if not config.use_audio_text else "\\n(audio too)"
            style = ", style=bold"
        lines.append(f'  "{e.source}" -> "{e.target}" [label="{label}"{style}];')
    lines.append("}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------
# Parameters
# ---------------------------------------------------------------------------------------------------


def _count(module: Any) -> tuple[int, int]:
    params = list(module.parameters())
    return sum(p.numel() for p in params), sum(p.numel() for p in params if p.requires_grad)


def parameter_counts(model: MMV) -> pd.DataFrame:
    """Parameters of each tower and head of a loaded model.

    Returns:
        One row per part: ``part`` (``video tower``, ``head video_va``, ...), ``kind`` (``tower`` / ``head`` /
        ``other``), ``parameters``, ``trainable`` (``requires_grad``; frozen word vectors are not), ``share`` (% of
        the model's total). An ``other`` row holds what no tower or head owns, so the column sums to
        ``sum(p.numel() for p in model.parameters())``.
    """
    rows: list[tuple[str, str, int, int]] = []
    for attr, label in TOWERS:
        module = getattr(model, attr, None)
        if module is not None and hasattr(module, "parameters"):
            rows.append((label, "tower", *_count(module)))
    for role, head in getattr(model, "heads", {}).items():
        rows.append((f"head {role}", "head", *_count(head)))
    activation = getattr(model, "fac_activation", None)
    if activation is not None:
        rows.append(("FAC activation (S_va -> S_vat)", "head", *_count(activation)))
    total, trainable = _count(model)
    rest = total - sum(r[2] for r in rows)
    if rest:
        rows.append(("other", "other", rest, trainable - sum(r[3] for r in rows)))
    out = pd.DataFrame(rows, columns=["part", "kind", "parameters", "trainable"])
    out["share"] = 100.0 * out["parameters"] / max(total, 1)
    return out


# ---------------------------------------------------------------------------------------------------
# The training run
# ---------------------------------------------------------------------------------------------------


def find_run_dir(checkpoint: str | Path) -> Path | None:
    """The training run a checkpoint was exported from, or ``None``: the checkpoint's own folder when it carries
    the run's files (a published model, :mod:`training.publish_demo`), else its parent when that holds them."""
    here = Path(checkpoint).resolve()
    for candidate in (here, here.parent):
        if any((candidate / name).exists() for name in RUN_FILES):
            return candidate
    return None


def read_metrics(run_dir: str | Path | None) -> tuple[pd.DataFrame | None, str | None]:
    """A run's logged scalars, one row per step (sorted), and where they came from.

    Returns:
        ``(frame, source)``: ``frame`` has a ``step`` column and one float column per scalar (``loss``, ``lr``,
        ``eval/t2v_r1``, ...; NaN where a step did not log it); ``source`` is ``'metrics.csv'`` or
        ``'tensorboard'``. ``(None, None)`` when the run has neither.
    """
    if run_dir is None:
        return None, None
    run_dir = Path(run_dir)
    csv = run_dir / "metrics.csv"
    if csv.is_file() and csv.stat().st_size > 0:
        try:
            df = pd.read_csv(csv)
        except (ValueError, OSError):
            df = None
        if df is not None and "step" in df.columns and len(df):
            df = df.apply(pd.to_numeric, errors="coerce")
            return df.dropna(subset=["step"]).sort_values("step").reset_index(drop=True), "metrics.csv"
    events = run_dir / "tensorboard"
    if events.is_dir() and any(events.glob("events.out.tfevents.*")):
        df = read_tensorboard(events)
        if df is not None:
            return df, "tensorboard"
    return None, None


def read_tensorboard(directory: str | Path) -> pd.DataFrame | None:
    """The scalars of TensorBoard event files as one wide frame (``train/`` dropped from the names, as in the CSV).

    ``None`` when the ``tensorboard`` package is missing or the files hold no scalar.
    """
    try:
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    except ImportError:
        return None
    acc = EventAccumulator(str(directory), size_guidance={"scalars": 0})  # 0: keep every event
    acc.Reload()
    series = {}
    for tag in acc.Tags().get("scalars", []):
        name = tag[len("train/") :] if tag.startswith("train/") else tag
        events = acc.Scalars(tag)
        series[name] = pd.Series([e.value for e in events], index=[e.step for e in events], dtype="float64")
        series[name] = series[name][~series[name].index.duplicated(keep="last")]
    if not series:
        return None
    df = pd.DataFrame(series).sort_index()
    df.index.name = "step"
    return df.reset_index()


def scalar_groups(df: pd.DataFrame) -> dict[str, list[str]]:
    """The columns worth plotting, grouped: ``losses``, ``training`` (lr, clips/s...), ``evaluation`` (``eval/*``)."""
    cols = [c for c in df.columns if c != "step" and df[c].notna().any()]
    evaluation = [c for c in cols if c.startswith("eval/") and not c.startswith("eval/num_")]
    losses = [c for c in cols if c.endswith("loss") and c not in evaluation]
    training = [c for c in cols if c not in losses and c not in evaluation and not c.startswith("eval/")]
    return {"losses": losses, "training": training, "evaluation": evaluation}


def curves(df: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Long form of the chosen scalars for plotting: ``step``, ``scalar``, ``value`` (NaN steps dropped)."""
    keep = [c for c in columns if c in df.columns]
    long = df.melt(id_vars="step", value_vars=keep, var_name="scalar", value_name="value")
    return long.dropna(subset=["value"]).reset_index(drop=True)


def curves_figure(df: pd.DataFrame, columns: list[str], title: str, log_y: bool = False) -> Any:
    """A plotly line chart of the chosen scalars over steps (markers when a scalar has few points, e.g. evals)."""
    import plotly.express as px

    long = curves(df, columns)
    fig = px.line(long, x="step", y="value", color="scalar", title=title, log_y=log_y)
    few = long.groupby("scalar")["value"].size().max() if len(long) else 0
    if few and few <= 20:
        fig.update_traces(mode="lines+markers")
    fig.update_layout(height=380, margin=dict(l=10, r=10, t=40, b=10), legend_title_text="")
    return fig


def metric_table(metrics: Mapping[str, Any]) -> pd.DataFrame:
    """Retrieval metrics by direction: rows ``text -> video``, ... (and ``(attributes)`` variants), columns
    ``R@1``, ``R@5``, ``R@10`` (in %) and ``MedR``, from keys like ``eval/t2v_r1`` (``training.evaluation``)."""
    table: dict[str, dict[str, float]] = {}
    for key, value in metrics.items():
        m = _METRIC.match(str(key))
        if m is None or value is None:
            continue
        try:
            value = float(value)
        except (TypeError, ValueError):
            continue
        if math.isnan(value):
            continue
        q, t, attr, metric = m.groups()
        name = f"{MODALITY_NAMES[q]} \u2192 {MODALITY_NAMES[t]}" + (" (attributes)" if attr else "")
        table.setdefault(name, {})[_METRIC_COLUMNS[metric]] = 100.0 * value if metric != "medr" else value
    out = pd.DataFrame.from_dict(table, orient="index")
    if out.empty:
        return pd.DataFrame(columns=list(_METRIC_COLUMNS.values()))
    out = out[[c for c in _METRIC_COLUMNS.values() if c in out.columns]]
    out.index.name = "direction"
    return out.loc[sorted(out.index, key=lambda n: ("attributes" in n, n))]


# ---------------------------------------------------------------------------------------------------
# The card
# ---------------------------------------------------------------------------------------------------


@dataclass
class ModelCard:
    """Everything the Model page shows about one checkpoint.

    Attributes:
        path: the checkpoint directory.
        config: its :class:`mmv.config.MMVConfig`.
        header: ``config.json`` without the config (format, versions, metadata).
        settings: :func:`config_summary`.
        parameters: :func:`parameter_counts`.
        total / trainable: parameter totals of the loaded model.
        run_dir: the run it came from (:func:`find_run_dir`) or ``None``.
        summary: the run's ``summary.json`` (``{}`` without).
        run_config: the run's resolved config (checkpoint metadata, else ``config.yaml``; ``{}`` without).
        training: ``(item, value)`` rows about the training (steps, data, batch, optimiser, ...).
        final_metrics: the metrics at the end of training (metadata ``final_metrics``, else the summary's).
        deflation: what the attached image-network recalibration says about itself (``{}`` without).
    """

    path: Path
    config: Any
    header: dict[str, Any]
    settings: pd.DataFrame
    parameters: pd.DataFrame
    total: int
    trainable: int
    run_dir: Path | None = None
    summary: dict[str, Any] = field(default_factory=dict)
    run_config: dict[str, Any] = field(default_factory=dict)
    training: list[tuple[str, str]] = field(default_factory=list)
    final_metrics: dict[str, float] = field(default_factory=dict)
    deflation: dict[str, Any] = field(default_factory=dict)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        import yaml

        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except Exception:  # a missing or damaged file: the card goes without it
        return {}
    return data if isinstance(data, dict) else {}


def _training_rows(metadata: Mapping[str, Any], run: Mapping[str, Any], summary: Mapping[str, Any]) -> list:
    rows: list[tuple[str, str]] = []
    steps = metadata.get("steps", summary.get("step"))
    if steps is not None:
        rows.append(("steps", f"{int(steps):,}"))
    for source in metadata.get("data") or run.get("data", {}).get("train") or []:
        if isinstance(source, Mapping):
            rows.append(("data", f"{source.get('manifest')} (split {source.get('split', 'train')}, "
                                 f"proportion {source.get('proportion', 1.0):g})"))  # fmt: skip
    data, optim, train = run.get("data", {}), run.get("optim", {}), run.get("train", {})
    if data.get("batch_size"):
        world = summary.get("world_size", 1)
        rows.append(("batch", f"{data['batch_size']} per process x {world} x {train.get('accum_steps', 1)} accum."))
    if optim.get("lr") is not None:
        rows.append(("optimiser", f"Adam, lr {optim['lr']:g}, warm-up {optim.get('warmup_steps', 0)} steps, "
                                  f"weight decay {optim.get('weight_decay', 0):g}"))  # fmt: skip
    if train.get("precision"):
        rows.append(("precision / device", f"{train['precision']} on {train.get('device', '?')}"))
    loss = run.get("loss", {})
    if loss:
        weights = ", ".join(f"\u03bb_{k[7:]} = {v:g}" for k, v in sorted(loss.items()) if k.startswith("lambda_"))
        rows.append(("loss", f"temperature {loss.get('temperature', '?')}; {weights}"))
    if summary:
        rows.append(("completed", "yes" if summary.get("completed") else "no"))
        if summary.get("skipped"):
            rows.append(("skipped samples", str(summary["skipped"])))
    return rows


def load_card(path: str | Path, model: MMV) -> ModelCard:
    """The card of the checkpoint at ``path``, whose loaded model is ``model`` (counted, never modified)."""
    from mmv.checkpoint import read_checkpoint_header

    path = Path(path)
    header = read_checkpoint_header(path)
    config = model.config
    metadata = header.get("metadata") or {}
    run_dir = find_run_dir(path)
    summary = _read_json(run_dir / "summary.json") if run_dir else {}
    run_config = metadata.get("run_config") or (_read_yaml(run_dir / "config.yaml") if run_dir else {})
    final = dict(metadata.get("final_metrics") or summary.get("metrics") or {})
    params = parameter_counts(model)
    total, trainable = _count(model)
    return ModelCard(
        path=path,
        config=config,
        header={k: v for k, v in header.items() if k != "config"},
        settings=config_summary(config),
        parameters=params,
        total=total,
        trainable=trainable,
        run_dir=run_dir,
        summary=summary,
        run_config=run_config,
        training=_training_rows(metadata, run_config, summary),
        final_metrics={k: float(v) for k, v in final.items() if isinstance(v, (int, float))},
        deflation=dict(model.deflation_info),
    )
