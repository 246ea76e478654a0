"""Training checkpoints: the full state of a run, written atomically, rotated, and found again at resume.

Layout under ``<run_dir>/checkpoints/``::

    step_2000.pt      one training state per saved step (torch.save of plain data, see below)
    step_3000.pt
    latest            a one-line text file naming the newest *complete* checkpoint ("step_3000.pt")

A state file is written under a temporary name beside its target (:func:`mmv.fileio.atomic_file`), flushed to
disk, and renamed into place; only then is ``latest`` rewritten (atomically too) and the oldest files beyond
``keep`` deleted. A process killed at any moment therefore leaves every ``step_*.pt`` complete and ``latest``
naming one of them; the temporary leftover of an interrupted write is deleted at the next start.

A state is a dict of tensors and plain Python values only (no pickled classes or functions), written with
``torch.save`` and read with ``torch.load(weights_only=True)``, PyTorch's restricted unpickler::

    format, format_version        "mmv-train-state", 1
    step                          optimizer updates done
    batches                       micro-batches consumed (resume skips these within the epoch)
    epoch                         the sampler epoch of the next batch
    model                         the plain model's state_dict (no DDP/compile prefixes)
    optimizer, scheduler, scaler  their state_dicts
    rng                           torch (+ cuda) generator states, numpy's and Python's as tensors/lists
    config                        the resolved run config (a dict)
    vocab                         the vocabulary's words (a list) or None
    metrics                       the last logged values (a dict of floats)

The final *model* (weights + config + vocabulary, for inference and the app) is exported separately with
:func:`mmv.checkpoint.save_checkpoint` (safetensors; see ``docs/formats.md``).
"""

from __future__ import annotations

import logging
import os
import random
import re
import time
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch

from mmv.fileio import atomic_file

logger = logging.getLogger(__name__)

FORMAT = "mmv-train-state"
FORMAT_VERSION = 1
CHECKPOINT_DIR = "checkpoints"
LATEST = "latest"
_NAME = re.compile(r"^step_(\d+)\.pt$")
#: Test hook: ``"<step>:<marker path>"`` makes the writer of that step's checkpoint stop half-way (after
#: creating the marker file) for an hour, so a test can kill the process in the middle of the write.
STALL_ENV = "MMV_TEST_STALL_CHECKPOINT"


# ---------------------------------------------------------------------------------------------------
# Random generator states as plain data
# ---------------------------------------------------------------------------------------------------


def rng_state() -> dict[str, Any]:
    """Every global generator's state, as tensors and lists (loadable with ``weights_only=True``)."""
    # The legacy global generator is saved on purpose: third-party code may draw from it.
    name, keys, pos, has_gauss, cached = np.random.get_state()  # noqa: NPY002
    version, internal, gauss_next = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {
            "name": str(name),
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "python": {"version": int(version), "internal": [int(x) for x in internal], "gauss_next": gauss_next},
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Restores what :func:`rng_state` returned (CUDA states only when the device count matches)."""
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])
    n = state["numpy"]
    keys = n["keys"].numpy().astype(np.uint32)
    np.random.set_state((n["name"], keys, n["pos"], n["has_gauss"], n["cached_gaussian"]))  # noqa: NPY002
    p = state["python"]
    random.setstate((p["version"], tuple(p["internal"]), p["gauss_next"]))


# ---------------------------------------------------------------------------------------------------
# Writing and reading one state
# ---------------------------------------------------------------------------------------------------


class _StallingWriter:
    """A file wrapper that stops for an hour once ``after`` bytes are written (see :data:`STALL_ENV`)."""

    def __init__(self, f: BinaryIO, after: int, marker: str) -> None:
        self.f, self.after, self.marker, self.written = f, after, marker, 0

    def write(self, data: bytes) -> int:
        n = self.f.write(data)
        self.written += n
        if self.written >= self.after and self.marker:
            self.f.flush()
            Path(self.marker).write_text(f"{self.written}\n")
            self.marker = ""
            time.sleep(3600)
        return n

    def flush(self) -> None:
        self.f.flush()


def _stall_marker(step: int) -> str | None:
    spec = os.environ.get(STALL_ENV, "")
    if not spec:
        return None
    at, _, marker = spec.partition(":")
    return marker if int(at) == step else None


def write_state(path: str | os.PathLike, state: dict[str, Any]) -> Path:
    """Writes ``state`` to ``path`` atomically (temp file, fsync, rename)."""
    path = Path(path)
    marker = _stall_marker(int(state.get("step", -1)))
    with atomic_file(path) as tmp:
        with open(tmp, "wb") as f:
            torch.save(state, _StallingWriter(f, 1 << 16, marker) if marker else f)
            f.flush()
            os.fsync(f.fileno())
    return path


def read_state(path: str | os.PathLike) -> dict[str, Any]:
    """A training state written by :func:`write_state`, read with ``torch.load(weights_only=True)``."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # the restricted unpickler raises UnpicklingError/RuntimeError on anything else
        raise ValueError(f"{path}: not a readable training checkpoint ({type(err).__name__}: {err})") from err
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ValueError(f"{path}: not an mmv training checkpoint")
    if state.get("format_version", 0) > FORMAT_VERSION:
        raise ValueError(f"{path}: format_version {state['format_version']} is newer than this code reads")
    return state


# ---------------------------------------------------------------------------------------------------
# The checkpoint directory
# ---------------------------------------------------------------------------------------------------


def step_of(path: str | os.PathLike) -> int | None:
    """The step in a ``step_<N>.pt`` name, else None."""
    match = _NAME.match(Path(path).name)
    return int(match.group(1)) if match else None


class CheckpointManager:
    """Saves, rotates and finds the training checkpoints of one run (only rank 0 writes).

    Args:
        run_dir: the run directory; checkpoints go to ``run_dir/checkpoints``.
        keep: how many of the newest checkpoints are kept.
    """

    def __init__(self, run_dir: str | os.PathLike, keep: int = 3) -> None:
        self.directory = Path(run_dir) / CHECKPOINT_DIR
        self.keep = int(keep)

    def path(self, step: int) -> Path:
        return self.directory / f"step_{step}.pt"

    def checkpoints(self) -> list[Path]:
        """Complete checkpoints, oldest first (temporary files never match ``step_<N>.pt``)."""
        if not self.directory.is_dir():
            return []
        found = [p for p in self.directory.iterdir() if step_of(p) is not None]
        return sorted(found, key=lambda p: step_of(p))

    def latest(self) -> Path | None:
        """The checkpoint ``latest`` names; the newest complete one when the pointer is missing or stale."""
        pointer = self.directory / LATEST
        if pointer.is_file():
            name = pointer.read_text(encoding="utf-8").strip()
            if step_of(name) is not None and (self.directory / name).is_file():
                return self.directory / name
            logger.warning("%s names %r, which does not exist; using the newest checkpoint", pointer, name)
        found = self.checkpoints()
        return found[-1] if found else None

    def resolve(self, resume: str | None) -> Path | None:
        """The file to resume from: ``'latest'`` (None if the run has none yet) or an explicit path."""
        if not resume:
            return None
        if resume == "latest":
            return self.latest()
        path = Path(resume)
        if path.is_dir():  # a run directory or its checkpoints directory
            inner = CheckpointManager(path.parent if path.name == CHECKPOINT_DIR else path)
            path = inner.latest()
            if path is None:
                raise FileNotFoundError(f"resume: no checkpoint under {resume}")
        if not path.is_file():
            raise FileNotFoundError(f"resume: no such checkpoint {resume}")
        return path

    def save(self, state: dict[str, Any]) -> Path:
        """Writes ``state`` as ``step_<state['step']>.pt``, points ``latest`` at it, then rotates."""
        path = write_state(self.path(int(state["step"])), state)
        with atomic_file(self.directory / LATEST) as tmp:
            tmp.write_text(path.name + "\n", encoding="utf-8")
        for old in self.checkpoints()[: -self.keep]:
            old.unlink(missing_ok=True)
        return path

    def remove_temporaries(self) -> list[Path]:
        """Deletes leftovers of writes that a killed process never finished (``.step_*.pt.*.tmp``)."""
        if not self.directory.is_dir():
            return []
        leftovers = [p for p in self.directory.iterdir() if p.name.startswith(".") and p.name.endswith(".tmp")]
        for p in leftovers:
            p.unlink(missing_ok=True)
        return leftovers
