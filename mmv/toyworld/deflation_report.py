"""The deflation report on a toy-world split: what a still frame of the toy world should be matched with.

:func:`toyworld_report` takes one frame per clip of a split (the middle of its window by default) and runs the
general :func:`mmv.deflation.report.deflation_report` with what only the toy world knows:

* **image -> text** in S_vat: candidates are the split's distinct clean descriptions
  (:func:`mmv.toyworld.tasks.clean_description` of each clip's ``(shape, colour, motion)``); a description is
  correct when it names the frame's shape *and* colour (a still frame cannot show the motion, so every motion
  of the right object counts): :func:`description_targets`;
* **image -> video** in S_vat: candidates are the split's clips embedded as videos (first evaluation window);
  the correct one is the frame's own clip (:func:`mmv.deflation.report.own_clip_videos`);
* zero-shot classification of the frames by shape, by colour and by both, with the prompt ensembles of
  :func:`toyworld_prompts`.

``python -m training.deflate --report`` prints it (:func:`mmv.deflation.report.format_markdown`), as does the
deflation step of ``python -m training.paper``. This module is the toy world's side of deflation, so the general
:mod:`mmv.deflation` never imports :mod:`mmv.toyworld`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mmv.data.manifest import load_manifest
from mmv.deflation.comparison import MODES
from mmv.deflation.images import ImageSet, frames_from_manifest
from mmv.deflation.report import deflation_report, own_clip_videos
from mmv.toyworld.spec import COLOURS, MOTIONS, SHAPES
from mmv.toyworld.tasks import clean_description

if TYPE_CHECKING:
    from mmv.models.mmv import MMV

#: Zero-shot tasks of the report, in table order: the attributes :func:`toyworld_prompts` takes.
ZERO_SHOT = ("shape", "colour", "shape_colour")

#: Manifest columns the report needs: the attributes of each clip's primary object.
LABEL_COLUMNS = ("label_shape", "label_colour", "label_motion")


def toyworld_prompts(attribute: str) -> dict[str, list[str]]:
    """Class prompts for zero-shot classification of toy-world frames, from the world's clean descriptions.

    Each class is the ensemble of :func:`mmv.toyworld.tasks.clean_description` sentences over the attributes a
    single frame cannot (or need not) tell, so no class is favoured by one particular wording of the others:
    ``'shape'`` -> for each shape, the sentences of every colour and motion (6 x 8 = 48 each); ``'colour'`` ->
    for each colour, every shape and motion; ``'shape_colour'`` -> classes ``"<colour> <shape>"``, over every motion.

    Returns:
        ``{class: [sentences]}`` in the world's attribute order (:data:`~mmv.toyworld.spec.SHAPES`, ...).
    """
    if attribute == "shape":
        return {s: [clean_description(s, c, m) for c in COLOURS for m in MOTIONS] for s in SHAPES}
    if attribute == "colour":
        return {c: [clean_description(s, c, m) for s in SHAPES for m in MOTIONS] for c in COLOURS}
    if attribute == "shape_colour":
        return {f"{c} {s}": [clean_description(s, c, m) for m in MOTIONS] for s in SHAPES for c in COLOURS}
    raise ValueError(f"toyworld_prompts: attribute must be 'shape', 'colour' or 'shape_colour', got {attribute!r}")


def description_targets(
    df: pd.DataFrame, shapes: Sequence[str], colours: Sequence[str]
) -> tuple[list[str], np.ndarray]:
    """Image -> text candidates of a split and which of them each frame should find.

    Args:
        df: the split's manifest rows (``label_shape``, ``label_colour``, ``label_motion``).
        shapes, colours: the shape and colour of each of ``N`` frames.

    Returns:
        ``(texts, text_gt)``: the split's distinct clean descriptions (``K``, first-seen order) and bool
        ``[N, K]``, true where a description names the frame's shape and colour: a frame cannot show the motion,
        so every motion of the right object counts.
    """
    keys = list(dict.fromkeys(zip(df["label_shape"], df["label_colour"], df["label_motion"])))
    texts = [clean_description(shape=s, colour=c, motion=m) for s, c, m in keys]
    text_gt = np.array([[k[0] == s and k[1] == c for k in keys] for s, c in zip(shapes, colours)], dtype=bool)
    return texts, text_gt


def split_frames(
    model: MMV,
    manifest: pd.DataFrame | str | os.PathLike,
    split: str,
    *,
    max_clips: int | None = None,
    position: str = "middle",
) -> tuple[pd.DataFrame, ImageSet]:
    """The rows of a toy-world split (a seeded subset of ``max_clips``) and one frame of each at the model's size.

    Raises ``ValueError`` before reading any video when the model has no text tower or vocabulary (the prompts
    need them) or the split is empty or unlabelled.
    """
    df = load_manifest(manifest) if isinstance(manifest, (str, os.PathLike)) else manifest
    df = df[df["split"] == split].reset_index(drop=True)
    if "text" not in model.config.modalities or model.vocab is None:
        raise ValueError("toyworld_report: the model needs a text tower and a vocabulary (zero-shot prompts)")
    missing = [c for c in LABEL_COLUMNS if c not in df.columns]
    if missing or len(df) == 0:
        raise ValueError(f"toyworld_report: need a toy-world split with labels (missing {missing}, {len(df)} rows)")
    if max_clips is not None and len(df) > max_clips:
        df = df.iloc[np.sort(np.random.default_rng(0).choice(len(df), max_clips, replace=False))].reset_index(drop=True)
    return df, frames_from_manifest(df, model.config.video.frame_size, position=position)


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
        modes: which of :data:`~mmv.deflation.MODES` (``'calibrated'`` is dropped when the model has none).
        num_frames: T of the inflated reference (default: the config's).

    Returns:
        :func:`~mmv.deflation.report.deflation_report`'s result (``summary`` with ``zs_shape``, ``zs_colour`` and
        ``zs_shape_colour`` columns, ``compare``, ``zero_shot``, ``num_images``, ``num_texts``, ``skipped``) and
        ``split``.
    """
    df, frames = split_frames(model, manifest, split, max_clips=max_clips, position=position)
    frames, video_bank, video_gt = own_clip_videos(model, df, frames, device=device, batch_size=batch_size)
    shapes, colours = frames.labels["shape"], frames.labels["colour"]
    texts, text_gt = description_targets(df, shapes, colours)
    labels = {"shape": shapes, "colour": colours, "shape_colour": [f"{c} {s}" for s, c in zip(shapes, colours)]}
    report = deflation_report(
        model,
        frames,
        texts=texts,
        text_gt=text_gt,
        video_bank=video_bank,
        video_gt=video_gt,
        zero_shot={task: (labels[task], toyworld_prompts(task)) for task in ZERO_SHOT},
        modes=modes,
        num_frames=num_frames,
        batch_size=batch_size,
    )
    return {**report, "split": split}
