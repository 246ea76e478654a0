"""Zero-shot retrieval on a manifest split: the evaluation the training loop runs periodically.

:func:`evaluate_retrieval` embeds every clip of the split (:func:`mmv.eval.embed_manifest`: eval mode,
embeddings averaged over ``num_windows`` linearly spaced windows, then L2-normalised) and ranks them with
:func:`mmv.eval.retrieval_metrics` (ties pessimistic). Every key is ``<direction>_<metric>`` with metric
``r1``, ``r5``, ``r10`` (recall at 1/5/10, fractions) or ``medr`` (median rank), for example ``t2v_r1``.

Clip level (any manifest): the ground truth of a query is *the same clip*.

=========  ===============================  ==================================  =====
direction  queries                          candidates                          space
=========  ===============================  ==================================  =====
t2v        narration of each narrated clip  video of every clip                 S_vat
v2t        video of each narrated clip      narration of every narrated clip    S_vat
v2a        video of each clip with audio    audio of every clip with audio      S_va
a2v        audio of each clip with audio    video of every clip with audio      S_va
a2t        audio of each narrated clip      narration of every narrated clip    S_vat
t2a        narration of each narrated clip  audio of every clip with audio      S_vat
=========  ===============================  ==================================  =====

A clip's *narration* is its caption bag: the ``NARRATION_CAPTIONS`` (8) captions nearest each window, each
embedded and L2-normalised, averaged over the bag and the windows, normalised again. Clips without narration
(20 % of the toy world, AudioSet-like) are neither text queries nor text candidates. Audio reaches S_vat only
through FAC's eval path (the video's va->vat head): audio and text are never paired in training.

Attribute level (manifests with ``label_shape``, ``label_colour`` and ``label_motion``, i.e. the toy world):
toy-world narration is noisy on purpose (off-topic and wrong captions, fillers, 20 % of clips silent), so a
second set of metrics asks whether the model knows *what* is in a clip. Each clip's **description** is the
clean sentence :func:`mmv.toyworld.tasks.clean_description` builds from its primary object's
``(shape, colour, motion)`` with the toy world's own first template and first synonyms (``"a red circle moves
to the right"``; size is not part of it). A retrieved item is correct when it has the **same (shape, colour,
motion)** as the query's clip (so a query usually has one or two correct items; its own clip always is one).

==========  ==============================  ===================================================  =====
direction   queries                         candidates                                           space
==========  ==============================  ===================================================  =====
t2v_attr    description of each clip        video of every clip                                  S_vat
v2t_attr    video of each clip              the *distinct* descriptions of the split's clips     S_vat
a2t_attr    audio of each clip with audio   the distinct descriptions                            S_vat
t2a_attr    description of each clip with   audio of every clip with audio                       S_vat
            audio
v2a_attr    video of each clip with audio   audio of every clip with audio                       S_va
a2v_attr    audio of each clip with audio   video of every clip with audio                       S_va
==========  ==============================  ===================================================  =====

For ``t2v_attr``, ``v2t_attr`` and ``a2t_attr`` the keys ``<direction>_top1_<attribute>`` (e.g.
``t2v_attr_top1_shape``) say how often the top-ranked candidate has the query's shape, colour or motion (ties:
the lowest index), showing which attribute a model has learnt.

Descriptions are deduplicated as candidates (identical sentences would only take several places in the
ranking), so ``v2t_attr_r1`` / ``a2t_attr_r1`` are the accuracy of a zero-shot classification of the clip
into the ``(shape, colour, motion)`` triples present in the split (about 120 for 200 test clips; chance about
1 %). ``num_clips``, ``num_narrated`` and ``num_descriptions`` are reported too.

Command line (a saved model on a manifest split; prints a table, or JSON with ``--json``)::

    python -m training.evaluation --model data_samples/demo_model --manifest models/toyworld/manifest.parquet \
        --split test --num-windows 4
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch

from mmv.data.manifest import load_manifest
from mmv.embed import embed_sentences, eval_mode
from mmv.eval.retrieval import embed_manifest, eval_clips, retrieval_metrics
from mmv.tokenizer import Vocabulary

if TYPE_CHECKING:
    from mmv.models.mmv import MMV

#: The labels that define an attribute-level match (and the clean description).
ATTRIBUTES = ("shape", "colour", "motion")
METRICS = ("r1", "r5", "r10", "medr")


def _vocabulary(vocab: Vocabulary | str | os.PathLike | None, model: MMV) -> Vocabulary | None:
    if isinstance(vocab, Vocabulary):
        return vocab
    if vocab is not None:
        path = Path(vocab)
        return Vocabulary.load(path / "vocab.txt" if path.is_dir() else path)
    return model.vocab


def _split(manifest: pd.DataFrame | str | os.PathLike, split: str | None, max_clips: int | None) -> pd.DataFrame:
    df = load_manifest(manifest) if isinstance(manifest, (str, os.PathLike)) else manifest
    if split is not None:
        if "split" not in df.columns:
            raise ValueError(f"evaluate_retrieval: split={split!r} but the manifest has no 'split' column")
        df = df[df["split"] == split]
    if max_clips is not None:
        df = df.iloc[: int(max_clips)]
    if len(df) == 0:
        raise ValueError(f"evaluate_retrieval: no clip in split {split!r}")
    return df.reset_index(drop=True)


def _direction(
    out: dict[str, float],
    name: str,
    queries: torch.Tensor,
    candidates: torch.Tensor,
    gt: np.ndarray,
    attributes: tuple[np.ndarray, np.ndarray] | None = None,
) -> None:
    """Adds ``name_<metric>`` for similarity ``queries @ candidates.T`` (skipped when either side is empty).

    With ``attributes`` (the query and candidate attribute-value arrays, ``[Q, A]`` and ``[N, A]``) also adds
    ``name_top1_<attribute>``: how often the top-ranked candidate has the query's value of that attribute.
    """
    if len(queries) == 0 or len(candidates) == 0:
        return
    sim = queries.double() @ candidates.double().T
    m = retrieval_metrics(sim, gt)
    out.update({f"{name}_{k}": float(m[k]) for k in METRICS})
    if attributes is not None:
        top = sim.argmax(dim=1).numpy()
        q, c = attributes
        for i, attr in enumerate(ATTRIBUTES):
            out[f"{name}_top1_{attr}"] = float(np.mean(q[:, i] == c[top, i]))


def _same_clip(query_rows: np.ndarray, candidate_rows: np.ndarray) -> np.ndarray:
    """Bool ``[Q, N]``: candidate is the query's own clip."""
    return query_rows[:, None] == candidate_rows[None, :]


def evaluate_retrieval(
    model: MMV,
    manifest: pd.DataFrame | str | os.PathLike,
    *,
    vocab: Vocabulary | str | os.PathLike | None,
    split: str | None = "test",
    device: str | torch.device = "cpu",
    batch_size: int = 32,
    num_windows: int = 1,
    max_clips: int | None = None,
    num_workers: int = 0,
) -> dict[str, float]:
    """Zero-shot retrieval between video, audio and text on one split (module docstring: every definition).

    The model is put in eval mode and restored to its previous mode afterwards; no gradient is computed.

    Args:
        model: an :class:`mmv.models.mmv.MMV` already on ``device``.
        manifest: a manifest path or a loaded table (paths resolved).
        vocab: the vocabulary captions are encoded with: a :class:`Vocabulary`, a ``vocab.txt`` path or a
            checkpoint directory holding one, or ``None`` for the model's own (``model.vocab``).
        split: the manifest split (``None``: every row).
        device: where the model runs.
        batch_size: windows per forward pass.
        num_windows: linearly spaced windows per clip whose embeddings are averaged (4 in VATT's account of
            MMV's protocol; 1, the first window, is cheapest).
        max_clips: evaluate only the first ``max_clips`` clips of the split (quick periodic checks).
        num_workers: DataLoader workers.

    Returns:
        ``{direction}_{r1,r5,r10,medr}`` for the clip-level and (toy world) attribute-level directions the
        model and data allow, plus ``num_clips``, ``num_narrated`` and ``num_descriptions``; all floats.
    """
    df = _split(manifest, split, max_clips)
    vocab = _vocabulary(vocab, model)
    dataset = eval_clips(model, df, vocab=vocab, num_windows=num_windows)
    use_text = dataset.vocab is not None
    with eval_mode(model):
        emb = embed_manifest(model, dataset, device, num_windows, batch_size=batch_size, num_workers=num_workers)
        labels = emb["labels"]
        has_attrs = use_text and all(a in labels and all(v is not None for v in labels[a]) for a in ATTRIBUTES)
        descriptions = None
        if has_attrs:
            from mmv.toyworld.tasks import clean_description

            keys = list(zip(*(labels[a] for a in ATTRIBUTES)))
            distinct = list(dict.fromkeys(keys))
            sentences = [clean_description(shape=k[0], colour=k[1], motion=k[2]) for k in distinct]
            descriptions = embed_sentences(model, sentences, vocab)  # [D, d]

    rows = np.arange(len(emb["index"]))
    has_text = emb["has_text"].numpy()
    has_audio = emb["has_audio"].numpy() if "audio_va" in emb else np.zeros(len(rows), dtype=bool)
    narrated, audible = rows[has_text], rows[has_audio]
    out: dict[str, float] = {
        "num_clips": float(len(rows)),
        "num_narrated": float(len(narrated)),
    }
    video_vat, video_va = emb.get("video_vat"), emb.get("video_va")
    audio_vat, audio_va, text_vat = emb.get("audio_vat"), emb.get("audio_va"), emb.get("text_vat")

    # Clip level: the correct item is the query's own clip.
    if text_vat is not None and video_vat is not None:
        _direction(out, "t2v", text_vat[narrated], video_vat, _same_clip(narrated, rows))
        _direction(out, "v2t", video_vat[narrated], text_vat[narrated], _same_clip(narrated, narrated))
    if video_va is not None and audio_va is not None:
        _direction(out, "v2a", video_va[audible], audio_va[audible], _same_clip(audible, audible))
        _direction(out, "a2v", audio_va[audible], video_va[audible], _same_clip(audible, audible))
    if text_vat is not None and audio_vat is not None:
        both = rows[has_text & has_audio]
        _direction(out, "a2t", audio_vat[both], text_vat[narrated], _same_clip(both, narrated))
        _direction(out, "t2a", text_vat[both], audio_vat[audible], _same_clip(both, audible))

    # Attribute level: the correct items share the query clip's (shape, colour, motion).
    if descriptions is not None:
        key_id = {k: i for i, k in enumerate(distinct)}
        cls = np.array([key_id[k] for k in keys])  # each clip's description (= attribute triple) id
        out["num_descriptions"] = float(len(distinct))
        same = cls[:, None] == cls[None, :]  # [M, M] same attributes
        own = descriptions[cls]  # each clip's own description as a query
        clip_attrs, desc_attrs = np.array(keys, dtype=object), np.array(distinct, dtype=object)
        if video_vat is not None:
            _direction(out, "t2v_attr", own, video_vat, same, (clip_attrs, clip_attrs))
            by_desc = cls[:, None] == np.arange(len(distinct))[None]
            _direction(out, "v2t_attr", video_vat, descriptions, by_desc, (clip_attrs, desc_attrs))
        if audio_vat is not None:
            a_cls = cls[audible]
            by_desc = a_cls[:, None] == np.arange(len(distinct))[None]
            _direction(out, "a2t_attr", audio_vat[audible], descriptions, by_desc, (clip_attrs[audible], desc_attrs))
            _direction(out, "t2a_attr", own[audible], audio_vat[audible], a_cls[:, None] == a_cls[None, :])
        if video_va is not None and audio_va is not None:
            a_same = same[np.ix_(audible, audible)]
            _direction(out, "v2a_attr", video_va[audible], audio_va[audible], a_same)
            _direction(out, "a2v_attr", audio_va[audible], video_va[audible], a_same)
    return out


def format_table(metrics: dict[str, float]) -> str:
    """The metrics as a plain-text table: one row per direction, columns R@1, R@5, R@10, MedR (and, for the
    attribute-level rows that have them, how often the top-1 item shares each attribute)."""
    directions = list(dict.fromkeys(k.rsplit("_", 1)[0] for k in metrics if k.rsplit("_", 1)[-1] in METRICS))
    head = f"{'direction':<10} {'R@1':>6} {'R@5':>6} {'R@10':>6} {'MedR':>6}"
    lines = [head + "".join(f" {'top1 ' + a:>12}" for a in ATTRIBUTES)]
    for d in directions:
        r = [metrics.get(f"{d}_{m}", float("nan")) for m in METRICS]
        row = f"{d:<10} {r[0]:>6.3f} {r[1]:>6.3f} {r[2]:>6.3f} {r[3]:>6.1f}"
        top = [metrics.get(f"{d}_top1_{a}") for a in ATTRIBUTES]
        lines.append(row + ("".join(f" {t:>12.3f}" for t in top) if None not in top else ""))
    counts = ", ".join(f"{k} {int(v)}" for k, v in metrics.items() if k.startswith("num_"))
    return "\n".join([*lines, counts])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training.evaluation",
        description="Zero-shot retrieval of a saved model on a manifest split (clip and attribute level).",
        allow_abbrev=False,
    )
    parser.add_argument("--model", required=True, help="checkpoint directory (config.json + model.safetensors)")
    parser.add_argument("--manifest", required=True, help="manifest (.parquet or .csv)")
    parser.add_argument("--split", default="test", help="manifest split (default test)")
    parser.add_argument("--num-windows", type=int, default=1, help="windows averaged per clip (default 1)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-clips", type=int, default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", action="store_true", help="print the metrics as JSON")
    args = parser.parse_args(argv)

    from mmv.checkpoint import load_checkpoint

    model = load_checkpoint(args.model, map_location=args.device)
    metrics = evaluate_retrieval(
        model,
        args.manifest,
        vocab=None,
        split=args.split,
        device=args.device,
        batch_size=args.batch_size,
        num_windows=args.num_windows,
        max_clips=args.max_clips,
    )
    print(json.dumps(metrics, indent=2) if args.json else format_table(metrics))
    return 0


if __name__ == "__main__":
    sys.exit(main())
