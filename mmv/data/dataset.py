"""The map-style dataset of clips from a manifest, and the counting of skipped (unreadable) clips.

:class:`ClipDataset` turns one row of a clip manifest (``docs/formats.md``) into one training sample, a dict:

==================  ==============================  ===========================================================
key                 value                           notes
==================  ==============================  ===========================================================
``video``           uint8 ``[T, S, S, 3]``          with a ``VideoConfig``; augmented by ``transform``
``color_params``    float32 ``[4]``                 only when the transform defers colour to the training step
``audio``           float32 ``[N]``                 with an ``AudioConfig``: ``N = round(duration * rate)``
``has_audio``       bool                            False (and zero audio) when the clip has no sound track
``text``            int64 ``[K, L]``                with a vocabulary: the K captions nearest the clip
``text_mask``       bool ``[K]``                    which rows of ``text`` are real captions with a known token
``has_text``        bool                            ``text_mask.any()`` (without text: the manifest's)
``clip_id``         str
``dataset``         str                             the manifest's ``dataset`` column
``index``           int                             row of the (split-filtered) manifest
``window``          int                             evaluation window ``k`` of ``num_windows`` (0 in training)
``start``           float                           start of the video window, seconds in the file
``labels``          dict                            ``label_<name>`` columns as ``{name: value}`` (NA -> None)
==================  ==============================  ===========================================================

**Windows.** A :class:`mmv.data.sampling.ClipSampler` picks the window: in ``'train'`` mode one random window
of ``num_frames / fps`` seconds per item; in ``'eval'`` mode item ``i`` is window ``i % num_windows`` of row
``i // num_windows`` (linearly spaced), so ``len(dataset) = rows * num_windows`` and every item has the same
shapes. The audio window is centred on the video window (see :mod:`mmv.data.sampling`). A region shorter
than the window is read as far as it goes and padded: the last frame repeated, the audio with zeros.

**Determinism.** Item ``i`` in epoch ``e`` draws everything (window, crop, colour) from
``np.random.default_rng([seed, e, i])``, whatever worker loads it. :meth:`ClipDataset.set_epoch` writes the
epoch into a shared-memory tensor, so it reaches worker processes, persistent ones included (call it before
``iter(loader)``, like ``DistributedSampler.set_epoch``).

**Bad media are skipped and counted.** Every :class:`mmv.data.media.MediaError` (missing, empty, truncated,
corrupt file, window past the end, ...) makes ``__getitem__`` return ``None``;
:func:`mmv.data.collate.collate_clips` drops the ``None`` entries and reports ``batch["num_skipped"]``. Each skip
is also recorded by a :class:`SkipCounter`: every process appends one JSON line per skip to its own file in a
small directory, so the main process (the training loop) can read the total, the per-worker counts and the
``path -> reason`` summary at any time, with any number of workers, fork or spawn, persistent or not. A
warning is logged the first time a path is skipped.

Batches: :mod:`mmv.data.collate`; several datasets mixed with fixed proportions: :mod:`mmv.data.mixed`.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import tempfile
import weakref
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from mmv.config import AudioConfig, TextConfig, VideoConfig
from mmv.data import media
from mmv.data.manifest import LABEL_PREFIX, label_columns, load_manifest
from mmv.data.sampling import ClipSampler, ClipWindow, select_captions
from mmv.data.transforms import EvalVideoTransform, TrainVideoTransform
from mmv.tokenizer import PAD_ID, Vocabulary

logger = logging.getLogger(__name__)

MODES = ("train", "eval")
Sample = dict[str, Any]


# ---------------------------------------------------------------------------------------------------
# Skip counting
# ---------------------------------------------------------------------------------------------------


def _remove_tree(path: str, owner_pid: int) -> None:
    if os.getpid() == owner_pid:  # never from a forked worker that inherited the finalizer
        shutil.rmtree(path, ignore_errors=True)


class SkipCounter:
    """Counts samples skipped for unreadable media, across DataLoader worker processes.

    Each process appends one JSON line ``{"path", "reason", "clip_id", "index"}`` per skip to its own file
    ``skips-<pid>.jsonl`` in ``directory``. Appends of one short line are atomic, files are per process, and
    nothing is held in memory that a worker would have to send back, so the counts are right with any number
    of workers, with fork or spawn, and with persistent workers. Reading is cheap while skips are rare (the
    files hold only the skips).

    Args:
        directory: where the files go; default a fresh temporary directory, removed when the counter that
            created it is garbage-collected (only by the creating process).
    """

    def __init__(self, directory: str | os.PathLike | None = None) -> None:
        if directory is None:
            self.directory = tempfile.mkdtemp(prefix="mmv-skips-")
            weakref.finalize(self, _remove_tree, self.directory, os.getpid())
        else:
            self.directory = os.fspath(directory)
            os.makedirs(self.directory, exist_ok=True)

    def __getstate__(self) -> dict[str, Any]:
        return {"directory": self.directory}  # a worker's copy never owns (or removes) the directory

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.directory = state["directory"]

    def __repr__(self) -> str:
        return f"SkipCounter({self.directory!r}, count={self.count})"

    def record(self, path: str, reason: str, clip_id: str | None = None, index: int | None = None) -> bool:
        """Records one skip; returns True when ``path`` had not been recorded before (by any process)."""
        first = path not in self.bad_samples()
        line = json.dumps({"path": path, "reason": reason, "clip_id": clip_id, "index": index}) + "\n"
        with open(os.path.join(self.directory, f"skips-{os.getpid()}.jsonl"), "a", encoding="utf-8") as f:
            f.write(line)
        return first

    def records(self) -> list[dict[str, Any]]:
        """Every recorded skip, with a ``pid`` key, grouped by process."""
        out: list[dict[str, Any]] = []
        for name in sorted(os.listdir(self.directory)) if os.path.isdir(self.directory) else []:
            if not (name.startswith("skips-") and name.endswith(".jsonl")):
                continue
            pid = int(name[len("skips-") : -len(".jsonl")])
            with open(os.path.join(self.directory, name), encoding="utf-8") as f:
                for line in f:
                    if line.endswith("\n"):  # a line still being written is left for the next read
                        out.append({**json.loads(line), "pid": pid})
        return out

    @property
    def count(self) -> int:
        """Skips so far, all processes (a file skipped in two epochs counts twice)."""
        return len(self.records())

    def per_worker(self) -> dict[int, int]:
        """Skips per process id."""
        counts: dict[int, int] = {}
        for r in self.records():
            counts[r["pid"]] = counts.get(r["pid"], 0) + 1
        return counts

    def bad_samples(self) -> dict[str, str]:
        """``path -> reason`` of every file skipped so far (the first reason recorded)."""
        out: dict[str, str] = {}
        for r in self.records():
            out.setdefault(r["path"], r["reason"])
        return out

    def reset(self) -> None:
        """Forgets every skip (e.g. at the start of an epoch, while no worker is loading)."""
        for name in os.listdir(self.directory):
            if name.startswith("skips-"):
                os.unlink(os.path.join(self.directory, name))


def merged_bad_samples(counters: Iterable[SkipCounter]) -> dict[str, str]:
    """``path -> reason`` over several counters (datasets, ranks); the first reason seen for a path wins."""
    out: dict[str, str] = {}
    for c in counters:
        for path, reason in c.bad_samples().items():
            out.setdefault(path, reason)
    return out


# ---------------------------------------------------------------------------------------------------
# The clip dataset
# ---------------------------------------------------------------------------------------------------


def shared_epoch() -> torch.Tensor:
    """A scalar int64 epoch in shared memory: DataLoader workers receive the dataset through
    torch.multiprocessing, which shares this storage, so ``set_epoch`` reaches them (persistent ones too)."""
    return torch.zeros((), dtype=torch.int64).share_memory_()


def _python(value: Any) -> Any:
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    return value.item() if isinstance(value, np.generic) else value


class ClipDataset(Dataset):
    """Clips of a manifest as dicts of tensors (see the module docstring for the keys).

    Args:
        manifest: a loaded manifest table or the path of one (:func:`mmv.data.manifest.load_manifest`).
        video_cfg: ``num_frames``, ``fps``, ``frame_size`` of the video; ``None``: no video.
        audio_cfg: ``sample_rate`` and ``duration`` of the audio; ``None``: no audio.
        vocab: the vocabulary captions are encoded with; ``None``: no text.
        text_cfg: ``max_words`` (L) and ``remove_stop_words``; default ``TextConfig()`` when ``vocab`` is set.
        num_captions: K, captions per clip (MIL-NCE's bag, nearest the window in time).
        split: keep only rows of this split (``None``: all rows).
        mode: ``'train'`` (random windows, :class:`TrainVideoTransform`) or ``'eval'`` (``num_windows``
            linearly spaced windows, :class:`EvalVideoTransform`).
        transform: ``transform(video_uint8 [T, H, W, 3], rng) -> video`` or ``-> (video, color_params)``;
            default by mode, with ``frame_size`` from ``video_cfg``.
        num_windows: windows per row in ``'eval'`` mode (1 in training).
        seed: base of the per-item random generators.
        cache_dir: FLAC cache for audio tracks inside video containers (:func:`mmv.data.media.extract_audio`).
        sampler: a custom :class:`ClipSampler` (default from the configs and the mode).
        skip_counter: where skips are counted (default a new :class:`SkipCounter`; share one between datasets
            to count them together).
    """

    def __init__(
        self,
        manifest: pd.DataFrame | str | os.PathLike,
        video_cfg: VideoConfig | None = None,
        audio_cfg: AudioConfig | None = None,
        vocab: Vocabulary | None = None,
        text_cfg: TextConfig | None = None,
        num_captions: int = 4,
        split: str | None = None,
        mode: str = "train",
        transform: Callable[..., Any] | None = None,
        num_windows: int = 1,
        seed: int = 0,
        cache_dir: str | os.PathLike | None = None,
        sampler: ClipSampler | None = None,
        skip_counter: SkipCounter | None = None,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"mode: must be one of {MODES}, got {mode!r}")
        if num_windows < 1 or (mode == "train" and num_windows != 1):
            raise ValueError(f"num_windows: must be >= 1 in 'eval' mode and 1 in 'train' mode, got {num_windows}")
        if num_captions < 1:
            raise ValueError(f"num_captions: must be >= 1, got {num_captions}")
        if text_cfg is not None and vocab is None:
            raise ValueError("text_cfg given without a vocab: text needs a Vocabulary to encode captions")
        df = load_manifest(manifest) if isinstance(manifest, (str, os.PathLike)) else manifest
        if split is not None:
            df = df[df["split"] == split]
        self.manifest = df.reset_index(drop=True)
        self.video_cfg, self.audio_cfg = video_cfg, audio_cfg
        self.vocab = vocab
        self.text_cfg = text_cfg if text_cfg is not None or vocab is None else TextConfig()
        self.num_captions = int(num_captions)
        self.mode = mode
        self.num_windows = int(num_windows)
        self.seed = int(seed)
        self.cache_dir = None if cache_dir is None else os.fspath(cache_dir)
        self.sampler = sampler or ClipSampler.from_configs(
            video_cfg, audio_cfg, "random" if mode == "train" else "uniform", self.num_windows
        )
        if transform is None and video_cfg is not None:
            size = video_cfg.frame_size
            transform = TrainVideoTransform(size) if mode == "train" else EvalVideoTransform(size)
        self.transform = transform
        self.skips = skip_counter if skip_counter is not None else SkipCounter()
        self._epoch = shared_epoch()
        self._durations: dict[int, float] = {}
        # Plain Python lists: cheap per-item access, and no pandas work in the workers.
        cols = self.manifest
        self._rows = {
            name: cols[name].tolist() if name in cols.columns else [None] * len(cols)
            for name in ("clip_id", "dataset", "video_path", "audio_path", "start", "end", "captions", "has_text")
        }
        self._labels = {c[len(LABEL_PREFIX) :]: cols[c].tolist() for c in label_columns(cols)}

    # -- epochs and sizes ---------------------------------------------------------------------------

    def set_epoch(self, epoch: int) -> None:
        """Sets the epoch mixed into every item's random generator (seen by worker processes too)."""
        self._epoch.fill_(int(epoch))

    @property
    def epoch(self) -> int:
        return int(self._epoch.item())

    @property
    def num_clips(self) -> int:
        """Rows of the (split-filtered) manifest."""
        return len(self.manifest)

    def __len__(self) -> int:
        return self.num_clips * self.num_windows

    @property
    def num_skipped(self) -> int:
        """Items skipped so far (all workers); see :class:`SkipCounter`."""
        return self.skips.count

    @property
    def bad_samples(self) -> dict[str, str]:
        """``path -> reason`` of the files skipped so far."""
        return self.skips.bad_samples()

    # -- loading ------------------------------------------------------------------------------------

    def __getitem__(self, item: int) -> Sample | None:
        return self.load(item, (self.seed, self.epoch, int(item)))

    def load(self, item: int, rng_key: Sequence[int]) -> Sample | None:
        """Item ``item`` with its randomness drawn from ``np.random.default_rng(rng_key)``.

        Returns:
            The sample dict, or ``None`` (recorded in :attr:`skips`) when its media cannot be read.
        """
        if not 0 <= item < len(self):
            raise IndexError(f"item {item} out of range for {len(self)} items")
        row, k = divmod(int(item), self.num_windows)
        rng = np.random.default_rng([int(x) for x in rng_key])
        try:
            return self._load(row, k, rng)
        except media.MediaError as err:
            clip_id = self._rows["clip_id"][row]
            if self.skips.record(err.path, err.reason, clip_id, row):
                logger.warning("skipping clip %s: %s", clip_id, err)
            return None

    def _region(self, row: int) -> tuple[float, float]:
        start = float(self._rows["start"][row] or 0.0)
        end = _python(self._rows["end"][row])
        if end is None:
            if row not in self._durations:
                video, audio = self._rows["video_path"][row], self._rows["audio_path"][row]
                if video is not None:
                    self._durations[row] = media.video_info(video).duration
                elif audio is not None:
                    self._durations[row] = media.audio_info(audio).duration
                else:
                    raise media.MediaError(str(self._rows["clip_id"][row]), "file not found: the row has no media")
            end = self._durations[row]
        return start, float(end)

    def _load(self, row: int, k: int, rng: np.random.Generator) -> Sample:
        start, end = self._region(row)
        window = self.sampler.sample(start, end, rng, k)
        sample: Sample = {}
        if self.video_cfg is not None:
            video = self._read_video(row, window, end)
            out = self.transform(video, rng) if self.transform is not None else video
            if isinstance(out, tuple):
                out, sample["color_params"] = out
            sample["video"] = out
        if self.audio_cfg is not None:
            sample["audio"], sample["has_audio"] = self._read_audio(row, window, end)
        if self.vocab is not None:
            sample["text"], sample["text_mask"] = self._encode_text(row, window)
            sample["has_text"] = bool(sample["text_mask"].any())
        else:
            sample["has_text"] = bool(self._rows["has_text"][row])
        sample.update(
            clip_id=str(self._rows["clip_id"][row]),
            dataset=str(self._rows["dataset"][row]),
            index=row,
            window=k,
            start=float(window.start),
            labels={name: _python(values[row]) for name, values in self._labels.items()},
        )
        return sample

    def _read_video(self, row: int, window: ClipWindow, end: float) -> torch.Tensor:
        path = self._rows["video_path"][row]
        if path is None:
            raise media.MediaError(str(self._rows["clip_id"][row]), "no video stream: the row has no video_path")
        cfg = self.video_cfg
        n = cfg.num_frames
        # Frames at start + i / fps must lie before the region's end; the rest repeat the last one.
        avail = min(n, max(1, math.ceil((end - window.start) * cfg.fps - 1e-6)))
        frames = media.read_video(path, window.start, avail, cfg.fps)
        if avail < n:
            frames = np.concatenate([frames, np.repeat(frames[-1:], n - avail, axis=0)])
        return torch.from_numpy(frames)

    def _read_audio(self, row: int, window: ClipWindow, end: float) -> tuple[torch.Tensor, bool]:
        cfg = self.audio_cfg
        num_samples = cfg.num_samples
        path = self._rows["audio_path"][row] or self._rows["video_path"][row]
        duration = min(cfg.duration, end - window.audio_start)
        if path is None or duration <= 0:
            return torch.zeros(num_samples, dtype=torch.float32), False
        try:
            wave = media.read_audio(path, window.audio_start, duration, cfg.sample_rate, self.cache_dir)
        except media.MediaError as err:
            if self._rows["audio_path"][row] is None and err.reason.startswith("no audio stream"):
                return torch.zeros(num_samples, dtype=torch.float32), False  # a silent video: no audio
            raise
        out = np.zeros(num_samples, dtype=np.float32)
        out[: min(len(wave), num_samples)] = wave[:num_samples]
        return torch.from_numpy(out), True

    def _encode_text(self, row: int, window: ClipWindow) -> tuple[torch.Tensor, torch.Tensor]:
        texts = select_captions(self._rows["captions"][row] or [], window, self.num_captions)
        cfg = self.text_cfg
        tokens = self.vocab.encode_batch(
            [texts], cfg.max_words, cfg.remove_stop_words, max_sentences=self.num_captions
        )[0]  # [K, L]
        mask = (tokens != PAD_ID).any(dim=1)  # a caption of stop words only encodes to padding
        return tokens, mask
