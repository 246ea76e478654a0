"""What every consumer of a trained model shares when it embeds: eval mode, sentences -> S_vat, clips -> vectors.

The bank, the evaluation, deflation's comparisons and the app all embed outside training. Each needs BatchNorm's
running statistics (eval mode) without leaving the model in a different mode than it found it, the text ones need
the same "sentence -> unit S_vat vector" step, and the clip ones the same "dataset -> one vector per clip and
space" step (:func:`embed_manifest`, on the clips :func:`eval_clips` reads); all of it lives here once, so a
vector is the same whichever consumer asked for it.

**Clip embeddings** (``shared/mmv_spec.md`` sections 7.3 and 8.5-8.7): each clip is embedded in eval mode
(BatchNorm with running statistics, and FAC's audio -> S_vat path switched on); each modality's embeddings are
*averaged over the clip's windows and then L2-normalised*, so a dot product is a cosine similarity. Text is the
exception in the averaging: each valid caption of a window's bag is normalised first, the normalised captions are
averaged over the bag and the windows, and the mean is normalised again (a long caption with a large raw norm does
not outweigh the others). Representations (``*_repr``, the linear-probe feature) are averaged and left as they are.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

if TYPE_CHECKING:
    from mmv.models.mmv import MMV
    from mmv.tokenizer import Vocabulary

#: Captions per window in a clip's narration bag, for evaluation and the bank alike (every toy-world clip has at
#: most 6).
NARRATION_CAPTIONS = 8

#: Every embedding :func:`embed_manifest` can return, named ``<modality>_<output>`` after the ``encode_*`` dicts of
#: :class:`mmv.models.mmv.MMV`. The spaces (``va``, ``vat``, ``at``) are averaged over windows and L2-normalised;
#: the representations (``repr``: the backbone output before any head, the linear-probe feature) are averaged
#: and left as they are.
EMBEDDING_KEYS = (
    "video_repr",
    "video_va",
    "video_vat",
    "audio_repr",
    "audio_va",
    "audio_vat",
    "audio_at",
    "text_vat",
    "text_at",
    "image_repr",
    "image_va",
    "image_vat",
)
_SPACES = ("va", "vat", "at")


@contextmanager
def eval_mode(module: nn.Module) -> Iterator[nn.Module]:
    """Puts ``module`` in eval mode for the block and restores its previous mode after, even on an error."""
    was_training = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(was_training)


@torch.no_grad()
def embed_sentences(
    model: MMV, sentences: Sequence[str], vocab: Vocabulary | None = None, space: str = "vat"
) -> torch.Tensor:
    """Unit-length text embeddings ``[len(sentences), D]`` (float32, on the CPU) in ``space``.

    Args:
        model: a model with a text tower.
        sentences: plain sentences, tokenized with the model's text settings (``max_words``, stop words).
        vocab: the vocabulary to tokenize with (default: the model's own).
        space: the text output to take (``'vat'``; ``'at'`` for the disjoint graph's audio-text space).

    The normalisation runs in float64, so a vector is the same whichever consumer asked for it.
    """
    vocab = vocab if vocab is not None else model.vocab
    if vocab is None:
        raise ValueError("embed_sentences: the model has no vocabulary and none was given")
    cfg = model.config.text
    device = next(model.text.parameters()).device
    ids = vocab.encode_batch(list(sentences), cfg.max_words, cfg.remove_stop_words).to(device)
    with eval_mode(model):
        emb = model.encode_text(ids)[space]
    return F.normalize(emb.detach().to("cpu", torch.float64), dim=-1).to(torch.float32)


def encode_images(model: MMV, images: torch.Tensor, mode: str = "auto") -> dict[str, torch.Tensor]:
    """``model.encode_image(images, mode=mode)`` on ``[B, H, W, 3]`` images (uint8, or float in [0, 1]).

    ``mode`` is :meth:`mmv.models.mmv.MMV.encode_image`'s: ``'auto'`` (the recalibrated deflated tower when one
    is attached, else naive deflation), ``'calibrated'``, ``'naive'``, or ``'inflated'`` (the image repeated as
    a static video through the video network, the reference deflation is measured against).

    Raises:
        ValueError: the model has no ``encode_image``: images need the deflated video network
            (``shared/mmv_spec.md`` section 6), which this model was not given.
    """
    return model.encode_image(images, mode=mode)


def eval_clips(
    model: MMV,
    manifest: pd.DataFrame,
    *,
    vocab: Vocabulary | None = None,
    num_windows: int = 1,
    num_captions: int = NARRATION_CAPTIONS,
    video: bool = True,
    cache_dir: Any = None,
) -> Any:
    """The evaluation's :class:`~mmv.data.dataset.ClipDataset` of a manifest for a model (``'eval'`` mode).

    Every modality the model has is read (video only when ``video``); text only when the model has a text tower
    and a vocabulary (``vocab``, else ``model.vocab``): then each window carries its ``num_captions`` nearest
    captions (the narration bag). The evaluation and the embedding bank both embed clips through this one
    dataset, so their vectors agree. ``dataset.vocab is None`` says that text is not read.
    """
    from mmv.data.dataset import ClipDataset

    cfg = model.config
    mods = set(cfg.modalities)
    vocab = vocab if vocab is not None else model.vocab
    text = "text" in mods and vocab is not None
    return ClipDataset(
        manifest,
        video_cfg=cfg.video if "video" in mods and video else None,
        audio_cfg=cfg.audio if "audio" in mods else None,
        vocab=vocab if text else None,
        text_cfg=cfg.text if text else None,
        num_captions=num_captions,
        mode="eval",
        num_windows=num_windows,
        cache_dir=cache_dir,
    )


# ---------------------------------------------------------------------------------------------------
# embed_manifest and its parts
# ---------------------------------------------------------------------------------------------------


class _RowSums:
    """Per-row float64 sums of one embedding and their weights, rows given by the batch's ``index``."""

    def __init__(self) -> None:
        self.parts: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []

    def add(self, rows: torch.Tensor, values: torch.Tensor, weights: torch.Tensor | None = None) -> None:
        """``rows`` int64 ``[B]``, ``values`` ``[B, D]``, ``weights`` ``[B]`` (default 1 each)."""
        w = torch.ones(len(rows), dtype=torch.float64) if weights is None else weights.to(torch.float64).cpu()
        self.parts.append((rows.cpu(), values.detach().to("cpu", torch.float64), w))

    def mean(self, num_rows: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``([num_rows, D] mean, [num_rows] total weight)``; rows with no weight are zero."""
        dim = self.parts[0][1].shape[1]
        total = torch.zeros(num_rows, dim, dtype=torch.float64)
        count = torch.zeros(num_rows, dtype=torch.float64)
        for rows, values, w in self.parts:
            total.index_add_(0, rows, values * w[:, None])
            count.index_add_(0, rows, w)
        return total / count.clamp_min(1e-12)[:, None], count


@dataclass
class _Collected:
    """What :func:`embed_manifest` gathers over the batches: the wanted keys, their sums, and per-row facts."""

    wanted: frozenset[str]
    sums: dict[str, _RowSums] = field(default_factory=dict)
    meta: dict[int, dict[str, Any]] = field(default_factory=dict)
    windows: dict[int, int] = field(default_factory=dict)

    def needs(self, modality: str) -> bool:
        """Whether any wanted key belongs to ``modality`` (a tower nothing needs is not run)."""
        return any(k.startswith(modality + "_") for k in self.wanted)

    def add(self, key: str, rows: torch.Tensor, values: torch.Tensor, weights: torch.Tensor | None = None) -> None:
        self.sums.setdefault(key, _RowSums()).add(rows, values, weights)

    def add_outputs(self, modality: str, out: dict[str, torch.Tensor], rows: torch.Tensor) -> None:
        """Adds the wanted ``repr`` / space outputs of one ``encode_*`` call (``[B, D]`` each)."""
        for name in ("repr", *_SPACES):
            if name in out and f"{modality}_{name}" in self.wanted:
                self.add(f"{modality}_{name}", rows, out[name])

    def add_clips(self, batch: dict[str, Any], rows: torch.Tensor) -> None:
        """Counts each item's window and records each row's clip id, labels and audio flag once."""
        labels = batch.get("labels", {})
        for b, row in enumerate(rows.tolist()):
            self.windows[row] = self.windows.get(row, 0) + 1
            if row not in self.meta:
                self.meta[row] = {
                    "clip_id": batch["clip_id"][b],
                    "labels": {k: (v[b].item() if isinstance(v, torch.Tensor) else v[b]) for k, v in labels.items()},
                    "has_audio": bool(batch["has_audio"][b]) if "has_audio" in batch else False,
                }


def _wanted(outputs: Collection[str] | None) -> frozenset[str]:
    """The keys to compute: ``outputs``, or every space embedding when ``None``."""
    if outputs is None:
        return frozenset(k for k in EMBEDDING_KEYS if k.split("_", 1)[1] in _SPACES)
    unknown = set(outputs) - set(EMBEDDING_KEYS)
    if unknown:
        raise ValueError(f"outputs: unknown {sorted(unknown)}; choose from {EMBEDDING_KEYS}")
    return frozenset(outputs)


def _batches(
    data: Any, num_windows: int | None, batch_size: int, num_workers: int, progress: bool
) -> tuple[Iterable[dict[str, Any]], int | None]:
    """``(batches, windows expected per clip)`` of a dataset (checked against ``num_windows``) or a DataLoader."""
    if isinstance(data, DataLoader):
        loader: Iterable[dict[str, Any]] = data
    else:
        from mmv.data.collate import collate_clips

        has = getattr(data, "num_windows", num_windows)
        if num_windows is not None and has != num_windows:
            raise ValueError(f"num_windows={num_windows} but the dataset has {has} windows per clip")
        num_windows = has
        loader = DataLoader(
            data, batch_size=batch_size, shuffle=False, num_workers=num_workers, collate_fn=collate_clips
        )
    if progress:
        from tqdm import tqdm

        loader = tqdm(loader, desc="embedding", unit="batch", dynamic_ncols=True)
    return loader, num_windows


def _add_text(model: MMV, batch: dict[str, Any], rows: torch.Tensor, device: Any, got: _Collected) -> None:
    """Adds a batch's caption bags: ``text`` ``[B, K, L]`` (or ``[B, L]``) with ``text_mask`` ``[B, K]``.

    Each valid caption is normalised; a row's sum of them is added with the count of valid captions as weight,
    so the mean over windows is the mean over every valid caption of the clip."""
    text = batch["text"].to(device)
    if text.dim() == 2:
        text = text[:, None]
    mask = batch.get("text_mask")
    mask = torch.ones(text.shape[:2], dtype=torch.bool) if mask is None else mask.bool().cpu()
    out = model.encode_text(text)
    for space in ("vat", "at"):
        if space in out and f"text_{space}" in got.wanted:
            emb = F.normalize(out[space].detach().to("cpu", torch.float64), dim=-1) * mask[..., None]
            got.add(f"text_{space}", rows, emb.sum(dim=1), mask.sum(dim=1))


def _add_batch(model: MMV, batch: dict[str, Any], device: Any, image_mode: str, got: _Collected) -> None:
    """Runs every tower the batch has data for, the model has, and a wanted key needs; adds the outputs."""
    rows = batch["index"].to(torch.int64)
    got.add_clips(batch, rows)
    modalities = set(model.modalities)
    if "video" in batch and "video" in modalities and got.needs("video"):
        got.add_outputs("video", model.encode_video(batch["video"].to(device)), rows)
    if "audio" in batch and "audio" in modalities and got.needs("audio"):
        got.add_outputs("audio", model.encode_audio(batch["audio"].to(device)), rows)
    if "image" in batch and "video" in modalities and got.needs("image"):
        got.add_outputs("image", encode_images(model, batch["image"].to(device), image_mode), rows)
    if "text" in batch and "text" in modalities and got.needs("text"):
        _add_text(model, batch, rows, device, got)


def _result(got: _Collected, num_windows: int | None) -> dict[str, Any]:
    """:func:`embed_manifest`'s dict from the gathered sums: one row per clip seen, rows in increasing order."""
    if not got.meta:
        raise ValueError("embed_manifest: the data yielded no clip")
    index = torch.tensor(sorted(got.meta), dtype=torch.int64)
    rows = index.tolist()
    meta = [got.meta[r] for r in rows]
    result: dict[str, Any] = {
        "index": index,
        "clip_id": [m["clip_id"] for m in meta],
        "num_windows": torch.tensor([got.windows[r] for r in rows], dtype=torch.int64),
        "has_audio": torch.tensor([m["has_audio"] for m in meta], dtype=torch.bool),
    }
    names = list(dict.fromkeys(k for m in meta for k in m["labels"]))
    result["labels"] = {k: [m["labels"].get(k) for m in meta] for k in names}
    for key, sums in got.sums.items():
        mean, count = sums.mean(int(index.max()) + 1)
        if key.endswith("_repr"):
            result[key] = mean[index].to(torch.float32)
        else:
            result[key] = F.normalize(mean[index], dim=-1).to(torch.float32)  # zero rows stay zero
        if key.startswith(("text_", "image_")):
            result[f"has_{key.split('_', 1)[0]}"] = count[index] > 0
    if "has_text" not in result:
        result["has_text"] = torch.zeros(len(index), dtype=torch.bool)
    if num_windows is not None and bool((result["num_windows"] > num_windows).any()):
        raise ValueError(f"embed_manifest: some clip has more than num_windows={num_windows} windows in the data")
    return result


@torch.no_grad()
def embed_manifest(
    model: MMV,
    dataset_or_loader: Any,
    device: str | torch.device = "cpu",
    num_windows: int | None = None,
    *,
    batch_size: int = 32,
    num_workers: int = 0,
    outputs: Collection[str] | None = None,
    image_mode: str = "auto",
    progress: bool = False,
) -> dict[str, Any]:
    """Embeds every clip of a dataset in every space its model has, averaging over evaluation windows.

    The model runs in eval mode (restored afterwards), each embedding averaged and normalised as the module
    docstring says (text: per caption first). Items holding ``image`` (``[H, W, 3]``) go through
    ``model.encode_image`` (:func:`encode_images`).

    Args:
        model: the model, already on ``device``.
        dataset_or_loader: a :class:`mmv.data.dataset.ClipDataset` in ``'eval'`` mode (item ``i`` is window
            ``i % num_windows`` of row ``i // num_windows``; :func:`eval_clips`), or a DataLoader yielding
            :func:`collate_clips` batches of such items (``index`` = row, ``window``).
        device: where the model runs.
        num_windows: windows per clip the data is expected to hold (``None``: the dataset's, or no check for a
            loader). A clip whose windows were skipped (unreadable media) is averaged over the ones read and
            reported in ``num_windows``; a clip with none is left out.
        batch_size, num_workers: the DataLoader's, when a dataset is given.
        outputs: the keys of :data:`EMBEDDING_KEYS` to compute (towers no key needs are not run); ``None``:
            every space embedding (``*_va``, ``*_vat``, ``*_at``) the model and the data have, no ``*_repr``.
        image_mode: how images are embedded (:func:`encode_images`).
        progress: show a tqdm bar over the batches.

    Returns:
        ``index`` (int64 ``[M]``, dataset rows, increasing), ``clip_id`` (list), ``labels`` (``{name: list}``),
        ``num_windows`` (int64 ``[M]``, windows read per clip), ``has_audio`` / ``has_text`` (bool ``[M]``),
        and float32 ``[M, D]`` embeddings named as in :data:`EMBEDDING_KEYS`, each present when asked for and
        the model and the data have that modality and space: L2-normalised ``video_va``, ``video_vat``,
        ``audio_va``, ``audio_vat`` (FAC: through the video's va->vat head), ``audio_at`` (disjoint graph with
        ``use_audio_text``), ``text_vat`` / ``text_at`` (zero rows where ``has_text`` is False), ``image_*``
        (then also ``has_image``); unnormalised ``*_repr``.
    """
    got = _Collected(_wanted(outputs))
    loader, num_windows = _batches(dataset_or_loader, num_windows, batch_size, num_workers, progress)
    with eval_mode(model):
        for batch in loader:
            if len(batch.get("clip_id", [])):
                _add_batch(model, batch, device, image_mode, got)
    return _result(got, num_windows)
