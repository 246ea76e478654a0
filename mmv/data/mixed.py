"""Mixing datasets: several map-style datasets drawn with fixed proportions into one (HowTo100M + AudioSet)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from torch.utils.data import Dataset

from mmv.data.dataset import ClipDataset, Sample, SkipCounter, merged_bad_samples, shared_epoch


def _largest_remainder(length: int, weights: Sequence[float]) -> list[int]:
    total = float(sum(weights))
    exact = [length * w / total for w in weights]
    counts = [int(math.floor(x)) for x in exact]
    order = sorted(range(len(weights)), key=lambda i: (counts[i] - exact[i], i))
    for i in order[: length - sum(counts)]:
        counts[i] += 1
    return counts


class MixedDataset(Dataset):
    """Several datasets drawn with fixed proportions into one map-style dataset (HowTo100M + AudioSet).

    Each epoch of ``length`` items holds exactly ``round(length * p_d)`` items of part ``d`` (largest
    remainders), in an order shuffled per ``(seed, epoch)``. Within a part, items follow an endless stream of
    permutations of its indices (a new permutation per pass, seeded by ``(seed, part, pass)``), and epoch ``e``
    continues where epoch ``e - 1`` stopped: every item of a part is seen once before any is repeated, across
    epochs. An item's augmentation is drawn from ``(seed, epoch, index, part)``, so a part's item repeated
    within an epoch gets a different augmentation.

    Samples are those of the parts plus ``source`` (the part number); parts should produce the same keys
    (same configs): a part without captions gives ``has_text = False`` with zero text and mask.

    Args:
        parts: ``(dataset, proportion)`` pairs; proportions are normalised.
        length: items per epoch.
        seed: shuffling and augmentation seed.
    """

    def __init__(self, parts: Sequence[tuple[Dataset, float]], length: int, seed: int = 0) -> None:
        if not parts:
            raise ValueError("parts: need at least one (dataset, proportion) pair")
        for i, (ds, p) in enumerate(parts):
            if not p >= 0 or not math.isfinite(p):
                raise ValueError(f"parts[{i}]: proportion must be a finite number >= 0, got {p!r}")
            if p > 0 and len(ds) == 0:
                raise ValueError(f"parts[{i}]: an empty dataset cannot have a proportion > 0")
        if sum(p for _, p in parts) <= 0:
            raise ValueError("parts: the proportions sum to 0")
        if length < 1:
            raise ValueError(f"length: must be >= 1, got {length}")
        self.datasets = [ds for ds, _ in parts]
        self.proportions = [float(p) / sum(p for _, p in parts) for _, p in parts]
        self.length = int(length)
        self.seed = int(seed)
        self.counts = _largest_remainder(self.length, self.proportions)
        self._epoch = shared_epoch()
        self._schedule: tuple[int, np.ndarray, np.ndarray] | None = None

    def __len__(self) -> int:
        return self.length

    def set_epoch(self, epoch: int) -> None:
        """Sets the epoch here and in every part that has ``set_epoch``."""
        self._epoch.fill_(int(epoch))
        for ds in self.datasets:
            if hasattr(ds, "set_epoch"):
                ds.set_epoch(epoch)

    @property
    def epoch(self) -> int:
        return int(self._epoch.item())

    def _part_items(self, part: int, first: int, count: int) -> np.ndarray:
        n = len(self.datasets[part])
        out = np.empty(count, dtype=np.int64)
        pos = first
        while pos < first + count:
            passno, offset = divmod(pos, n)
            perm = np.random.default_rng([self.seed, part, passno]).permutation(n)
            take = min(n - offset, first + count - pos)
            out[pos - first : pos - first + take] = perm[offset : offset + take]
            pos += take
        return out

    def schedule(self, epoch: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(part, item)`` int64 arrays of length ``length``: what each index of the epoch loads."""
        epoch = self.epoch if epoch is None else int(epoch)
        if self._schedule is None or self._schedule[0] != epoch:
            parts = np.concatenate([np.full(c, d, dtype=np.int64) for d, c in enumerate(self.counts)])
            np.random.default_rng([self.seed, epoch]).shuffle(parts)
            items = np.empty(self.length, dtype=np.int64)
            for d, c in enumerate(self.counts):
                if c:
                    items[parts == d] = self._part_items(d, epoch * c, c)
            self._schedule = (epoch, parts, items)
        return self._schedule[1], self._schedule[2]

    def __getitem__(self, index: int) -> Sample | None:
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for {self.length} items")
        epoch = self.epoch
        parts, items = self.schedule(epoch)
        part, item = int(parts[index]), int(items[index])
        ds = self.datasets[part]
        if isinstance(ds, ClipDataset):
            sample = ds.load(item, (self.seed, epoch, int(index), part))
        else:
            sample = ds[item]
        if sample is not None:
            sample["source"] = part
        return sample

    def _counters(self) -> list[SkipCounter]:
        seen: dict[str, SkipCounter] = {}
        for ds in self.datasets:
            counter = getattr(ds, "skips", None)
            if isinstance(counter, SkipCounter):
                seen.setdefault(counter.directory, counter)
        return list(seen.values())

    @property
    def num_skipped(self) -> int:
        """Items skipped so far in every part (shared counters counted once)."""
        return sum(c.count for c in self._counters())

    @property
    def bad_samples(self) -> dict[str, str]:
        """``path -> reason`` over every part."""
        return merged_bad_samples(self._counters())
