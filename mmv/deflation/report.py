"""The deflation report of labelled manifest frames: agreement with the inflated reference, retrieval, zero-shot.

Dataset-agnostic pieces a report is built from; the caller knows its dataset and hands in the candidate texts,
their ground truth and the zero-shot class prompts (the toy world's report is
:func:`mmv.toyworld.deflation_report.toyworld_report`):

* :func:`own_clip_videos`: the image -> video task of frames taken from a manifest: the manifest's clips
  embedded as videos, and each frame's own clip as its correct answer;
* :func:`deflation_report`: :func:`mmv.deflation.compare` (cosines, image -> text, image -> video, time per
  image) plus :func:`mmv.deflation.zero_shot_classify` for each zero-shot task, in one summary table;
* :func:`format_markdown`: that summary as the Markdown table ``python -m training.deflate --report`` prints
  and ``docs/deflation.md`` shows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch

from mmv.data.dataset import ClipDataset
from mmv.deflation.comparison import MODES, available_modes, compare, zero_shot_classify
from mmv.deflation.images import ImageSet
from mmv.embed import embed_manifest

if TYPE_CHECKING:
    from mmv.models.mmv import MMV


def own_clip_videos(
    model: MMV, df: pd.DataFrame, frames: ImageSet, *, device: str = "cpu", batch_size: int = 32
) -> tuple[ImageSet, torch.Tensor, np.ndarray]:
    """The image -> video task of frames taken from the clips of ``df``: find the frame's own clip.

    Each clip of ``df`` is embedded as a video (its first evaluation window, S_vat), so a deflated image embedding
    can be ranked against the videos it should stand in for. A frame whose clip could not be read as a video
    has no correct answer and is dropped.

    Args:
        model: an :class:`~mmv.models.mmv.MMV` with a video tower, on ``device``.
        df: the manifest rows the frames were taken from.
        frames: ``N`` frames of those clips (:func:`mmv.deflation.frames_from_manifest`; needs ``labels['clip_id']``).

    Returns:
        ``(frames, video_bank, video_gt)``: the frames kept (``N' <= N``), the L2-normalised S_vat video embeddings
        float32 ``[M, D]`` (``M`` = the readable clips of ``df``), and int ``[N']`` the row of each frame's clip.
    """
    videos = embed_manifest(
        model,
        ClipDataset(df, video_cfg=model.config.video, mode="eval", num_windows=1),
        device,
        1,
        batch_size=batch_size,
    )
    row_of = {clip: i for i, clip in enumerate(videos["clip_id"])}
    keep = np.array([c in row_of for c in frames.labels["clip_id"]])
    if not keep.all():  # a clip whose video window could not be read: its frames cannot be matched
        frames = frames.subset(np.flatnonzero(keep))
    video_gt = np.array([row_of[c] for c in frames.labels["clip_id"]])
    return frames, videos["video_vat"], video_gt


def deflation_report(
    model: MMV,
    frames: ImageSet,
    *,
    texts: Sequence[str],
    text_gt: np.ndarray,
    video_bank: torch.Tensor,
    video_gt: np.ndarray,
    zero_shot: Mapping[str, tuple[Sequence[Any], Mapping[Any, Sequence[str]]]],
    modes: Sequence[str] = MODES,
    num_frames: int | None = None,
    batch_size: int = 32,
) -> dict[str, Any]:
    """Inflated / naive / calibrated embeddings of ``frames`` compared, with zero-shot classification in one table.

    The zero-shot tasks reuse :func:`compare`'s embeddings, so each image goes through each tower once.

    Args:
        model: an :class:`~mmv.models.mmv.MMV` with video and text towers and a vocabulary.
        frames: ``N`` images (``[N, H, W, 3]`` in an :class:`ImageSet`).
        texts: image -> text candidates; ``text_gt`` bool ``[N, len(texts)]`` (or the other forms of
            :func:`mmv.eval.ranking.retrieval_metrics`): which are correct for each frame.
        video_bank: L2-normalised S_vat video embeddings ``[M, D]``; ``video_gt`` the correct video(s) of each frame
            (:func:`own_clip_videos` gives both).
        zero_shot: ``{task: (labels [N], {class: [prompts]})}``; task names become ``zs_<task>`` columns.
        modes: which of :data:`MODES` (``'calibrated'`` is dropped when the model has none).
        num_frames: T of the inflated reference (default: the config's).

    Returns:
        ``summary`` (DataFrame, one row per mode: ms per image, speed-up, mean cosines to the inflated embedding,
        i2t / i2v metrics, ``zs_<task>`` accuracies), ``compare`` (:func:`compare`'s result), ``zero_shot``
        (``{task: zero_shot_classify result}``), ``num_images``, ``num_texts``, ``skipped`` (``frames.skipped``).
    """
    result = compare(
        model,
        frames,
        texts=texts,
        text_gt=text_gt,
        video_bank=video_bank,
        video_gt=video_gt,
        video_space="vat",
        modes=available_modes(model, modes),
        num_frames=num_frames,
        batch_size=batch_size,
    )
    zs = {
        task: zero_shot_classify(model, labels, prompts, embeddings=result["embeddings"])
        for task, (labels, prompts) in zero_shot.items()
    }
    summary = result["summary"].copy()
    for task, res in zs.items():
        summary[f"zs_{task}"] = pd.Series(res["accuracy"])
    return {
        "summary": summary,
        "compare": result,
        "zero_shot": zs,
        "num_images": len(frames),
        "num_texts": len(texts),
        "skipped": frames.skipped,
    }


#: Columns of :func:`format_markdown` before and after the zero-shot ones, with their headers and formats.
_LEADING = (
    ("ms_per_image", "ms / image", "{:.2f}"),
    ("speedup", "speed-up", "{:.1f}x"),
    ("cos_repr", "cos repr", "{:.3f}"),
    ("cos_vat", "cos S_vat", "{:.3f}"),
)
_TRAILING = (
    ("i2t_r1", "i2t R@1", "{:.3f}"),
    ("i2t_r5", "i2t R@5", "{:.3f}"),
    ("i2v_r1", "i2v R@1", "{:.3f}"),
    ("i2v_r10", "i2v R@10", "{:.3f}"),
    ("i2v_medr", "i2v MedR", "{:.0f}"),
)


def format_markdown(summary: pd.DataFrame) -> str:
    """A report's summary as a Markdown table.

    Columns: time, speed-up, mean cosines, then every ``zs_<task>`` column in the summary's order (header
    ``zero-shot <task>``, ``_`` read as ``+``: ``zs_shape_colour`` -> "zero-shot shape+colour"), then retrieval.
    A column absent from the summary is left out; NaN is "—".
    """
    present = list(summary.columns)
    zs = [(c, "zero-shot " + c[3:].replace("_", "+"), "{:.3f}") for c in present if c.startswith("zs_")]
    cols = [c for c in _LEADING if c[0] in present] + zs + [c for c in _TRAILING if c[0] in present]
    lines = ["| mode | " + " | ".join(h for _, h, _ in cols) + " |", "|---|" + "---:|" * len(cols)]
    for mode, row in summary.iterrows():
        cells = ["—" if pd.isna(row[c]) else f.format(row[c]) for c, _, f in cols]
        lines.append(f"| {mode} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
