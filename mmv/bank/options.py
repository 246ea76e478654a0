"""The options of a bank build: one frozen :class:`BankOptions` that :func:`mmv.bank.build_bank` and
:func:`mmv.bank.write_bank` take whole, instead of the same 20 keywords listed in both and a third time in the
provenance.

Each field says, in its ``recorded`` metadata, which step of the build reads it and whether
``provenance.json`` ``parameters`` records it:

* ``"embed"``: what the vectors depend on (``build_bank`` records these);
* ``"write"``: what the indexes, maps and media depend on (``write_bank`` records these);
* ``None``: how fast and where the build runs, never what it writes (progress bars, worker counts, the audio
  cache), or, for ``checkpoint_path``, recorded on its own as ``provenance["checkpoint"]`` with its hash.

Two banks built with the same recorded parameters from the same model and manifest are identical.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

from mmv.bank.index import DEFAULT_EXACT_MAX, DEFAULT_TARGET_RECALL
from mmv.bank.previews import PREVIEW_SECONDS, THUMB_SIZE
from mmv.bank.project import DEFAULT_MAX_FIT_POINTS
from mmv.bank.project import umap_params as resolve_umap_params

if TYPE_CHECKING:
    import torch

#: The steps whose fields ``provenance.json`` ``parameters`` records (see :meth:`BankOptions.recorded`).
STEPS = ("embed", "write")


def _recorded(step: str | None, default: Any) -> Any:
    return field(default=default, metadata={"recorded": step})


@dataclass(frozen=True)
class BankOptions:
    """How to build a bank (module docstring: which fields the provenance records).

    Embedding (recorded):
        splits: keep only clips of these splits (``None`` or empty: every clip).
        num_windows: windows averaged per clip (>= 1).
        batch_size: windows per forward pass (>= 1).
        device: where the model runs.

    Writing (recorded):
        seed: UMAP's random state, the IVF sample and the recall queries.
        umap_params: overrides of :data:`mmv.bank.project.DEFAULT_UMAP_PARAMS` (recorded resolved, defaults filled).
        max_fit_points: most vectors UMAP fits per space (the rest are placed).
        exact_max: largest (space, modality) searched exactly (>= 1); above it an IVF index.
        target_recall: recall@10 an IVF index must reach when its ``nprobe`` is chosen.
        thumbnails: write a JPEG per clip with a video (``meta`` needs ``video_path``, ``start``, ``end``).
        previews: write (or link) a short MP4 per clip with a video.
        thumb_size: a thumbnail's longer side, pixels.
        preview_seconds: the longest preview, seconds.

    Running (not recorded: they change how long a build takes, never a byte of it):
        progress: show tqdm bars.
        num_workers: DataLoader processes decoding clips for the embedding.
        media_workers: threads writing thumbnails and previews.
        cache_dir: FLAC cache for container audio (default ``$MMV_CACHE_DIR/audio`` or ``~/.cache/mmv/audio``).

    Provenance (recorded apart, as ``checkpoint``):
        checkpoint_path: the checkpoint the model was loaded from (its ``model.safetensors`` is hashed), or
            ``None`` for a model that was never saved.

    Raises:
        ValueError: ``num_windows``, ``batch_size`` or ``exact_max`` below 1, or a bad ``umap_params`` key or
            value (caught here, before the long embedding).
    """

    splits: tuple[str, ...] | list[str] | None = _recorded("embed", None)
    num_windows: int = _recorded("embed", 1)
    batch_size: int = _recorded("embed", 32)
    device: str | torch.device = _recorded("embed", "cpu")
    seed: int = _recorded("write", 0)
    umap_params: Mapping[str, Any] | None = _recorded("write", None)
    max_fit_points: int = _recorded("write", DEFAULT_MAX_FIT_POINTS)
    exact_max: int = _recorded("write", DEFAULT_EXACT_MAX)
    target_recall: float = _recorded("write", DEFAULT_TARGET_RECALL)
    thumbnails: bool = _recorded("write", True)
    previews: bool = _recorded("write", True)
    thumb_size: int = _recorded("write", THUMB_SIZE)
    preview_seconds: float = _recorded("write", PREVIEW_SECONDS)
    progress: bool = _recorded(None, True)
    num_workers: int = _recorded(None, 0)
    media_workers: int = _recorded(None, 2)
    cache_dir: str | os.PathLike | None = _recorded(None, None)
    checkpoint_path: str | os.PathLike | None = _recorded(None, None)

    def __post_init__(self) -> None:
        if self.num_windows < 1 or self.batch_size < 1 or self.exact_max < 1:
            raise ValueError("BankOptions: num_windows, batch_size and exact_max must be >= 1")
        resolve_umap_params(self.umap_params)

    def recorded(self, step: str) -> dict[str, Any]:
        """The fields of ``step`` (one of :data:`STEPS`) as ``provenance.json`` ``parameters`` records them, in
        field order: JSON values (``splits`` a list or ``None``, ``device`` a string, ``umap_params`` resolved)."""
        if step not in STEPS:
            raise ValueError(f"BankOptions.recorded: unknown step {step!r} (choose from {STEPS})")
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.metadata["recorded"] == step}
        if "splits" in out:
            out["splits"] = list(self.splits) if self.splits else None
        if "device" in out:
            out["device"] = str(self.device)
        if "umap_params" in out:
            out["umap_params"] = resolve_umap_params(self.umap_params)
        return out


#: What :func:`mmv.bank.build_bank` uses when given no options.
DEFAULT_OPTIONS = BankOptions()
#: What :func:`mmv.bank.write_bank` uses when given no options: no thumbnails, previews or progress bar, since
#: on its own it mostly writes synthetic vectors whose clips have no media (tests, benchmarks).
NO_MEDIA = BankOptions(thumbnails=False, previews=False, progress=False)
