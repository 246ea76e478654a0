"""The batch collate of clip samples (:class:`mmv.data.dataset.ClipDataset`, :class:`mmv.data.mixed.MixedDataset`):
tensors stacked, skipped (``None``) samples dropped and counted."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from mmv.data.dataset import Sample


def _collate_labels(labels: list[dict[str, Any]]) -> dict[str, Any]:
    names = list(dict.fromkeys(name for d in labels for name in d))
    out: dict[str, Any] = {}
    for name in names:
        values = [d.get(name) for d in labels]
        if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            out[name] = torch.tensor(values, dtype=torch.int64)
        elif all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            out[name] = torch.tensor(values, dtype=torch.float64)
        else:
            out[name] = values
    return out


def collate_clips(samples: Sequence[Sample | None]) -> dict[str, Any]:
    """Batches samples of a ``ClipDataset`` (or a ``MixedDataset``), dropping ``None`` (skipped) ones.

    Tensors are stacked (``video`` uint8 ``[B, T, S, S, 3]``, ``audio`` ``[B, N]``, ``text`` ``[B, K, L]``,
    ``text_mask`` ``[B, K]``, ``color_params`` ``[B, 4]``), bools become bool ``[B]``, ints int64 ``[B]``
    (``index``, ``window``, ``source``), ``start`` float64 ``[B]``, strings lists; ``labels`` becomes
    ``{name: int64/float64 [B] tensor}`` for numeric labels and ``{name: list}`` otherwise (``None`` where a
    sample lacks it). ``num_skipped`` is the number of ``None`` entries. A batch in which every sample was
    skipped holds only ``num_skipped`` and an empty ``clip_id`` list: check ``len(batch["clip_id"])``.
    """
    kept = [s for s in samples if s is not None]
    batch: dict[str, Any] = {"num_skipped": len(samples) - len(kept)}
    if not kept:
        batch["clip_id"] = []
        return batch
    keys = list(kept[0])
    for s in kept[1:]:
        if list(s) != keys:
            raise KeyError(f"collate_clips: samples have different keys: {keys} vs {list(s)}")
    for key in keys:
        values = [s[key] for s in kept]
        first = values[0]
        if key == "labels":
            batch[key] = _collate_labels(values)
        elif isinstance(first, torch.Tensor):
            batch[key] = torch.stack(values)
        elif isinstance(first, bool):
            batch[key] = torch.tensor(values, dtype=torch.bool)
        elif isinstance(first, int):
            batch[key] = torch.tensor(values, dtype=torch.int64)
        elif isinstance(first, float):
            batch[key] = torch.tensor(values, dtype=torch.float64)
        else:
            batch[key] = values
    return batch


# ---------------------------------------------------------------------------------------------------
