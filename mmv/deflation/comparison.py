"""Inflated vs naive vs calibrated image embeddings: agreement, retrieval, zero-shot classification, speed.

Three ways to embed a still image with a video model (:data:`MODES`):

* ``inflated``: the image repeated T times as a static video through the video tower (the reference; T costs);
* ``naive``: the deflated tower with the video network's BN gamma/beta;
* ``calibrated``: the deflated tower with recalibrated gamma/beta (only when the model has one attached).

:func:`compare` embeds a set of images all three ways and reports, per mode, the cosine of each deflated
embedding to the inflated one (per image and mean, in ``repr`` and every embedding space), image -> text and
image -> video retrieval metrics when texts / a video bank are given, and the time per image.
:func:`zero_shot_classify` classifies images by their nearest class prompt in S_vat, with the prompts handed
in (a dataset's own: the toy world's are :func:`mmv.toyworld.deflation_report.toyworld_prompts`). The app and
``training.evaluate`` call these; :mod:`mmv.deflation.report` assembles them into the report
``python -m training.deflate --report`` prints for a checkpoint.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from mmv.deflation.images import ImageSet
from mmv.deflation.networks import inflate
from mmv.embed import embed_sentences, eval_mode
from mmv.eval.ranking import retrieval_metrics

if TYPE_CHECKING:
    from mmv.models.mmv import MMV

MODES = ("inflated", "naive", "calibrated")
SPACES = ("repr", "va", "vat")


def _images(images: torch.Tensor | ImageSet) -> torch.Tensor:
    x = images.images if isinstance(images, ImageSet) else images
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[-1] != 3 or len(x) == 0:
        raise ValueError(f"expected a non-empty [N, H, W, 3] image tensor, got {getattr(x, 'shape', type(x))}")
    return x


def available_modes(model: MMV, modes: Sequence[str] = MODES) -> list[str]:
    """``modes`` without ``'calibrated'`` when the model has no calibrated tower attached."""
    bad = [m for m in modes if m not in MODES]
    if bad:
        raise ValueError(f"unknown mode(s) {bad}; choose from {MODES}")
    return [m for m in modes if m != "calibrated" or model.calibrated_deflation is not None]


@torch.no_grad()
def embed_images(
    model: MMV,
    images: torch.Tensor | ImageSet,
    mode: str,
    *,
    num_frames: int | None = None,
    batch_size: int = 32,
) -> tuple[dict[str, torch.Tensor], float]:
    """Embeds images one way, timing it.

    Args:
        model: an :class:`~mmv.models.mmv.MMV` (run in eval mode, mode restored after).
        images: ``[N, H, W, 3]`` uint8 or float in [0, 1], or an :class:`ImageSet`.
        mode: one of :data:`MODES`.
        num_frames: T of the inflated clip (default ``model.config.video.num_frames``).
        batch_size: images per forward pass.

    Returns:
        ``({space: float32 [N, D]} on the CPU, seconds per image)``; ``repr`` is the raw representation, the
        embeddings (``va``, ``vat``) are L2-normalised. The time covers preprocessing, the tower and the heads
        (with a CUDA synchronisation), not the copy back to the CPU.
    """
    x_all = _images(images)
    if mode not in MODES:
        raise ValueError(f"embed_images: mode must be one of {MODES}, got {mode!r}")
    t = int(num_frames or model.config.video.num_frames)
    ref = next(model.video.parameters())
    parts: dict[str, list[torch.Tensor]] = {}
    elapsed = 0.0
    with eval_mode(model):
        tower = None if mode == "inflated" else model.image_backbone(mode)
        for i in range(0, len(x_all), batch_size):
            x = x_all[i : i + batch_size].to(ref.device)
            start = time.perf_counter()
            x = x.to(ref.dtype).div_(255.0) if x.dtype == torch.uint8 else x.to(ref.dtype)
            rep = model.video(inflate(x, t)) if tower is None else tower(x)
            out = model._video_heads(rep)
            if ref.device.type == "cuda":
                torch.cuda.synchronize(ref.device)
            elapsed += time.perf_counter() - start
            for space, value in out.items():
                value = value.float()
                parts.setdefault(space, []).append((value if space == "repr" else F.normalize(value, dim=-1)).cpu())
    return {k: torch.cat(v) for k, v in parts.items()}, elapsed / len(x_all)


def compare(
    model: MMV,
    images: torch.Tensor | ImageSet,
    *,
    texts: Sequence[str] | None = None,
    text_gt: Any = None,
    video_bank: torch.Tensor | None = None,
    video_gt: Any = None,
    video_space: str = "vat",
    modes: Sequence[str] = MODES,
    num_frames: int | None = None,
    batch_size: int = 32,
) -> dict[str, Any]:
    """Inflated, naive and calibrated embeddings of ``images`` side by side.

    Args:
        model: an :class:`~mmv.models.mmv.MMV` with a video tower.
        images: ``[N, H, W, 3]`` (uint8 or float in [0, 1]) or an :class:`ImageSet`.
        texts: candidate sentences for image -> text retrieval in S_vat (needs a text tower and vocabulary).
        text_gt: the correct sentence(s) of each image: int ``[N]``, ``N`` sets, or a bool ``[N, len(texts)]``
            (:func:`mmv.eval.ranking.retrieval_metrics`).
        video_bank: L2-normalised video embeddings ``[M, D]`` in ``video_space`` for image -> video retrieval.
        video_gt: the correct video(s) of each image, in the same forms as ``text_gt``.
        video_space: ``'vat'`` (default) or ``'va'``: the space of ``video_bank``.
        modes: which of :data:`MODES` to run (``'calibrated'`` is dropped when the model has none).
        num_frames: T of the inflated reference (default: the config's).
        batch_size: images per forward pass.

    Returns:
        ``embeddings`` ``{mode: {space: [N, D]}}``; ``seconds_per_image`` ``{mode: float}``; ``cosine``
        ``{mode: {space: float64 [N]}}`` (each deflated mode against ``inflated``); ``i2t`` / ``i2v``
        ``{mode: metrics}`` when asked; and ``summary``, a DataFrame with one row per mode: ``ms_per_image``,
        ``speedup`` (inflated time / this mode's), ``cos_<space>`` means, ``i2t_r1`` ... ``i2v_medr``.
    """
    modes = available_modes(model, modes)
    if (texts is None) != (text_gt is None) or (video_bank is None) != (video_gt is None):
        raise ValueError("compare: give texts with text_gt, and video_bank with video_gt")
    if video_space not in ("va", "vat"):
        raise ValueError(f"compare: video_space must be 'va' or 'vat', got {video_space!r}")
    emb: dict[str, dict[str, torch.Tensor]] = {}
    seconds: dict[str, float] = {}
    for mode in modes:
        emb[mode], seconds[mode] = embed_images(model, images, mode, num_frames=num_frames, batch_size=batch_size)
    cosine = _cosines(emb)
    result: dict[str, Any] = {"embeddings": emb, "seconds_per_image": seconds, "cosine": cosine, "i2t": {}, "i2v": {}}
    text_emb = embed_sentences(model, texts) if texts is not None else None
    for mode in modes:
        if text_emb is not None:
            result["i2t"][mode] = retrieval_metrics(emb[mode]["vat"] @ text_emb.T, text_gt)
        if video_bank is not None:
            bank = F.normalize(video_bank.float().cpu(), dim=-1)
            result["i2v"][mode] = retrieval_metrics(emb[mode][video_space] @ bank.T, video_gt)
    result["summary"] = _summary(result, modes)
    return result


def _cosines(emb: dict[str, dict[str, torch.Tensor]]) -> dict[str, dict[str, torch.Tensor]]:
    """``{mode: {space: float64 [N]}}``: each deflated mode's per-image cosine to the inflated embedding (the
    reference); empty when ``inflated`` was not run."""
    if "inflated" not in emb:
        return {}
    ref = emb["inflated"]
    return {
        mode: {s: F.cosine_similarity(e[s].double(), ref[s].double(), dim=-1) for s in SPACES if s in e}
        for mode, e in emb.items()
        if mode != "inflated"
    }


def _summary(result: dict[str, Any], modes: list[str]) -> pd.DataFrame:
    rows = []
    base = result["seconds_per_image"].get("inflated")
    for mode in modes:
        sec = result["seconds_per_image"][mode]
        row: dict[str, Any] = {"mode": mode, "ms_per_image": 1e3 * sec, "speedup": (base / sec) if base else np.nan}
        for space, cos in result["cosine"].get(mode, {}).items():
            row[f"cos_{space}"] = float(cos.mean())
        for task in ("i2t", "i2v"):
            for k in ("r1", "r5", "r10", "medr"):
                if mode in result[task]:
                    row[f"{task}_{k}"] = result[task][mode][k]
        rows.append(row)
    return pd.DataFrame(rows).set_index("mode")


def zero_shot_classify(
    model: MMV,
    labels: Sequence[Any],
    class_prompts: Mapping[Any, Sequence[str]],
    *,
    images: torch.Tensor | ImageSet | None = None,
    embeddings: Mapping[str, Mapping[str, torch.Tensor]] | None = None,
    modes: Sequence[str] = MODES,
    num_frames: int | None = None,
    batch_size: int = 32,
) -> dict[str, Any]:
    """Classifies each image as the class whose prompts are nearest in S_vat (CLIP-style prompt ensembles).

    A class embedding is the mean of its prompts' L2-normalised S_vat embeddings, normalised again; an image's
    prediction is the class of highest cosine (ties: the first class).

    Args:
        model: an :class:`~mmv.models.mmv.MMV` with video and text towers and a vocabulary.
        labels: the true class of each image (``[N]``, keys of ``class_prompts``).
        class_prompts: ``{class: [sentences]}``.
        images: the images, unless ``embeddings`` (``compare()['embeddings']``) already holds their ``vat``.
        modes: which of :data:`MODES` to evaluate.

    Returns:
        ``classes`` (list), ``chance`` (1 / number of classes), ``accuracy`` ``{mode: float}``,
        ``per_class`` ``{mode: {class: accuracy}}``, ``predictions`` ``{mode: [N] classes}``.
    """
    classes = list(class_prompts)
    y = np.asarray([classes.index(v) if v in class_prompts else -1 for v in labels])
    if (y < 0).any():
        raise ValueError(f"zero_shot_classify: labels {sorted(set(np.asarray(labels)[y < 0]))} have no prompts")
    if embeddings is None:
        if images is None:
            raise ValueError("zero_shot_classify: give images or embeddings")
        embeddings = {
            m: embed_images(model, images, m, num_frames=num_frames, batch_size=batch_size)[0]
            for m in available_modes(model, modes)
        }
    prompts = [torch.mean(embed_sentences(model, class_prompts[c]), dim=0) for c in classes]
    centres = F.normalize(torch.stack(prompts), dim=-1)  # [C, D]
    out: dict[str, Any] = {"classes": classes, "chance": 1.0 / len(classes), "accuracy": {}, "per_class": {}}
    out["predictions"] = {}
    for mode in modes:
        if mode not in embeddings:
            continue
        pred = (embeddings[mode]["vat"] @ centres.T).argmax(dim=1).numpy()
        if len(pred) != len(y):
            raise ValueError(f"zero_shot_classify: {len(y)} labels for {len(pred)} images")
        out["accuracy"][mode] = float(np.mean(pred == y))
        out["per_class"][mode] = {c: float(np.mean(pred[y == i] == i)) for i, c in enumerate(classes) if (y == i).any()}
        out["predictions"][mode] = [classes[i] for i in pred]
    return out
