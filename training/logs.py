"""What a run reports (rank 0 only): a tqdm bar, ``metrics.csv``, TensorBoard events, and the end summary.

``<run_dir>/metrics.csv`` has one row per logged step: ``step``, ``time`` (seconds since the run started,
this invocation), ``lr``, the loss terms (``loss``, ``va_loss``, ``vt_loss``...), ``clips_per_s`` (all ranks),
``skipped`` (samples skipped for unreadable media so far, all ranks) and, on steps where the evaluation ran,
its metrics (``eval/t2v_r1``, ...). Loss terms are the logged step's (averaged over its micro-batches, not over
the ``log.every`` steps since the last row); ``clips_per_s`` covers every step since the last row. Each row is
flushed as soon as it is written. A key seen for the first time (the first evaluation) widens the header: the
file is rewritten once, atomically, with the new column.
At resume, rows after the checkpoint's step are dropped, so the steps in the file stay unique and in order.

TensorBoard event files go to ``<run_dir>/tensorboard`` when the ``tensorboard`` package is installed (one
warning line otherwise); at resume the writer purges events after the checkpoint's step.
"""

from __future__ import annotations

import csv
import logging
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mmv.fileio import atomic_file

logger = logging.getLogger(__name__)

METRICS_FILE = "metrics.csv"
FIRST_COLUMNS = ("step", "time", "lr", "loss")


def _format(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else str(value)
    return str(value)


class CsvLog:
    """An append-only CSV of dict rows whose columns grow as new keys appear.

    Args:
        path: the CSV file.
        resume_step: keep only existing rows with ``step <= resume_step`` (``None``: start a new file).
    """

    def __init__(self, path: str | os.PathLike, resume_step: int | None = None) -> None:
        self.path = Path(path)
        self.columns: list[str] = []
        rows: list[dict[str, str]] = []
        if resume_step is not None and self.path.is_file():
            with open(self.path, newline="", encoding="utf-8") as f:
                reader = csv.DictReader(f)
                self.columns = list(reader.fieldnames or [])
                rows = [r for r in reader if r.get("step") and int(r["step"]) <= resume_step]
        self._rewrite(rows)

    def _rewrite(self, rows: list[Mapping[str, Any]]) -> None:
        with atomic_file(self.path) as tmp:
            with open(tmp, "w", newline="", encoding="utf-8") as f:
                if self.columns:
                    writer = csv.DictWriter(f, self.columns, restval="", lineterminator="\n")
                    writer.writeheader()
                    writer.writerows(rows)

    def _read_rows(self) -> list[dict[str, str]]:
        if not self.columns:
            return []
        with open(self.path, newline="", encoding="utf-8") as f:
            return list(csv.DictReader(f))

    def write(self, row: Mapping[str, Any]) -> None:
        """Appends ``row`` (flushed); rewrites the file first if it brings new columns."""
        new = [k for k in row if k not in self.columns]
        if new:
            old_rows = self._read_rows()
            columns = self.columns + new
            # Keep the usual columns first on a fresh file, whatever order the first row has.
            first = [c for c in FIRST_COLUMNS if c in columns]
            self.columns = first + [c for c in columns if c not in first] if not old_rows else columns
            self._rewrite(old_rows)
        with open(self.path, "a", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, self.columns, restval="", lineterminator="\n")
            writer.writerow({k: _format(v) for k, v in row.items()})
            f.flush()


class TensorBoard:
    """``SummaryWriter`` scalars if the ``tensorboard`` package imports, else nothing (one warning)."""

    def __init__(self, log_dir: str | os.PathLike, enabled: bool = True, purge_step: int | None = None) -> None:
        self.writer = None
        if not enabled:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            logger.warning("tensorboard is not installed: no event files (pip install tensorboard)")
            return
        self.writer = SummaryWriter(str(log_dir), purge_step=purge_step)

    def write(self, step: int, values: Mapping[str, Any]) -> None:
        if self.writer is None:
            return
        for key, value in values.items():
            if key != "step" and isinstance(value, (int, float)) and not isinstance(value, bool):
                self.writer.add_scalar(key if "/" in key else f"train/{key}", value, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


class Progress:
    """A tqdm bar over the run's steps (step, loss terms, clips/s, lr; tqdm adds the ETA)."""

    def __init__(self, total: int, initial: int, enabled: bool = True) -> None:
        self.bar = None
        if enabled:
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=initial, desc="train", unit="step", dynamic_ncols=True)

    def update(self, values: Mapping[str, Any] | None = None) -> None:
        if self.bar is None:
            return
        if values:
            losses = sorted((k for k in values if k.endswith("loss")), key=lambda k: (k != "loss", k))
            shown = {k: f"{values[k]:.3f}" for k in losses}
            if "clips_per_s" in values:
                shown["clips/s"] = f"{values['clips_per_s']:.1f}"
            if "lr" in values:
                shown["lr"] = f"{values['lr']:.2e}"
            self.bar.set_postfix(shown, refresh=False)
        self.bar.update(1)

    def write(self, text: str) -> None:
        if self.bar is not None:
            self.bar.write(text)
        else:
            logger.info(text)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def skip_summary(bad_samples: Mapping[str, str], count: int, limit: int = 20) -> str:
    """A few lines on the samples skipped for unreadable media: the count and ``path: reason`` per file."""
    if not count:
        return "skipped samples: 0"
    lines = [f"skipped samples: {count} ({len(bad_samples)} distinct files)"]
    for path, reason in list(bad_samples.items())[:limit]:
        lines.append(f"  {path}: {reason}")
    if len(bad_samples) > limit:
        lines.append(f"  ... and {len(bad_samples) - limit} more")
    return "\n".join(lines)
