"""The training data of a recipe: manifests, vocabulary, datasets, a resumable sampler, and the loader.

Data order is a pure function of ``(seed, epoch, position)``: the sampler is a ``DistributedSampler``
(shuffled per ``seed + epoch``, the same code at world size 1), every item draws its window and augmentation
from ``(seed, epoch, index)`` (:class:`mmv.data.dataset.ClipDataset`), and :class:`ResumableSampler` starts an
epoch ``skip`` samples in. A resumed run therefore sees exactly the batches the interrupted one would have,
with any number of loader workers.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from mmv.config import MMVConfig
from mmv.data.collate import collate_clips
from mmv.data.dataset import ClipDataset, SkipCounter, merged_bad_samples
from mmv.data.manifest import load_manifest
from mmv.data.memory_cache import CachedClipDataset
from mmv.data.mixed import MixedDataset
from mmv.data.transforms import TrainVideoTransform
from mmv.tokenizer import Vocabulary
from training.config import Config, DataSource

logger = logging.getLogger(__name__)

SKIPS_DIR = "skips"


def load_sources(sources: Sequence[DataSource]) -> list[pd.DataFrame]:
    """Each source's manifest, filtered to its split."""
    if not sources:
        raise ValueError("config data.train: no training manifest given")
    frames = []
    for i, source in enumerate(sources):
        df = load_manifest(source.manifest)
        if source.split is not None:
            df = df[df["split"] == source.split].reset_index(drop=True)
        if df.empty:
            raise ValueError(f"config data.train.{i}: {source.manifest} has no rows of split {source.split!r}")
        frames.append(df)
    return frames


def build_vocabulary(frames: Sequence[pd.DataFrame], cfg: Config, remove_stop_words: bool) -> Vocabulary:
    """A vocabulary of the training captions (``Vocabulary.build``: by count, then alphabetically).

    Used when the model has no pretrained word vectors (the toy world; the paper loads word2vec instead).
    """
    captions = (c["text"] for df in frames for caps in df["captions"] for c in caps)
    return Vocabulary.build(
        captions,
        min_count=cfg.data.vocab_min_count,
        max_size=cfg.data.vocab_max_size,
        remove_stop_words=remove_stop_words,
    )


def narration_vectors(frames: Sequence[pd.DataFrame], vocab: Vocabulary, dim: int, remove_stop_words: bool):
    """``[len(vocab), dim]`` word vectors from the training narrations, one document per clip.

    Used for ``data.narration_word_vectors`` (:mod:`mmv.narration_vectors`: text only, no labels).
    """
    from mmv.narration_vectors import narration_word_vectors

    documents = ([c["text"] for c in caps] for df in frames for caps in df["captions"])
    return narration_word_vectors(documents, vocab, dim, remove_stop_words=remove_stop_words)


def train_transform(cfg: Config, frame_size: int) -> TrainVideoTransform:
    d = cfg.data
    return TrainVideoTransform(
        frame_size,
        scale=(d.crop_scale[0], d.crop_scale[1]),
        flip_prob=d.flip_prob,
        color_prob=d.color_prob,
        jitter_prob=d.jitter_prob,
        color_in_loader=not d.color_on_device,
    )


def build_train_dataset(
    frames: Sequence[pd.DataFrame],
    cfg: Config,
    model_cfg: MMVConfig,
    vocab: Vocabulary | None,
    skips: SkipCounter,
) -> Dataset:
    """One :class:`ClipDataset` per source (mixed by proportion with :class:`MixedDataset` when several).

    With ``data.in_memory`` each source is a :class:`CachedClipDataset`: decoded once here (``num_workers``
    processes), then every window is cut from RAM with the same sampling and transforms.

    Every part encodes the modalities the model has; all parts share ``skips``, the run's skip counter.
    """
    mods = model_cfg.modalities
    parts = []
    d = cfg.data
    if d.in_memory:
        extra = {
            "cache_frame_size": d.cache_frame_size,
            "cache_workers": d.num_workers,
            "max_bytes": int(d.cache_max_gib * 2**30),
            "progress": True,
        }
        dataset_cls: type[ClipDataset] = CachedClipDataset
    else:
        extra, dataset_cls = {}, ClipDataset
    for df in frames:
        parts.append(
            dataset_cls(
                df,
                video_cfg=model_cfg.video if "video" in mods else None,
                audio_cfg=model_cfg.audio if "audio" in mods else None,
                vocab=vocab if "text" in mods else None,
                text_cfg=model_cfg.text if "text" in mods and vocab is not None else None,
                num_captions=cfg.data.num_captions,
                mode="train",
                transform=train_transform(cfg, model_cfg.video.frame_size) if "video" in mods else None,
                seed=cfg.seed,
                cache_dir=cfg.data.cache_dir,
                skip_counter=skips,
                **extra,
            )
        )
    if len(parts) == 1:
        return parts[0]
    length = cfg.data.epoch_length or sum(len(p) for p in parts)
    return MixedDataset([(p, s.proportion) for p, s in zip(parts, cfg.data.train)], length=length, seed=cfg.seed)


class ResumableSampler(Sampler[int]):
    """A ``DistributedSampler`` whose epoch can start ``skip`` samples in (this rank's samples).

    ``set_epoch(e, skip)`` selects the epoch's permutation and how many of this rank's indices to drop from
    its start; the next epoch starts at 0 again unless told otherwise.
    """

    def __init__(self, sampler: DistributedSampler) -> None:
        self.sampler = sampler
        self.skip = 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        self.sampler.set_epoch(epoch)
        self.skip = int(skip)

    def __iter__(self) -> Iterator[int]:
        it = iter(self.sampler)
        for _ in range(self.skip):
            next(it)
        yield from it

    def __len__(self) -> int:
        return len(self.sampler) - self.skip


def set_dataset_epoch(dataset: Dataset, epoch: int) -> None:
    if hasattr(dataset, "set_epoch"):
        dataset.set_epoch(epoch)


def build_loader(dataset: Dataset, cfg: Config, rank: int, world_size: int, pin_memory: bool) -> DataLoader:
    """The training loader: this rank's shard, ``batch_size`` clips per batch, the last partial batch dropped.

    Workers are persistent (``set_epoch`` reaches them through shared memory), and the loader has its own
    ``torch.Generator``, so creating an iterator never consumes the global RNG.
    """
    base = DistributedSampler(dataset, num_replicas=world_size, rank=rank, shuffle=True, seed=cfg.seed, drop_last=True)
    if len(base) < cfg.data.batch_size:
        raise ValueError(
            f"data.batch_size {cfg.data.batch_size} is larger than this rank's share of the data ({len(base)} clips)"
        )
    workers = cfg.data.num_workers
    kwargs: dict[str, Any] = {}
    if workers > 0:
        kwargs = {"persistent_workers": True, "prefetch_factor": cfg.data.prefetch_factor}
    return DataLoader(
        dataset,
        batch_size=cfg.data.batch_size,
        sampler=ResumableSampler(base),
        num_workers=workers,
        collate_fn=collate_clips,
        pin_memory=pin_memory,
        drop_last=True,
        generator=torch.Generator().manual_seed(cfg.seed),
        **kwargs,
    )


def batches_per_epoch(loader: DataLoader) -> int:
    """Full batches in one epoch of this rank's shard (the same on every rank)."""
    return len(loader.sampler.sampler) // loader.batch_size


class RunSkips:
    """The run's count of samples skipped for unreadable media, in ``<run_dir>/skips/rank_<r>/``.

    Each rank records into its own :class:`SkipCounter` directory (its loader workers each append to a file of
    their own, so process ids never collide across nodes); :attr:`count` and :meth:`bad_samples` read every
    rank's (rank 0 reports them). Counts accumulate over resumes: the steps replayed after a checkpoint count
    their skips again.
    """

    def __init__(self, run_dir: str | os.PathLike, rank: int) -> None:
        self.root = Path(run_dir) / SKIPS_DIR
        self.counter = SkipCounter(self.root / f"rank_{rank}")

    @staticmethod
    def clear(run_dir: str | os.PathLike) -> None:
        """Forgets the skips of an earlier run in this directory (rank 0, before any rank counts)."""
        shutil.rmtree(Path(run_dir) / SKIPS_DIR, ignore_errors=True)

    def _counters(self) -> list[SkipCounter]:
        return [SkipCounter(d) for d in sorted(self.root.glob("rank_*")) if d.is_dir()]

    @property
    def count(self) -> int:
        """Skips so far, every rank and worker."""
        return sum(c.count for c in self._counters())

    def bad_samples(self) -> dict[str, str]:
        """``path -> reason`` of every file skipped so far."""
        return merged_bad_samples(self._counters())
