"""The deflation report on a toy-world split: agreement with the inflated reference, retrieval, zero-shot.

:func:`toyworld_report` takes one frame per clip of a split (the middle of its window by default) and runs
:func:`mmv.deflation.compare` with

* **image -> text** in S_vat: candidates are the split's distinct clean descriptions
  (:func:`mmv.toyworld.tasks.clean_description` of each clip's ``(shape, colour, motion)``); a description is
  correct when it names the frame's shape *and* colour (a still frame cannot show the motion, so every motion
  of the right object counts);
* **image -> video** in S_vat: candidates are the split's clips embedded as videos (first evaluation window);
  the correct one is the frame's own clip;

and zero-shot classification of the frames by shape, by colour and by both (:func:`zero_shot_classify` with
:func:`toyworld_prompts`). ``python -m training.deflate --report`` prints it; :func:`format_markdown` gives the
table ``docs/deflation.md`` shows.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mmv.data.dataset import ClipDataset
from mmv.data.manifest import load_manifest
from mmv.deflation.comparison import MODES, available_modes, compare, toyworld_prompts, zero_shot_classify
from mmv.deflation.images import frames_from_manifest
from mmv.eval.retrieval import embed_manifest

if TYPE_CHECKING:
    from mmv.models.mmv import MMV

#: Zero-shot tasks of the report: label -> prompt set of :func:`toyworld_prompts`.
ZERO_SHOT = ("shape", "colour", "shape_colour")


def toyworld_report(
    model: MMV,
    manifest: pd.DataFrame | str | os.PathLike,
    *,
    split: str = "test",
    max_clips: int | None = None,
    position: str = "middle",
    modes: tuple[str, ...] = MODES,
    num_frames: int | None = None,
    batch_size: int = 32,
    device: str = "cpu",
) -> dict[str, Any]:
    """Inflated / naive / calibrated embeddings of one frame per clip of a toy-world split, compared.

    Args:
        model: an :class:`~mmv.models.mmv.MMV` with video and text towers and a vocabulary, on ``device``.
        manifest: a toy-world manifest (needs ``label_shape``, ``label_colour``, ``label_motion``).
        split: the manifest split (use one the calibration did not train on).
        max_clips: a seeded subset of the split's clips (``None``: all).
        position: where the frame is taken in each clip's window (``'middle'`` or ``'random'``).
        modes: which of :data:`MODES` (``'calibrated'`` is dropped when the model has none).
        num_frames: T of the inflated reference (default: the config's).

    Returns:
        ``summary`` (DataFrame, one row per mode: ms per image, speed-up, mean cosines to the inflated
        embedding, i2t / i2v metrics, ``zs_<task>`` accuracies), ``compare`` (:func:`compare`'s result),
        ``zero_shot`` (``{task: zero_shot_classify result}``), ``num_images``, ``split``, ``skipped``.
    """
    df = load_manifest(manifest) if isinstance(manifest, (str, os.PathLike)) else manifest
    df = df[df["split"] == split].reset_index(drop=True)
    if "text" not in model.config.modalities or model.vocab is None:
        raise ValueError("toyworld_report: the model needs a text tower and a vocabulary (zero-shot prompts)")
    missing = [c for c in ("label_shape", "label_colour", "label_motion") if c not in df.columns]
    if missing or len(df) == 0:
        raise ValueError(f"toyworld_report: need a toy-world split with labels (missing {missing}, {len(df)} rows)")
    if max_clips is not None and len(df) > max_clips:
        df = df.iloc[np.sort(np.random.default_rng(0).choice(len(df), max_clips, replace=False))].reset_index(drop=True)
    cfg = model.config
    frames = frames_from_manifest(df, cfg.video.frame_size, position=position)
    labels = frames.labels

    # Image -> text: distinct descriptions of the split; correct = same shape and colour.
    from mmv.toyworld.tasks import clean_description

    keys = list(dict.fromkeys(zip(df["label_shape"], df["label_colour"], df["label_motion"])))
    texts = [clean_description(shape=s, colour=c, motion=m) for s, c, m in keys]
    text_gt = np.array(
        [[k[0] == s and k[1] == c for k in keys] for s, c in zip(labels["shape"], labels["colour"])], dtype=bool
    )
    # Image -> video: the split's clips as videos (one window each); correct = the frame's own clip.
    videos = embed_manifest(
        model,
        ClipDataset(df, video_cfg=cfg.video, mode="eval", num_windows=1),
        device,
        1,
        batch_size=batch_size,
    )
    row_of = {clip: i for i, clip in enumerate(videos["clip_id"])}
    keep = np.array([c in row_of for c in labels["clip_id"]])
    if not keep.all():  # a clip whose video window could not be read: its frames cannot be matched
        frames = frames.subset(np.flatnonzero(keep))
        labels, text_gt = frames.labels, text_gt[keep]
    video_gt = np.array([row_of[c] for c in labels["clip_id"]])

    result = compare(
        model,
        frames,
        texts=texts,
        text_gt=text_gt,
        video_bank=videos["video_vat"],
        video_gt=video_gt,
        video_space="vat",
        modes=available_modes(model, modes),
        num_frames=num_frames,
        batch_size=batch_size,
    )
    joint = [f"{c} {s}" for s, c in zip(labels["shape"], labels["colour"])]
    task_labels = {"shape": labels["shape"], "colour": labels["colour"], "shape_colour": joint}
    zero_shot = {
        task: zero_shot_classify(model, task_labels[task], toyworld_prompts(task), embeddings=result["embeddings"])
        for task in ZERO_SHOT
    }
    summary = result["summary"].copy()
    for task, zs in zero_shot.items():
        summary[f"zs_{task}"] = pd.Series(zs["accuracy"])
    return {
        "summary": summary,
        "compare": result,
        "zero_shot": zero_shot,
        "num_images": len(frames),
        "num_texts": len(texts),
        "split": split,
        "skipped": frames.skipped,
    }


#: Columns of :func:`format_markdown`, with their headers and formats.
_COLUMNS = (
    ("ms_per_image", "ms / image", "{:.2f}"),
    ("speedup", "speed-up", "{:.1f}x"),
    ("cos_repr", "cos repr", "{:.3f}"),
    ("cos_vat", "cos S_vat", "{:.3f}"),
    ("zs_shape", "zero-shot shape", "{:.3f}"),
    ("zs_colour", "zero-shot colour", "{:.3f}"),
    ("zs_shape_colour", "zero-shot shape+colour", "{:.3f}"),
    ("i2t_r1", "i2t R@1", "{:.3f}"),
    ("i2t_r5", "i2t R@5", "{:.3f}"),
    ("i2v_r1", "i2v R@1", "{:.3f}"),
    ("i2v_r10", "i2v R@10", "{:.3f}"),
    ("i2v_medr", "i2v MedR", "{:.0f}"),
)


def format_markdown(summary: pd.DataFrame) -> str:
    """A report's summary as a Markdown table (a column absent from the summary is left out; NaN is "—")."""
    cols = [c for c in _COLUMNS if c[0] in summary.columns]
    lines = ["| mode | " + " | ".join(h for _, h, _ in cols) + " |", "|---|" + "---:|" * len(cols)]
    for mode, row in summary.iterrows():
        cells = ["—" if pd.isna(row[c]) else f.format(row[c]) for c, _, f in cols]
        lines.append(f"| {mode} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
