"""Torch's CPU threads on a shared machine: as many as the cores that other processes leave free.

**Why.** PyTorch's CPU kernels run on an OpenMP pool whose threads *spin* at every barrier (GNU OpenMP's
active wait) before they sleep. When each of the pool's threads has a core, that spin saves a wake-up per
operation. When another busy process takes one of the cores, the thread that shares it is descheduled for a
whole time slice while its partner spins at the barrier, and every one of the thousands of small operations of a
training step waits for it. Measured on the project's 2-core machine (demo recipe, batch 32, docs/benchmarks.md,
"Sharing the CPU"): 2 threads take 0.35 s a step alone, 1.2 s beside a single-threaded busy loop and 3.2 s beside
a two-threaded numpy job (9x); 1 thread takes 0.56 s alone and 0.56 / 0.84 s beside the same jobs.
``OMP_WAIT_POLICY=PASSIVE`` removes the spin but costs 1.7x when the machine is idle, so the fix is the thread
count, not the wait policy: use every core while the machine is idle and drop to the free ones when it is not.

:class:`ThreadGovernor` does that from inside the process: every ``interval_s`` it reads how much CPU the whole
machine used (``/proc/stat``) and subtracts what this process used (:func:`os.times`), which leaves the cores
that *other* processes keep busy, and sets :func:`torch.set_num_threads` to the cores they leave (at least 1, at
most ``max_threads``). Spinning threads count as busy in both readings, so the measure does not mistake our own
spin for a competitor. Where ``/proc/stat`` is missing (macOS, Windows) it leaves the thread count alone.

OpenMP's thread count is per calling thread: call :meth:`ThreadGovernor.update` from the thread that runs the
model (the training loop, the bank's embedding loop, a Streamlit script run), not from a helper thread.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

_PROC_STAT = "/proc/stat"


def cpu_count() -> int:
    """The cores this process may run on (its affinity mask where the OS has one), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def read_machine_busy(path: str = _PROC_STAT) -> tuple[float, float] | None:
    """``(busy_s, total_s)``: CPU seconds all cores spent busy and in total since boot, or ``None``.

    From the first (aggregate) line of ``/proc/stat``: busy is user + nice + system + irq + softirq + steal,
    total adds idle and iowait. Guest time is already inside user and nice, so it is not added twice.
    """
    try:
        with open(path, encoding="ascii") as f:
            fields = f.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu" or len(fields) < 8:
        return None
    ticks = [float(x) for x in fields[1:9]] + [0.0] * (8 - len(fields[1:9]))
    user, nice, system, idle, iowait, irq, softirq, steal = ticks[:8]
    hz = float(os.sysconf("SC_CLK_TCK")) if hasattr(os, "sysconf") else 100.0
    busy = user + nice + system + irq + softirq + steal
    return busy / hz, (busy + idle + iowait) / hz


def own_cpu_seconds() -> float:
    """CPU seconds (user + system, every thread) this process has used."""
    t = os.times()
    return t.user + t.system


@dataclass
class _Sample:
    wall: float
    machine_busy: float
    own: float


class ThreadGovernor:
    """Keeps :func:`torch.set_num_threads` at the number of cores other processes leave free.

    Args:
        max_threads: The most threads to use (default: torch's present count, so a caller that chose one thread
            keeps one; never more than the cores this process may run on).
        interval_s: How often :meth:`update` re-measures; calls in between cost a clock read.
        min_window_s: The shortest measurement window: the first call (and one after a long pause) waits
            this long for a reading of its own.
        reader: The machine-wide reading (:func:`read_machine_busy`); tests plant their own.
        own: This process's CPU seconds (:func:`own_cpu_seconds`); tests plant their own.
        set_threads: Applies a thread count (:func:`torch.set_num_threads`); tests plant their own.

    The free cores are ``cores - round(others)``, where ``others`` is the machine's busy cores minus this
    process's over the last window; ``others`` is rounded with a dead band (0.35 and 0.65 of a core, not 0.5),
    so that a reading near a half does not flip the count at every window.
    """

    def __init__(
        self,
        max_threads: int | None = None,
        interval_s: float = 2.0,
        min_window_s: float = 0.2,
        reader: Callable[[], tuple[float, float] | None] = read_machine_busy,
        own: Callable[[], float] = own_cpu_seconds,
        set_threads: Callable[[int], None] = torch.set_num_threads,
    ) -> None:
        self.cores = cpu_count()
        self.max_threads = max(1, min(max_threads or torch.get_num_threads(), self.cores))
        self.interval_s = interval_s
        self.min_window_s = min_window_s
        self._reader, self._own, self._set = reader, own, set_threads
        self._last: _Sample | None = None
        self.threads = self.max_threads
        self.others = 0.0  # busy cores of other processes in the last window
        self.enabled = reader() is not None
        self._set(self.threads)

    def _sample(self) -> _Sample | None:
        reading = self._reader()
        if reading is None:
            return None
        return _Sample(time.monotonic(), reading[0], self._own())

    def _threads_for(self, others: float) -> int:
        taken = int(others)
        frac = others - taken
        keep_free = max(1, min(self.max_threads, self.cores - taken))  # the fraction left to share
        give_up = max(1, min(self.max_threads, self.cores - taken - 1))  # the fraction counted as a core
        if frac >= 0.65:
            return give_up
        if frac <= 0.35:
            return keep_free
        return self.threads if self.threads in (give_up, keep_free) else keep_free  # dead band: keep

    def update(self) -> int:
        """Re-measures when ``interval_s`` has passed (the first call waits ``min_window_s``); returns the count."""
        if not self.enabled:
            return self.threads
        now = time.monotonic()
        if self._last is not None and now - self._last.wall < self.interval_s:
            return self.threads
        if self._last is None or now - self._last.wall > 30 * self.interval_s:
            self._last = self._sample()  # no recent reading: take a short one now
            time.sleep(self.min_window_s)
        new = self._sample()
        if new is None or self._last is None:
            return self.threads
        wall = new.wall - self._last.wall
        if wall > 0:
            busy = (new.machine_busy - self._last.machine_busy) - (new.own - self._last.own)
            self.others = max(0.0, busy / wall)
            threads = self._threads_for(self.others)
            if threads != self.threads:
                self.threads = threads
                self._set(threads)
        self._last = new
        return self.threads
